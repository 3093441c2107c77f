"""Any record file the project writes, flattened into one "item" per trajectory for the viewer.

The viewer shows what the judge sees, so every file that holds a trajectory is read:
plain trajectories (demos, ``reagent rollout``), judged trajectories (``reagent judge``),
saved training rollouts (``rollouts/step-NNNNNN-rankR.jsonl``, whose step comes from the
name), eval records (``records.jsonl`` of ``reagent eval``; a Reagent-C record yields its
initial attempt and its critique-revised attempt), judge examples (the rendered text the
judge read, with the teacher's verdict) and step labels (a trajectory plus per-step
values, or only per-step values joined to a trajectory of another file by id).

Files are untrusted: bytes that are not UTF-8 are replaced, a line that is not a JSON
object or lacks what its kind needs is skipped and counted as ``FILE:LINE: reason``;
nothing here raises on one bad line. An initial attempt and its revision are paired
by ``parent_id`` (or the ``/rev`` id suffix), first within one file, then across files.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Keys of a trajectory (or its ``extra``) that may hold per-step values: a list of
# numbers or of {name: number} objects, one per agent (assistant) step.
STEP_KEYS = ("steps", "step_values", "step_scores", "prm_scores", "step_rewards", "step_labels")
# A step that names the message it belongs to is drawn there (kept as "@message"), not as a bar;
# without one, step k sits beside the k-th assistant message.
POSITION_KEYS = ("message_index", "msg_index")
_STEP_FILE = re.compile(r"step-(\d+)(?:-rank(\d+))?\.jsonl$")
_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.S)


@dataclass
class LoadReport:
    """What was read and what was skipped (``FILE:LINE: reason``), for the CLI and the page."""

    read: int = 0
    skipped: list[str] = field(default_factory=list)
    unmatched_steps: int = 0
    judged_attached: int = 0

    def summary(self, limit: int = 10) -> str:
        lines = [f"read {self.read} trajectories, skipped {len(self.skipped)} bad lines"]
        lines += [f"  {s}" for s in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        if self.unmatched_steps:
            lines.append(f"  {self.unmatched_steps} step-label records had no trajectory in the given files")
        return "\n".join(lines)


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of non-blank lines; invalid UTF-8 becomes U+FFFD, never an error."""
    with open(path, "rb") as f:
        return [(i, raw.decode("utf-8", errors="replace")) for i, raw in enumerate(f, start=1) if raw.strip()]


def iter_json(path: Path, report: LoadReport) -> Iterator[tuple[str, Any]]:
    """(``FILE:LINE``, parsed JSON) per line; a line that does not parse is counted in ``report``."""
    for lineno, text in read_lines(path):
        try:
            yield f"{path}:{lineno}", json.loads(text)
        except ValueError as e:
            report.skipped.append(f"{path}:{lineno}: malformed JSON: {e}")


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _text(x: Any) -> str:
    if x is None:
        return ""
    return x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)


def _pretty_args(args: Any) -> str:
    """Tool-call arguments pretty-printed; the raw text when it is not JSON."""
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return args
    return json.dumps(args, ensure_ascii=False, indent=2)


def _message(m: Any) -> dict:
    if not isinstance(m, dict):
        return {"role": "?", "content": _text(m)}
    content = m.get("content")
    if isinstance(content, list):  # OpenAI content parts
        content = "\n".join(_text(p.get("text") if isinstance(p, dict) else p) for p in content)
    content = _text(content)
    reasoning = _text(m.get("reasoning_content") or m.get("reasoning"))
    think = _THINK.match(content)
    if think:
        reasoning = (reasoning + "\n" if reasoning else "") + think.group(1).strip()
        content = content[think.end():]
    out: dict[str, Any] = {"role": _text(m.get("role")) or "?", "content": content}
    if reasoning:
        out["reasoning"] = reasoning
    calls = []
    for c in m.get("tool_calls") or []:
        fn = c.get("function") if isinstance(c, dict) else None
        fn = fn if isinstance(fn, dict) else {}
        call = {"name": _text(fn.get("name")) or "?", "arguments": _pretty_args(fn.get("arguments", ""))}
        if isinstance(c, dict) and c.get("error"):
            call["error"] = _text(c["error"])
        calls.append(call)
    if calls:
        out["tool_calls"] = calls
    if m.get("name"):
        out["name"] = _text(m["name"])
    return out


