"""Public math PRM data as step labels: Math-Shepherd and PRM800K.

Both become :class:`reagent.records.StepLabel` records whose trajectory is
``[user: problem, assistant: join_steps(step texts)]`` and whose steps carry their
``text`` (single-response solutions, :mod:`reagent.steps`), so ``train-prm`` values
each step at the last token of its text.

* **Math-Shepherd** (Wang et al. 2024), JSONL ``{"input", "label", "task"}``:
  ``input`` is the problem followed by ``Step 1: ... ки\\nStep 2: ... ки``; ``label`` is
  the same text with each ``ки`` replaced by ``+`` or ``-``. Its labels are automatic
  Monte-Carlo "hard estimates" (``+`` if some completion from the step reached the
  answer), so the method is ``mc`` with ``params.estimate = "hard"``; q = 1 / 0.
* **PRM800K** (Lightman et al. 2023), JSONL of labelling sessions
  ``{"question": {"problem", ...}, "label": {"steps": [{"completions": [{"text",
  "rating"}], "human_completion", "chosen_completion"}], "finish_reason"}}``. Each
  step takes the human completion if there is one, else the chosen completion; a
  step with none chosen (where the labeller stopped) takes its first completion rated
  -1 and ends the solution. Ratings map to q: 1 -> 1, -1 -> 0, 0 (neutral) ->
  ``neutral_q`` (default 1: neutral steps are not errors). Method ``human``.

Advantages are ``q_t - q_{t-1}`` (0 for the first step); the trajectory's outcome is
the last step's q (neither set records final-answer correctness separately).
Every bad record raises or is counted with ``FILE:LINE: reason``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator

from reagent.jsonl import SkipReport, read_records
from reagent.records import FieldError, StepLabel
from reagent.steps import KI_TAG, join_steps

FORMATS = ("math-shepherd", "prm800k")
_FIRST_STEP = re.compile(r"(?i)\bstep\s*1\s*[:.]")


def _task_id(problem: str) -> str:
    return "q-" + hashlib.sha256(problem.encode()).hexdigest()[:12]


def _label(record_id: str, problem: str, texts: list[str], qs: list[float], method: str, params: dict,
           extra: dict | None = None) -> StepLabel:
    steps = [{"q": q, "advantage": q - (qs[i - 1] if i else q), "text": t} for i, (t, q) in enumerate(zip(texts, qs))]
    traj = {"id": record_id, "task_id": _task_id(problem), "outcome": qs[-1], "messages": [
        {"role": "user", "content": problem}, {"role": "assistant", "content": join_steps(texts)}]}
    return StepLabel(trajectory_id=record_id, method=method, params={**params, "sep": "\n\n"}, steps=steps,
                     trajectory=traj, extra=extra or {})


def parse_math_shepherd(obj: dict, record_id: str) -> StepLabel:
    """One Math-Shepherd record; raises :class:`FieldError` naming the field."""
    text, label = obj.get("input"), obj.get("label")
    if not isinstance(text, str) or not isinstance(label, str):
        raise FieldError("input", "'input' and 'label' must be strings")
    parts = text.split(KI_TAG)
    if len(parts) < 2:
        raise FieldError("input", f"no '{KI_TAG}' step tag")
    marks, pos = [], 0
    for k, part in enumerate(parts[:-1]):
        if label[pos:pos + len(part)] != part or pos + len(part) >= len(label):
            raise FieldError("label", f"does not match 'input' at step {k + 1}")
        mark = label[pos + len(part)]
        if mark not in "+-":
            raise FieldError("label", f"step {k + 1} is marked {mark!r}, expected '+' or '-'")
        marks.append(mark)
        pos += len(part) + 1
    first = _FIRST_STEP.search(parts[0])
    problem = parts[0][: first.start()].strip() if first else ""
    if not problem:
        raise FieldError("input", "cannot find the problem before 'Step 1:'")
    texts = [parts[0][first.start():].strip()] + [p.strip() for p in parts[1:-1]]
    if any(not t for t in texts):
        raise FieldError("input", "an empty step between tags")
    return _label(record_id, problem, texts, [1.0 if m == "+" else 0.0 for m in marks], "mc",
                  {"source": "math-shepherd", "estimate": "hard"}, {"task": obj.get("task")})


def parse_prm800k(obj: dict, record_id: str, neutral_q: float = 1.0) -> StepLabel:
    """One PRM800K labelling session; raises :class:`FieldError` naming the field."""
    question, label = obj.get("question"), obj.get("label")
    if not isinstance(question, dict) or not isinstance(question.get("problem"), str):
        raise FieldError("question.problem", "must be a string")
    if not isinstance(label, dict) or not isinstance(label.get("steps"), list) or not label["steps"]:
        raise FieldError("label.steps", "must be a non-empty list")
    rating_q = {1: 1.0, 0: neutral_q, -1: 0.0}
    texts, qs = [], []
    for k, step in enumerate(label["steps"]):
        where = f"label.steps[{k}]"
        if not isinstance(step, dict):
            raise FieldError(where, "must be an object")
        completions = step.get("completions") or []
        human, chosen = step.get("human_completion"), step.get("chosen_completion")
        if isinstance(human, dict) and isinstance(human.get("text"), str):
            pick, rating = human, 1 if human.get("rating") is None else human.get("rating")
        elif isinstance(chosen, int) and 0 <= chosen < len(completions):
            pick = completions[chosen]
            rating = pick.get("rating")
        else:
            pick = next((c for c in completions if isinstance(c, dict) and c.get("rating") == -1), None)
            if pick is None:
                break  # the labeller stopped without a chosen or wrong step: the solution ends here
            rating = -1
        if not isinstance(pick, dict) or not isinstance(pick.get("text"), str) or rating not in rating_q:
            raise FieldError(where, f"completion without text or with rating {rating!r} (not -1, 0, 1)")
        texts.append(pick["text"].strip())
        qs.append(rating_q[rating])
        if rating == -1:
            break
    if not texts:
        raise FieldError("label.steps", "no usable step")
    return _label(record_id, question["problem"], texts, qs, "human",
                  {"source": "prm800k", "neutral_q": neutral_q},
                  {"finish_reason": label.get("finish_reason"), "labeler": obj.get("labeler")})


class _Reader:
    """Adapts a parser to :func:`reagent.jsonl.read_records`, which adds ``FILE:LINE`` to its errors."""

    def __init__(self, fmt: str, neutral_q: float):
        if fmt not in FORMATS:
            raise ValueError(f"format={fmt!r}: use one of {', '.join(FORMATS)}")
        self.fmt, self.neutral_q = fmt, neutral_q

    def from_dict(self, obj) -> StepLabel:
        if not isinstance(obj, dict):
            raise FieldError("<record>", f"expected an object, got {type(obj).__name__}")
        key = obj.get("input") if self.fmt == "math-shepherd" else json.dumps(obj.get("question"), sort_keys=True)
        record_id = str(obj.get("id") or f"{self.fmt}-{hashlib.sha256(str(key).encode()).hexdigest()[:12]}")
        if self.fmt == "math-shepherd":
            return parse_math_shepherd(obj, record_id)
        return parse_prm800k(obj, record_id, self.neutral_q)


def import_prm_file(path: str, fmt: str, neutral_q: float = 1.0, skip_bad: bool = True,
                    report: SkipReport | None = None) -> Iterator[StepLabel]:
    """Stream step labels from a Math-Shepherd or PRM800K JSONL file.

    A bad line raises :class:`reagent.jsonl.RecordError` (``FILE:LINE: field 'x': reason``),
    or with ``skip_bad`` is counted in ``report`` and skipped.
    """
    return read_records(path, _Reader(fmt, neutral_q), skip_bad=skip_bad, report=report)  # type: ignore[arg-type]
