"""Filters over judge examples: parse status, answer leakage, duplicates, balance.

All are pure functions over lists of :class:`~reagent.records.JudgeExample`, seeded where
random, so a dataset can be rebuilt exactly from its inputs and config.

* **Leakage.** A critique is shown to the agent, so it must never give the answer away. An
  example leaks when a reference answer, SQuAD-normalised (lowercase, no punctuation or
  articles, single spaces; :func:`reagent.rewards.short_answer.normalize_answer`), occurs
  in the normalised critique as a whole-token run: "Paris" leaks in "the answer is
  paris.", "59" does not leak in "159". Answers that normalise to ``yes``/``no``/
  ``true``/``false`` are not checked, since those words occur in ordinary critiques
  ("- No issues found.") and every example would be dropped; such examples count as
  ``unchecked``, as do examples with no known reference. The analysis is checked too (the
  judge is trained to write it), with one difference: it may restate what the trajectory
  shows ("the agent boxed 59"), so it leaks only when it names a reference answer that
  the rendered trajectory does not contain, i.e. the teacher wrote what it knew from the
  reference rather than what it saw.
* **Duplicates.** Identical rendered trajectories (same question, same turns) keep only
  the first example, so a trajectory annotated twice cannot weigh double or straddle the
  split.
* **Balance.** Examples fall in cells by outcome (correct = outcome >= 0.5, incorrect,
  unknown) and/or teacher-score bin; each cell is sampled down to ``cap`` (default: the
  smallest non-empty cell with a known outcome).
* **Split.** Not here: ``build-dataset`` uses the one splitter of every trainer,
  :func:`reagent.train.data.split_by_group`, keyed on :func:`task_of` and linked by
  :func:`split_key` (the normalised question), so examples sharing a task id *or* a
  question are one group and no task and no question appears on both sides.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from reagent.records import JudgeExample
from reagent.rewards.short_answer import CLOSED_ANSWERS, as_references, normalize_answer

BALANCE_MODES = ("none", "outcome", "score", "outcome_score")
DEFAULT_STATUSES = ("ok",)
LEAK_FIELDS = ("critique", "analysis")


def status_of(ex: JudgeExample) -> str:
    """The parse status annotate recorded; examples from elsewhere count as ``ok`` if scored."""
    return str(ex.extra.get("status", "ok" if ex.score is not None else "missing_score"))


def task_of(ex: JudgeExample) -> str:
    """The example's task id, or one derived from its question when it has none."""
    task = ex.extra.get("task_id")
    if task:
        return str(task)
    return "q-" + hashlib.sha1(normalize_answer(ex.question).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------
# Leakage


def leaks_answer(text: str, reference: Any) -> bool | None:
    """Does ``text`` contain a reference answer? None when no reference can be checked."""
    answers = [normalize_answer(r) for r in as_references(reference)] if reference is not None else []
    answers = [a for a in answers if a and a not in CLOSED_ANSWERS]
    if not answers:
        return None
    haystack = f" {normalize_answer(text)} "
    return any(f" {a} " in haystack for a in answers)


def leak_check(ex: JudgeExample, fields: Sequence[str] = LEAK_FIELDS) -> bool | None:
    """Does any of ``fields`` of the example leak its reference? None: unchecked.

    The critique leaks on any occurrence; the analysis only on an answer the rendered
    trajectory does not show (module docstring).
    """
    reference = ex.extra.get("reference")
    results = []
    for f in fields:
        leak = leaks_answer(str(getattr(ex, f, "") or ""), reference)
        if leak and f == "analysis":
            visible = ex.trajectory if isinstance(ex.trajectory, str) else json.dumps(
                ex.trajectory, ensure_ascii=False)
            # Punctuation as spaces too, so "\\boxed{59}" shows 59 (plain SQuAD
            # normalisation would make it "boxed59").
            leak = not (leaks_answer(visible, reference)
                        or leaks_answer(re.sub(r"[^\w\s]", " ", visible), reference))
        results.append(leak)
    if all(r is None for r in results):
        return None
    return any(bool(r) for r in results)


# ---------------------------------------------------------------------------------------
# Status, leakage and duplicate filters together


def trajectory_hash(ex: JudgeExample) -> str:
    """Hash of the rendered trajectory (which starts with the question)."""
    text = ex.trajectory if isinstance(ex.trajectory, str) else json.dumps(
        ex.trajectory, sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(" ".join(text.split()).encode()).hexdigest()


def clean(examples: Sequence[JudgeExample], keep_statuses: Sequence[str] = DEFAULT_STATUSES,
          drop_leaks: bool = True, leak_fields: Sequence[str] = LEAK_FIELDS,
          dedup: bool = True) -> tuple[list[JudgeExample], Counter]:
    """Examples that pass every filter, and counts of what was dropped (and left unchecked).

    Order: parse status (and a score must be present), then leakage, then duplicates,
    so a leaking first copy cannot hide a clean second one.
    """
    kept: list[JudgeExample] = []
    counts: Counter = Counter()
    seen: set[str] = set()
    for ex in examples:
        status = status_of(ex)
        if status not in keep_statuses or ex.score is None:
            counts[f"dropped_status_{status}"] += 1
            continue
        leak = leak_check(ex, leak_fields)
        if leak is None:
            counts["leak_unchecked"] += 1
        if leak and drop_leaks:
            counts["dropped_leak"] += 1
            continue
        if dedup:
            h = trajectory_hash(ex)
            if h in seen:
                counts["dropped_duplicate"] += 1
                continue
            seen.add(h)
        kept.append(ex)
    return kept, counts


# ---------------------------------------------------------------------------------------
# Balance


def outcome_class(outcome: float | None, threshold: float = 0.5) -> str:
    if outcome is None:
        return "unknown"
    return "correct" if outcome >= threshold else "incorrect"


def score_bin(score: float, bins: int) -> int:
    return min(int(score * bins), bins - 1) if score is not None else -1


def balance(examples: Sequence[JudgeExample], mode: str = "outcome", bins: int = 5,
            cap: int | None = None, seed: int = 0) -> list[JudgeExample]:
    """Sample every cell down to ``cap`` examples (default: the smallest non-empty cell
    with a known outcome; the ``unknown`` outcome cell is capped the same way but never
    sets the cap).

    ``mode`` picks the cells: ``outcome`` (correct/incorrect/unknown), ``score`` (teacher
    score in ``bins`` equal bins over [0, 1]), ``outcome_score`` (both), ``none``. The
    kept examples stay in input order.
    """
    if mode not in BALANCE_MODES:
        raise ValueError(f"balance='{mode}' is not one of: {', '.join(BALANCE_MODES)}")
    if bins < 1:
        raise ValueError(f"score_bins must be >= 1, got {bins}")
    if mode == "none" or not examples:
        return list(examples)
    cells: dict[tuple, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        key = ()
        if mode in ("outcome", "outcome_score"):
            key += (outcome_class(ex.outcome),)
        if mode in ("score", "outcome_score"):
            key += (score_bin(ex.score, bins),)
        cells[key].append(i)
    # The default cap is the smallest *known* cell: examples without an outcome are not a
    # class to balance against, and a handful of them must not shrink every other cell.
    known = [v for k, v in cells.items() if "unknown" not in k] or list(cells.values())
    target = cap if cap is not None else min(len(v) for v in known)
    rng = random.Random(seed)
    keep: set[int] = set()
    for key in sorted(cells, key=str):
        idx = cells[key]
        keep.update(idx if len(idx) <= target else rng.sample(idx, target))
    return [ex for i, ex in enumerate(examples) if i in keep]


def split_key(ex: JudgeExample) -> str:
    """The second key of the split (beside :func:`task_of`): the normalised question."""
    return normalize_answer(ex.question)
