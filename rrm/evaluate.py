"""Judge quality on a labelled file: one report for any judge (local, HTTP, or the
verdicts already stored in a judged trajectory file).

Labelled items are :class:`~reagent.records.JudgeExample` records (teacher score and
outcome) or :class:`~reagent.records.Trajectory` records (outcome; an existing
``judge`` field is the verdict when no judge is given). Pairwise accuracy groups items
by question (judge examples) or task id (trajectories).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reagent.records import JudgeExample, Judgment, Trajectory, guess_record_type
from rrm.metrics import judge_report


@dataclass
class LabelledItem:
    """What the report needs from one item, whatever record it came from."""

    record: JudgeExample | Trajectory
    group: str
    teacher_score: float | None
    outcome: float | None
    judgment: Judgment | None = None  # a verdict already stored with the item


def labelled_item(record: JudgeExample | Trajectory) -> LabelledItem:
    if isinstance(record, JudgeExample):
        return LabelledItem(record, record.question, record.score, record.outcome)
    return LabelledItem(record, record.task_id or record.question, None, record.outcome,
                        record.judge)


def load_labelled(path: str | Path, limit: int | None = None) -> list[LabelledItem]:
    """Judge examples or trajectories from a JSONL file (the type is read per line)."""
    items = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            cls = JudgeExample if guess_record_type(obj) is JudgeExample else Trajectory
            try:
                items.append(labelled_item(cls.from_dict(obj)))
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
            if limit is not None and len(items) >= limit:
                break
    return items


def report(items: list[LabelledItem], judgments: list[Judgment | None],
           threshold: float = 0.5) -> dict:
    """The judge-quality report (:func:`rrm.metrics.judge_report`) for items and verdicts."""
    if len(items) != len(judgments):
        raise ValueError(f"{len(items)} items but {len(judgments)} judgments")
    return judge_report(
        statuses=[j.status if j is not None else "missing" for j in judgments],
        scores=[j.score if j is not None else None for j in judgments],
        teacher_scores=[it.teacher_score for it in items],
        outcomes=[it.outcome for it in items],
        groups=[it.group for it in items],
        threshold=threshold,
    )


def evaluate_judge(judge: Any, items: list[LabelledItem], batch_size: int = 64,
                   threshold: float = 0.5, progress: bool = False) -> tuple[dict, list[Judgment]]:
    """Score every item with ``judge`` (a :class:`rrm.judge.Judge`); (report, judgments)."""
    from tqdm.auto import tqdm

    judgments: list[Judgment] = []
    bar = tqdm(total=len(items), desc="judging", unit="item", disable=not progress)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        judgments += judge.score([it.record for it in chunk])
        bar.update(len(chunk))
    bar.close()
    return report(items, judgments, threshold), judgments
