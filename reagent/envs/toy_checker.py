"""Rule-based process checker for the ledger task: the offline teacher judge.

It reads an episode the way a judge would (question, tool calls, tool results, final
answer) and never uses the reference answer: arithmetic is checked against the
balances the agent itself looked up. Its critique names flaws and how to fix them
without ever stating a balance or the answer, so it can be shown to the agent.

Score = 1 minus the penalties of the flaws found, clipped to [0, 1].
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reagent.envs.base import last_boxed
from reagent.envs.toy import parse_number, safe_arith
from reagent.records import Judgment, Task, Trajectory

PENALTY = {
    "no_answer": 0.7,
    "unlooked_account": 0.6,
    "arithmetic": 0.5,
    "irrelevant_lookup": 0.15,
    "repeated_call": 0.15,
    "missing_account": 0.2,
    "malformed_call": 0.2,
    "unknown_tool": 0.2,
    "needless_calc": 0.1,
}


@dataclass
class ProcessReport:
    flaws: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # analysis sentences
    advice: list[str] = field(default_factory=list)  # critique items, never the answer

    def flag(self, flaw: str, advice: str) -> None:
        self.flaws.append(flaw)
        self.advice.append(advice)

    @property
    def score(self) -> float:
        return round(max(0.0, 1.0 - sum(PENALTY[f] for f in self.flaws)), 2)


def _observe(traj: Trajectory, report: ProcessReport) -> tuple[dict[str, float], list[str], Counter]:
    """Walk the turns: balances seen, calc expressions, and repeated calls.

    The notes are terse on purpose: a judge trained on these verdicts writes every
    token of them at each call, so their length is the judge's cost."""
    results = {m.tool_call_id: m.content or "" for m in traj.messages if m.role == "tool"}
    seen: dict[str, float] = {}
    calcs: list[str] = []
    calls: Counter = Counter()
    absent: list[str] = []
    for m in traj.messages:
        if m.role != "assistant" or not m.tool_calls:
            continue
        for tc in m.tool_calls:
            result = results.get(tc.id, "")
            if tc.error:
                report.notes.append("A malformed tool call.")
                report.flag("malformed_call", "Write every tool call as valid JSON with a name and arguments.")
                continue
            args = tc.parsed_arguments
            calls[(tc.name, tuple(sorted((k, str(v)) for k, v in args.items())))] += 1
            if tc.name == "lookup":
                account = str(args.get("account", ""))
                value = parse_number(result)
                report.notes.append(f"lookup({account}) = {result if value is not None else 'error'}.")
                if value is None:
                    absent.append(account)
                else:
                    seen[account] = value
            elif tc.name == "calc":
                expr = str(args.get("expr", ""))
                calcs.append(expr)
                report.notes.append(f"calc({expr}) = {result}.")
            else:
                report.notes.append(f"Unknown tool {tc.name}.")
                report.flag("unknown_tool", f"There is no tool named {tc.name}; use lookup or calc.")
    for _ in absent:  # one flaw each (each costs), one critique line for all
        report.flag("missing_account", f"There is no account {', '.join(absent)}; look up only the "
                    "accounts the question names.")
    return seen, calcs, calls


def _expected(kind: str, asked: list[str], seen: dict[str, float]) -> float:
    values = [seen[a] for a in asked]
    return values[0] - values[1] if kind == "diff" else sum(values)


def check_process(task: Task, traj: Trajectory) -> ProcessReport:
    """Find the process flaws of one episode on a ledger task."""
    report = ProcessReport()
    kind, asked = task.meta["kind"], list(task.meta["asked"])
    seen, calcs, calls = _observe(traj, report)
    for (name, args), n in calls.items():
        if n > 1:
            shown = ", ".join(v for _, v in args)
            report.flag("repeated_call", f"You called {name}({shown}) more than once; reuse the earlier "
                        "result.")
    irrelevant = sorted(a for a in seen if a not in asked)
    if irrelevant:
        report.flag("irrelevant_lookup", f"You looked up {', '.join(irrelevant)}, which the question "
                    "does not ask about.")
    for expr in calcs:
        try:
            if "+" not in expr and "-" not in expr.lstrip("-") and "*" not in expr and "/" not in expr:
                safe_arith(expr)
                report.flag("needless_calc", "calc was used on a single number; no arithmetic was needed.")
        except ValueError:
            pass
    last = next((m for m in reversed(traj.messages) if m.role == "assistant"), None)
    answer = parse_number(last_boxed(last.content if last else None))
    if answer is None:
        report.notes.append("No numeric \\boxed{} answer.")
        report.flag("no_answer", "Finish with the final number in \\boxed{}.")
        return report
    missing = [a for a in asked if a not in seen]
    if missing:
        report.notes.append(f"Answered without looking up {', '.join(missing)}.")
        report.flag("unlooked_account", f"Look up account {', '.join(missing)} before answering; "
                    "never guess a balance.")
    elif answer != _expected(kind, asked, seen):
        report.notes.append("The answer does not follow from the looked-up balances.")
        report.flag("arithmetic", "Your answer does not follow from the balances you looked up; "
                    "do the arithmetic with calc.")
    else:
        report.notes.append("The answer follows from the looked-up balances.")
    return report


def rules_judgment(task: Task, traj: Trajectory) -> Judgment:
    """The checker's verdict in the judge's terms: analysis, critique, score."""
    report = check_process(task, traj)
    analysis = " ".join(report.notes) or "No tool calls."
    if report.flaws:
        counts = Counter(report.flaws)
        analysis += " Flaws: " + ", ".join(f + (f" x{n}" if n > 1 else "") for f, n in counts.items()) + "."
        critique = "\n".join(f"- {a}" for a in dict.fromkeys(report.advice))  # each fix once
    else:
        analysis += " No flaws."
        critique = "- No flaws found."
    return Judgment(analysis=analysis, critique=critique, score=report.score, status="ok", model="rules",
                    extra={"flaws": report.flaws})
