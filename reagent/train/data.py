"""Data for supervised trainers: the one train/val splitter, length-grouped batches, the
masked-LM loss. Policy SFT, judge SFT and the PRM trainer use these, with
:mod:`reagent.train.runtime` for ranks, logging and checkpoints.

The batch order is a pure function of ``(seed, epoch)``, so a resumed run can skip to
the exact batch it stopped at (``accelerate.skip_first_batches``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def split_by_group(items: Sequence[T], group: Callable[[T], Hashable], fraction: float,
                   seed: int, linked: Callable[[T], Hashable] | None = None
                   ) -> tuple[list[T], list[T]]:
    """(train, validation) with every group (task id, question) on one side only.

    ``linked`` is a second key (e.g. the normalised question beside the task id): items
    that share a ``group`` key *or* a ``linked`` key are one component (union-find), so
    neither key is ever on both sides. The components, ordered by their smallest group key
    and shuffled with ``seed``, are assigned whole: ``round(fraction * components)`` go to
    validation, at least one when there are two or more and ``fraction > 0``, and at
    least one always stays in train. ``fraction`` 0 gives an empty validation side.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    keys = [group(x) for x in items]
    parent: dict[Any, Any] = {("g", k): ("g", k) for k in keys}

    def find(node: Any) -> Any:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    if linked is not None:
        for k, x in zip(keys, items):
            other = ("l", linked(x))
            parent.setdefault(other, other)
            parent[find(other)] = find(("g", k))
    members: dict[Any, list[Hashable]] = {}
    for k in set(keys):
        members.setdefault(find(("g", k)), []).append(k)
    components = sorted((sorted(ks, key=str) for ks in members.values()), key=lambda ks: str(ks[0]))
    random.Random(seed).shuffle(components)
    n = len(components)
    n_val = min(max(1, round(fraction * n)), n - 1) if n > 1 and fraction > 0 else 0
    val = {k for ks in components[:n_val] for k in ks}
    return [x for x, k in zip(items, keys) if k not in val], [x for x, k in zip(items, keys) if k in val]


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Shuffled batches of indices; with ``group`` built from length-sorted windows of 50
    batches so a batch holds similar lengths (less padding). Reshuffled per epoch by
    ``set_epoch``, deterministically, so a resumed run sees the same order."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, shuffle: bool = True,
                 group: bool = True):
        self.lengths, self.batch_size, self.seed, self.shuffle = lengths, batch_size, seed, shuffle
        self.group = group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        idx = list(range(len(self.lengths)))
        rng = random.Random(self.seed * 1000 + self.epoch)
        if self.shuffle:
            rng.shuffle(idx)
        window = self.batch_size * (50 if self.group else 1)
        batches = []
        for w in range(0, len(idx), window):
            chunk = sorted(idx[w:w + window], key=lambda i: self.lengths[i])
            batches += [chunk[b:b + self.batch_size] for b in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def pad_collate(pad_id: int) -> Callable[[list[tuple[list[int], list[int]]]], dict[str, torch.Tensor]]:
    """Right-pad ``(ids, loss_mask)`` pairs; labels are -100 where the mask is 0 or padding."""
    def fn(batch: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for i, (ids, mask) in enumerate(batch):
            t = torch.tensor(ids)
            input_ids[i, :len(ids)] = t
            attention[i, :len(ids)] = 1
            labels[i, :len(ids)] = torch.where(torch.tensor(mask, dtype=torch.bool), t, -100)
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    return fn


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(mean loss over target tokens, number of target tokens); logits ``(B, L, V)``,
    labels ``(B, L)`` with -100 on masked positions; token t predicts label t+1."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    n = int((shift_labels != -100).sum())
    loss = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
        ignore_index=-100, reduction="sum")
    return loss / max(n, 1), n


def epoch_batches(accelerator: Any, loader: Any, sampler: Any, epoch: int, skip: int = 0) -> Any:
    """The batches of ``epoch`` from batch ``skip`` on (an exact resume position).

    accelerate's loaders re-set their sampler's epoch from their own counter on every
    pass, which is 0 for the loader made to skip on resume: every one gets ``epoch``.
    """
    batches = accelerator.skip_first_batches(loader, skip) if skip else loader
    for obj in (sampler, loader, batches):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
    return batches
