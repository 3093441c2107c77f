"""Step-labelled records to PRM batches: token ids, the token of each step, targets.

A :class:`reagent.records.StepLabel` carries its trajectory (``trajectory``: a
Trajectory dict) and one ``{"q", "advantage"}`` per step. Agent trajectories have one
step per assistant turn; single-response solutions (Math-Shepherd, PRM800K) also give
each step's ``text``, and the last assistant message is ``join_steps(texts)``. Step
positions come from :mod:`reagent.steps`, the one definition every PRM path uses.

A record that cannot be encoded (no trajectory, step count differs from the turns,
too long) is skipped and counted with its reason, never trained on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from reagent.records import Message, StepLabel, Trajectory
from reagent.steps import step_token_positions

STEP_SEP = "\n\n"


@dataclass
class StepItem:
    """One encoded trajectory: ids, the token index of each step and its targets."""

    id: str
    group: str
    input_ids: list[int]
    positions: list[int]
    q: list[float]
    advantage: list[float]
    outcome: float | None


@dataclass
class EncodeReport:
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in self.skipped.most_common())
        return f"encoded {self.kept} trajectories" + (f"; skipped {reasons}" if reasons else "")


def step_texts_of(steps: list[dict]) -> list[str] | None:
    """The per-step texts of a single-response solution, or None for agent steps."""
    texts = [s.get("text") for s in steps if isinstance(s, dict)]
    return texts if texts and all(isinstance(t, str) for t in texts) else None


def encode_messages(tokenizer, messages: list[Message], step_texts: list[str] | None = None,
                    sep: str = STEP_SEP) -> tuple[list[int], list[int]]:
    """``(ids, positions)`` for a trajectory's messages; see :func:`reagent.steps.step_token_positions`."""
    return step_token_positions(tokenizer, messages, step_texts=step_texts, sep=sep)


def encode_label(tokenizer, label: StepLabel, max_len: int) -> StepItem:
    """Encode one label record; raises ``ValueError`` with the reason when it cannot be used."""
    if label.trajectory is None:
        raise ValueError("no trajectory in the record")
    traj = Trajectory.from_dict(label.trajectory, "trajectory.")
    ids, positions = encode_messages(tokenizer, traj.messages, step_texts_of(label.steps),
                                     label.params.get("sep", STEP_SEP))
    if len(positions) != len(label.steps):
        raise ValueError(f"{len(label.steps)} labels for {len(positions)} steps")
    if len(ids) > max_len:
        raise ValueError("longer than max_seq_len")
    return StepItem(id=label.trajectory_id, group=traj.task_id or label.trajectory_id, input_ids=ids,
                    positions=positions, q=[float(s["q"]) for s in label.steps],
                    advantage=[float(s["advantage"]) for s in label.steps], outcome=traj.outcome)


def encode_labels(tokenizer, labels: list[StepLabel], max_len: int) -> tuple[list[StepItem], EncodeReport]:
    report, items = EncodeReport(), []
    for label in labels:
        try:
            items.append(encode_label(tokenizer, label, max_len))
            report.kept += 1
        except ValueError as e:
            report.skipped[str(e).split(":")[0][:80]] += 1
    return items, report


def collate_steps(items: list[StepItem], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``/``attention_mask`` ``(B, L)``; ``positions``, ``step_mask``,
    ``q``, ``advantage`` ``(B, T)``; ``outcome`` ``(B,)`` (NaN where unknown)."""
    width = max(len(it.input_ids) for it in items)
    steps = max(len(it.positions) for it in items)
    b = len(items)
    out = {
        "input_ids": torch.full((b, width), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((b, width), dtype=torch.long),
        "positions": torch.zeros((b, steps), dtype=torch.long),
        "step_mask": torch.zeros((b, steps)),
        "q": torch.zeros((b, steps)),
        "advantage": torch.zeros((b, steps)),
        "outcome": torch.full((b,), float("nan")),
    }
    for i, it in enumerate(items):
        n, k = len(it.input_ids), len(it.positions)
        out["input_ids"][i, :n] = torch.tensor(it.input_ids)
        out["attention_mask"][i, :n] = 1
        out["positions"][i, :k] = torch.tensor(it.positions)
        out["step_mask"][i, :k] = 1
        out["q"][i, :k] = torch.tensor(it.q)
        out["advantage"][i, :k] = torch.tensor(it.advantage)
        if it.outcome is not None:
            out["outcome"][i] = it.outcome
    return out
