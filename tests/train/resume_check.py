"""The one resume check both supervised trainers (policy SFT, judge SFT) must pass: the
same checkpoint layout, and a run killed mid-epoch after step 1 that resumes ends where
the uninterrupted run ends (weights within 1e-6, every step logged once)."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from reagent.train.runtime import complete_checkpoints

LAYOUT = {"model", "state", "rng_rank0.pt", "trainer_state.json", "COMPLETE"}


def _weights(path: Path) -> dict:
    from transformers import AutoModelForCausalLM

    return {n: p.detach().clone() for n, p in AutoModelForCausalLM.from_pretrained(path).named_parameters()}


def check_mid_epoch_resume(run: Callable[[bool], None], out: Path, batches_at_step_1: int) -> None:
    """``run(resume)`` trains into ``out`` with ``save_every=1``; step 1 must end mid-epoch
    after ``batches_at_step_1`` micro-batches."""
    run(False)
    reference = _weights(out / "final")
    logged = (out / "metrics.jsonl").read_text()
    ckpts = complete_checkpoints(out)
    assert {p.name for p in ckpts[0].iterdir()} == LAYOUT
    first = json.loads((ckpts[0] / "trainer_state.json").read_text())
    assert (first["step"], first["epoch"], first["batches_in_epoch"]) == (1, 0, batches_at_step_1)
    # what a kill after step 1 leaves: later checkpoints gone, a half-written one behind
    for c in ckpts[1:]:
        shutil.rmtree(c)
    shutil.rmtree(out / "final")
    (out / "checkpoints" / "step-000002.tmp").mkdir()
    run(True)
    assert complete_checkpoints(out)[-1].name == ckpts[-1].name
    resumed = _weights(out / "final")
    for n, p in reference.items():
        assert torch.allclose(p, resumed[n], atol=1e-6), n
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(line)["step"] for line in logged.splitlines()]