def step_values(raw: Any) -> list[dict] | None:
    """Per-step values as ``[{name: number}]``; a bare list of numbers becomes ``[{"value": x}]``."""
    if not isinstance(raw, list) or not raw:
        return None
    out = []
    for s in raw:
        if isinstance(s, dict):
            vals = {str(k): _num(v) for k, v in s.items() if _num(v) is not None and k not in POSITION_KEYS}
            at = next((s[k] for k in POSITION_KEYS if isinstance(s.get(k), int) and not isinstance(s[k], bool)), None)
            if at is not None:
                vals["@message"] = at
        elif _num(s) is not None:
            vals = {"value": _num(s)}
        else:
            return None
        out.append(vals)
    return out if any(out) else None


def _judge(j: Any) -> dict | None:
    if not isinstance(j, dict):
        return None
    out = {k: _text(j.get(k)) for k in ("analysis", "critique", "status", "model", "error") if j.get(k)}
    out["score"] = _num(j.get("score"))
    return out


def trajectory_item(t: dict, src: str) -> dict:
    """One trajectory dict (the project's contract, tolerant of missing fields) as a viewer item."""
    messages = [_message(m) for m in t.get("messages") or [] if m is not None]
    question = next((m["content"] for m in messages if m["role"] == "user"), "")
    item: dict[str, Any] = {
        "id": _text(t.get("id")), "task_id": _text(t.get("task_id")), "stage": _text(t.get("stage")) or "initial",
        "parent_id": _text(t.get("parent_id")), "question": question, "messages": messages,
        "final_answer": _text(t.get("final_answer")), "outcome": _num(t.get("outcome")),
        "judge": _judge(t.get("judge")), "stop_reason": _text(t.get("stop_reason")),
        "truncated": bool(t.get("truncated")), "policy": _text(t.get("policy")), "src": src, "kind": "trajectory",
        "tool_calls": sum(len(m.get("tool_calls", [])) for m in messages),
        "turns": sum(m["role"] == "assistant" for m in messages),
    }
    rewards = {k: _num(v) for k, v in (t.get("rewards") or {}).items()} if isinstance(t.get("rewards"), dict) else {}
    if rewards:
        item["rewards"] = rewards
    if t.get("critique"):  # a revision records the critique it answered
        item["critique_in"] = _text(t["critique"])
    for key in STEP_KEYS:
        steps = step_values(t.get(key))
        if steps:
            item["steps"] = steps
            break
    return item


def _eval_items(rec: dict, src: str) -> list[dict]:
    """A ``reagent eval`` record: its final attempt, and for Reagent-C its initial attempt too."""
    final = trajectory_item(rec["trajectory"], src)
    final["id"] = final["id"] or _text(rec.get("id"))
    final["task_id"] = final["task_id"] or _text(rec.get("task_id"))
    final["outcome"] = _num(rec.get("score"))
    final["question"] = _text(rec.get("question")) or final["question"]
    final["final_answer"] = _text(rec.get("answer")) or final["final_answer"]
    final["reference"] = _text(rec.get("reference"))
    final["stop_reason"] = _text(rec.get("stop_reason")) or final["stop_reason"]
    final["kind"] = "eval"
    items = [final]
    init = rec.get("initial")
    if isinstance(init, dict) and isinstance(init.get("trajectory"), dict):
        first = trajectory_item(init["trajectory"], src)
        first.update(kind="eval", outcome=_num(init.get("score")), reference=final["reference"],
                     question=final["question"], task_id=first["task_id"] or final["task_id"])
        first["final_answer"] = _text(init.get("answer")) or first["final_answer"]
        if first["judge"] is None and (init.get("judge_status") or init.get("judge_score") is not None):
            first["judge"] = {"status": _text(init.get("judge_status")), "score": _num(init.get("judge_score"))}
        if init.get("critique") and first["judge"] is not None and not first["judge"].get("critique"):
            first["judge"]["critique"] = _text(init["critique"])
        first["id"] = first["id"] or final["id"].removesuffix("/rev")
        final["parent_id"] = final["parent_id"] or first["id"]
        final["stage"] = "revised"
        items.insert(0, first)
    return items


def _judge_example_item(rec: dict, src: str) -> dict:
    """A judge example: the rendered trajectory text the judge read, and the verdict on it."""
    traj = rec["trajectory"]
    if isinstance(traj, dict) and "messages" in traj:
        item = trajectory_item(traj, src)
    else:
        messages = traj if isinstance(traj, list) else [{"role": "judge input", "content": _text(traj)}]
        item = trajectory_item({"messages": messages}, src)
    item.update(kind="judge_example", question=_text(rec.get("question")) or item["question"],
                id=item["id"] or _text(rec.get("trajectory_id")) or src,
                task_id=item["task_id"] or _text(rec.get("task_id")), outcome=_num(rec.get("outcome")))
    item["judge"] = {k: _text(rec.get(k)) for k in ("analysis", "critique", "status", "teacher") if rec.get(k)}
    item["judge"]["score"] = _num(rec.get("score"))
    item["judge"].setdefault("status", "ok")
    if rec.get("reference") is not None:
        item["reference"] = _text(rec["reference"])
    return item


