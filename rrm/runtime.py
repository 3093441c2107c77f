"""The plumbing of the judge SFT loop: process ranks, the metrics log, checkpoints.

Kept out of :mod:`rrm.sft` so that the loop reads as the algorithm.

Ranks come from ``torch.distributed`` when it is initialised, else from the launcher's
``RANK``/``WORLD_SIZE``, else from accelerate: accelerate reports a single process for
DeepSpeed on CPU even when DeepSpeed runs a process group of several, and only the
first two sources are right in every setting (CPU or GPU, DDP or DeepSpeed).

A checkpoint ``out/checkpoints/step-N`` holds the accelerate state (model, optimizer,
RNG; ZeRO shards under DeepSpeed) in ``state/``, the model in Hugging Face format in
``model/`` and ``trainer_state.json``. It is written under ``step-N.tmp`` and renamed
after a ``complete`` marker is in place, so a kill never leaves a directory that resume
would mistake for a checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch


class Ranks:
    """Rank, world size, barrier and collectives that are right on every backend."""

    def __init__(self, accelerator: Any):
        self.accelerator = accelerator

    @staticmethod
    def _dist() -> bool:
        import torch.distributed as dist

        return dist.is_available() and dist.is_initialized()

    @property
    def rank(self) -> int:
        if self._dist():
            return torch.distributed.get_rank()
        return int(os.environ.get("RANK", self.accelerator.process_index))

    @property
    def world(self) -> int:
        if self._dist():
            return torch.distributed.get_world_size()
        return int(os.environ.get("WORLD_SIZE", self.accelerator.num_processes))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self._dist() and self.world > 1:
            torch.distributed.barrier()

    def gather(self, items: list) -> list:
        """Every rank's list, concatenated in rank order (on every rank)."""
        if not (self._dist() and self.world > 1):
            return list(items)
        parts: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(parts, list(items))
        return [x for part in parts for x in part]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._dist() and self.world > 1:
            torch.distributed.all_reduce(tensor)
        return tensor


class MetricsLog:
    """Rank-0 metrics: one JSON object a line in ``path``, and a short line on the bar."""

    def __init__(self, path: Path, enabled: bool, bar: Any = None):
        self.path, self.enabled, self.bar = path, enabled, bar

    def log(self, metrics: dict, step: int) -> None:
        if not self.enabled:
            return
        row = {"step": step, "time": round(time.time(), 3), **metrics}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.bar is not None:
            self.bar.write(f"step {step}: " + json.dumps(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()
                 if not isinstance(v, dict)}))


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after ``step``: a resumed run logs those steps again."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    tmp.replace(path)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint with a ``complete`` marker, or None."""
    done = [p for p in (out / "checkpoints").glob("step-*")
            if p.is_dir() and not p.name.endswith(".tmp") and (p / "complete").exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(accelerator: Any, ranks: Ranks, model: Any, tokenizer: Any, out: Path,
                    step: int, state: dict, keep: int) -> Path:
    """Write ``out/checkpoints/step-N`` atomically (tmp dir, marker, rename); prune old."""
    final = out / "checkpoints" / f"step-{step:07d}"
    tmp = final.with_name(final.name + ".tmp")
    if ranks.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    ranks.barrier()
    accelerator.save_state(str(tmp / "state"))  # every rank: ZeRO shards its own part
    save_model(accelerator, ranks, model, tokenizer, tmp / "model")
    ranks.barrier()
    if ranks.main:
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2, default=str))
        (tmp / "complete").write_text("")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        done = sorted((p for p in final.parent.glob("step-*") if (p / "complete").exists()),
                      key=lambda p: int(p.name.split("-")[1]))
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    ranks.barrier()
    return final


def save_model(accelerator: Any, ranks: Ranks, model: Any, tokenizer: Any, path: Path) -> None:
    """The model in Hugging Face format (gathered from ZeRO-3 shards when needed)."""
    state_dict = accelerator.get_state_dict(model)  # collective under ZeRO-3
    if ranks.main:
        accelerator.unwrap_model(model).save_pretrained(path, state_dict=state_dict,
                                                        safe_serialization=True)
        tokenizer.save_pretrained(path)


@contextlib.contextmanager
def generation_model(accelerator: Any, model: Any):
    """The unwrapped model with full weights for generation (gathered under ZeRO-3)."""
    unwrapped = accelerator.unwrap_model(model)
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None and plugin.zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            yield unwrapped
    else:
        yield unwrapped
