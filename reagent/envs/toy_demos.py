"""Rule-based demonstrator for the ledger task: correct and deliberately flawed episodes.

The SFT warm-up needs both. Correct episodes teach the format; flawed ones make the
warm-started policy sample realistic mistakes, some of which cost the answer
(guessing, mental-arithmetic errors, a wrong account) and some of which do not
(irrelevant or repeated lookups, a non-existent account, ``calc`` on one number).
Only a process reward can tell the second kind from a clean episode.

Revision demonstrations show the critique-then-revise turn (Reagent-C, and Reagent-U's
revised rollouts): a first attempt, the rules teacher's critique of it injected the
way :func:`reagent.critique.revision_messages` does at inference, then a clean
attempt. A policy that never saw that context answers it with noise.

``one_call_per_turn`` writes every call as its own assistant turn (each followed by its
result), for families whose template allows one call per turn (Llama 3.1's JSON calls,
:func:`reagent.toolcalls.one_call_per_turn`); the default puts a step's calls in one turn.
"""

from __future__ import annotations

import json
import random

from reagent.critique import revision_messages
from reagent.envs.base import initial_messages
from reagent.envs.toy import ACCOUNTS, ToyEnv
from reagent.envs.toy_checker import rules_judgment
from reagent.records import Message, Task, ToolCall, Trajectory
from reagent.tools.base import run_tool_call

# flaw -> does it usually change the answer?
FLAWS = {
    "guess": True,
    "mental_math_error": True,
    "wrong_account": True,
    "irrelevant_lookup": False,
    "repeated_call": False,
    "missing_account": False,
    "needless_calc": False,
}


class _Episode:
    """Builds messages turn by turn, running the real tools for the results."""

    def __init__(self, env: ToyEnv, task: Task, messages: list[Message] | None = None,
                 one_call_per_turn: bool = False):
        self.env, self.task = env, task
        self.one_call_per_turn = one_call_per_turn
        self.tools = env.tools_for(task)
        self.messages = messages if messages is not None else initial_messages(env, task)
        self.n_calls = sum(len(m.tool_calls or []) for m in self.messages)  # ids stay unique

    def call(self, *calls: tuple[str, dict]) -> list[str]:
        tcs = []
        for name, args in calls:
            tcs.append(ToolCall(id=f"call_{self.n_calls}", name=name, arguments=json.dumps(args)))
            self.n_calls += 1
        turns = [[tc] for tc in tcs] if self.one_call_per_turn else [tcs]
        results = []
        for turn in turns:
            self.messages.append(Message(role="assistant", content="", tool_calls=turn))
            for tc in turn:
                result = run_tool_call(self.tools, tc)
                results.append(result)
                self.messages.append(Message(role="tool", content=result, tool_call_id=tc.id, name=tc.name))
        return results

    def lookup(self, *accounts: str) -> list[int]:
        results = self.call(*[("lookup", {"account": a}) for a in accounts])
        return [int(r) for r in results if r.lstrip("-").isdigit()]

    def answer(self, value: int | float) -> Trajectory:
        text = f"\\boxed{{{int(value) if float(value).is_integer() else value}}}"
        self.messages.append(Message(role="assistant", content=text))
        answer = self.env.extract_answer(text)
        return Trajectory(task_id=self.task.id, messages=self.messages, final_answer=answer,
                          outcome=self.env.outcome(self.task, answer), policy="demonstrator",
                          stop_reason="answered")


def _expression(kind: str, values: list[int]) -> str:
    return f"{values[0]}-{values[1]}" if kind == "diff" else "+".join(map(str, values))


def demonstrate(env: ToyEnv, task: Task, flaw: str | None, rng: random.Random,
                messages: list[Message] | None = None, one_call_per_turn: bool = False) -> Trajectory:
    """One episode on ``task`` with the given flaw (None: a clean, correct episode),
    continuing ``messages`` when given (a revision context)."""
    kind, asked, ledger = task.meta["kind"], list(task.meta["asked"]), task.meta["ledger"]
    ep = _Episode(env, task, messages, one_call_per_turn)
    if flaw == "guess":
        return _tag(ep.answer(rng.randint(2, 150)), flaw)
    others = [a for a in ledger if a not in asked]
    if flaw == "wrong_account":
        asked[rng.randrange(len(asked))] = rng.choice(others)
    if flaw == "missing_account":
        ep.lookup(rng.choice([a for a in ACCOUNTS if a not in ledger]))
    lookups = list(asked)
    if flaw == "irrelevant_lookup":
        lookups.insert(rng.randint(0, len(lookups)), rng.choice(others))
    if flaw == "repeated_call":
        ep.lookup(asked[0])
    values_by_name = dict(zip(lookups, ep.lookup(*lookups)))
    values = [values_by_name[a] for a in asked]
    if kind == "single":
        if flaw == "needless_calc":
            ep.call(("calc", {"expr": str(values[0])}))
        return _tag(ep.answer(values[0]), flaw)
    exact = values[0] - values[1] if kind == "diff" else sum(values)
    if flaw == "mental_math_error":
        return _tag(ep.answer(exact + rng.choice([-10, -2, -1, 1, 2, 10])), flaw)
    (result,) = ep.call(("calc", {"expr": _expression(kind, values)}))
    return _tag(ep.answer(float(result)), flaw)


def _tag(traj: Trajectory, flaw: str | None) -> Trajectory:
    traj.extra["demo_flaw"] = flaw or "none"
    return traj


def revision_demo(env: ToyEnv, task: Task, rng: random.Random,
                  one_call_per_turn: bool = False) -> Trajectory:
    """A first attempt, the rules teacher's critique of it, then a clean attempt.

    Half the first attempts are clean and critiqued "No flaws found.": at inference
    the judge often says so, and the policy should then solve the task the same way
    again, not read any critique as a cue to change its answer."""
    first = demonstrate(env, task, _draw_flaw(task, rng) if rng.random() < 0.5 else None, rng,
                        one_call_per_turn=one_call_per_turn)
    critique = rules_judgment(task, first).critique
    second = demonstrate(env, task, None, rng, messages=revision_messages(first, critique),
                         one_call_per_turn=one_call_per_turn)
    second.extra["demo_flaw"] = "revision"
    return second


def _draw_flaw(task: Task, rng: random.Random) -> str:
    """A flaw the task can show: a single lookup has no arithmetic to get wrong, and only
    a single lookup can take a needless ``calc``."""
    flaw = rng.choice(list(FLAWS))
    single = task.meta["kind"] == "single"
    if flaw == "needless_calc" and not single:
        return "repeated_call"
    return "wrong_account" if flaw == "mental_math_error" and single else flaw


def demonstrations(env: ToyEnv, tasks: list[Task], flaw_rate: float = 0.4, seed: int = 0,
                   revision_rate: float = 0.0, one_call_per_turn: bool = False) -> list[Trajectory]:
    """One episode per task: a ``revision_rate`` fraction are revision demonstrations; of
    the rest, a ``flaw_rate`` fraction carry one flaw, drawn uniformly."""
    rng = random.Random(seed)
    out = []
    for task in tasks:
        if revision_rate and rng.random() < revision_rate:
            traj = revision_demo(env, task, rng, one_call_per_turn)
        else:
            flaw = _draw_flaw(task, rng) if rng.random() < flaw_rate else None
            traj = demonstrate(env, task, flaw, rng, one_call_per_turn=one_call_per_turn)
        traj.id = f"demo-{task.id}"
        out.append(traj)
    return out