def classify(rec: dict) -> str:
    """Which kind of record a JSON object is: eval, step_label, judge_example, trajectory or ''."""
    if isinstance(rec.get("trajectory"), dict) and ("verdict" in rec or "benchmark" in rec or "initial" in rec):
        return "eval"
    if isinstance(rec.get("steps"), list) and "method" in rec and "messages" not in rec:
        return "step_label"
    if "trajectory" in rec and "question" in rec:
        return "judge_example"
    if isinstance(rec.get("messages"), list):
        return "trajectory"
    return ""


def load_items(paths: list[str | Path], judged: list[str | Path] = ()) -> tuple[list[dict], LoadReport]:
    """Every trajectory in ``paths`` as a viewer item, paired; ``judged`` files (``reagent judge``
    output) lend their ``judge`` verdicts to the items with the same id."""
    report = LoadReport()
    items: list[dict] = []
    pending_steps: list[tuple[dict, str]] = []
    for path in map(Path, paths):
        m = _STEP_FILE.search(path.name)
        file_step = int(m.group(1)) if m else None
        for src, rec in iter_json(path, report):
            kind = classify(rec) if isinstance(rec, dict) else ""
            if not kind:
                report.skipped.append(f"{src}: not a trajectory, eval record, judge example or step label")
                continue
            if kind == "step_label":
                steps = step_values(rec["steps"])
                if steps is None:
                    report.skipped.append(f"{src}: step label 'steps' holds no numbers")
                    continue
                if isinstance(rec.get("trajectory"), dict):
                    new = [trajectory_item(rec["trajectory"], src)]
                    new[0]["id"] = new[0]["id"] or _text(rec.get("trajectory_id"))
                    new[0]["steps"] = steps
                else:
                    pending_steps.append((rec, src))
                    continue
            elif kind == "eval":
                new = _eval_items(rec, src)
            elif kind == "judge_example":
                new = _judge_example_item(rec, src)
                new = [new]
            else:
                new = [trajectory_item(rec, src)]
            for it in new:
                it["file"] = str(path)
                if file_step is not None:
                    it["step"] = file_step
                elif _num(rec.get("step")) is not None:
                    it["step"] = int(rec["step"])
                if "method" in rec and it.get("steps"):
                    it["step_method"] = _text(rec["method"])
            items.extend(new)
    by_id: dict[str, dict] = {}  # a trajectory's own record wins over a judge example about it
    for it in sorted(items, key=lambda it: it["kind"] == "judge_example"):
        if it["id"]:
            by_id.setdefault(it["id"], it)
    for rec, src in pending_steps:
        target = by_id.get(_text(rec.get("trajectory_id")))
        if target is None:
            report.unmatched_steps += 1
            report.skipped.append(f"{src}: step labels for '{rec.get('trajectory_id')}', "
                                  "a trajectory not in the given files")
            continue
        target["steps"] = step_values(rec["steps"])
        target["step_method"] = _text(rec.get("method"))
    for path in map(Path, judged):
        for _, rec in iter_json(path, report):
            target = by_id.get(_text(rec.get("id"))) if isinstance(rec, dict) else None
            if target is not None and _judge(rec.get("judge")):
                target["judge"] = _judge(rec["judge"])
                report.judged_attached += 1
    pair_attempts(items)
    for i, it in enumerate(items):
        it["idx"] = i
    report.read = len(items)
    return items, report


def pair_attempts(items: list[dict]) -> None:
    """Set ``pair`` (the other item's index) on each initial attempt and its revision."""
    attempts = [(i, it) for i, it in enumerate(items) if it["id"] and it["kind"] != "judge_example"]
    local = {(it["file"], it["id"]): i for i, it in attempts}
    anywhere = {it["id"]: i for i, it in reversed(attempts)}
    for i, it in attempts:
        parent = it["parent_id"] or (it["id"][: -len("/rev")] if it["id"].endswith("/rev") else "")
        if not parent or (it["stage"] != "revised" and not it["id"].endswith("/rev")):
            continue
        j = local.get((it["file"], parent), anywhere.get(parent))
        if j is not None and j != i:
            it["pair"], items[j]["pair"] = j, i
