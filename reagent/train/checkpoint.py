"""Checkpoints that survive a kill at any instant.

A checkpoint is a directory ``step-000010`` holding the model (``save_pretrained``),
the tokenizer, and ``state.pt``: optimizer, scheduler, RNG states, data position and
step. It is written under ``step-000010.tmp`` and renamed only after a ``COMPLETE``
marker is in place, so a half-written directory is never mistaken for a checkpoint
(rename is atomic on one filesystem). Under DeepSpeed the engine's own
``save_checkpoint`` format is used for the optimizer shards.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

MARKER = "COMPLETE"


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step:06d}"


def save_checkpoint(output_dir: str | Path, step: int, model: Any, tokenizer: Any, state: dict,
                    keep: int = 2, save_fn=None) -> Path:
    """Write checkpoint ``step`` atomically; keep the ``keep`` newest complete ones.

    ``save_fn(tmp_dir)`` replaces the default model+state writer (accelerate/DeepSpeed).
    """
    final = checkpoint_dir(output_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if save_fn is not None:
        save_fn(tmp)
    else:
        model.save_pretrained(tmp / "model", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "model")
    torch.save({**state, "rng": rng_state(), "step": step}, tmp / "state.pt")
    (tmp / MARKER).write_text(str(step))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in complete_checkpoints(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first; ``.tmp`` and marker-less directories are ignored."""
    root = Path(output_dir) / "checkpoints"
    if not root.exists():
        return []
    found = [p for p in root.iterdir()
             if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".tmp")
             and (p / MARKER).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def load_state(ckpt: Path) -> dict:
    return torch.load(ckpt / "state.pt", weights_only=False)
