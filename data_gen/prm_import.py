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

from reagent.jsonl import RecordError, iter_json_lines
from reagent.records import StepLabel
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
    """One Math-Shepherd record; raises ``ValueError`` naming what is wrong."""
    text, label = obj.get("input"), obj.get("label")
    if not isinstance(text, str) or not isinstance(label, str):
        raise ValueError("field 'input' and 'label' must be strings")
    parts = text.split(KI_TAG)
    if len(parts) < 2:
        raise ValueError(f"field 'input': no '{KI_TAG}' step tag")
    marks, pos = [], 0
    for k, part in enumerate(parts[:-1]):
        if label[pos:pos + len(part)] != part or pos + len(part) >= len(label):
            raise ValueError(f"field 'label': does not match 'input' at step {k + 1}")
        mark = label[pos + len(part)]
        if mark not in "+-":
            raise ValueError(f"field 'label': step {k + 1} is marked {mark!r}, expected '+' or '-'")
        marks.append(mark)
        pos += len(part) + 1
    first = _FIRST_STEP.search(parts[0])
    problem = parts[0][: first.start()].strip() if first else ""
    if not problem:
        raise ValueError("field 'input': cannot find the problem before 'Step 1:'")
    texts = [parts[0][first.start():].strip()] + [p.strip() for p in parts[1:-1]]
    if any(not t for t in texts):
        raise ValueError("field 'input': an empty step between tags")
    return _label(record_id, problem, texts, [1.0 if m == "+" else 0.0 for m in marks], "mc",
                  {"source": "math-shepherd", "estimate": "hard"}, {"task": obj.get("task")})


def parse_prm800k(obj: dict, record_id: str, neutral_q: float = 1.0) -> StepLabel:
    """One PRM800K labelling session; raises ``ValueError`` naming what is wrong."""
    question, label = obj.get("question"), obj.get("label")
    if not isinstance(question, dict) or not isinstance(question.get("problem"), str):
        raise ValueError("field 'question.problem' must be a string")
    if not isinstance(label, dict) or not isinstance(label.get("steps"), list) or not label["steps"]:
        raise ValueError("field 'label.steps' must be a non-empty list")
    rating_q = {1: 1.0, 0: neutral_q, -1: 0.0}
    texts, qs = [], []
    for k, step in enumerate(label["steps"]):
        where = f"label.steps[{k}]"
        if not isinstance(step, dict):
            raise ValueError(f"field '{where}' must be an object")
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
            raise ValueError(f"field '{where}': completion without text or with rating {rating!r} (not -1, 0, 1)")
        texts.append(pick["text"].strip())
        qs.append(rating_q[rating])
        if rating == -1:
            break
    if not texts:
        raise ValueError("field 'label.steps': no usable step")
    return _label(record_id, question["problem"], texts, qs, "human",
                  {"source": "prm800k", "neutral_q": neutral_q},
                  {"finish_reason": label.get("finish_reason"), "labeler": obj.get("labeler")})


def import_prm_file(path: str, fmt: str, neutral_q: float = 1.0, skip_bad: bool = True,
                    errors: list[RecordError] | None = None) -> Iterator[StepLabel]:
    """Stream step labels from a Math-Shepherd or PRM800K JSONL file.

    A bad line raises :class:`reagent.jsonl.RecordError` (``FILE:LINE: reason``), or with
    ``skip_bad`` is appended to ``errors`` and skipped.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}: use one of {', '.join(FORMATS)}")
    errors = errors if errors is not None else []
    for lineno, text in iter_json_lines(path):
        try:
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise RecordError(path, lineno, f"malformed JSON: {e.msg} at column {e.colno}") from None
            if not isinstance(obj, dict):
                raise RecordError(path, lineno, f"expected an object, got {type(obj).__name__}")
            record_id = str(obj.get("id", f"{fmt}-{lineno}"))
            try:
                yield (parse_math_shepherd(obj, record_id) if fmt == "math-shepherd"
                       else parse_prm800k(obj, record_id, neutral_q))
            except ValueError as e:
                raise RecordError(path, lineno, str(e)) from None
        except RecordError as err:
            if not skip_bad:
                raise
            errors.append(err)
