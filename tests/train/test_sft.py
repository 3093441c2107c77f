"""Policy SFT on the shared runtime: the judge's checkpoint layout, exact mid-epoch resume."""

import json

import pytest

from reagent.envs.toy import ToyEnv
from reagent.envs.toy_demos import demonstrations
from reagent.jsonl import write_records
from reagent.train.sft import SFTConfig, train
from tests.train.resume_check import check_mid_epoch_resume


@pytest.mark.slow
def test_resume_mid_epoch_reproduces_the_uninterrupted_run(tiny_model_dir, tmp_path):
    env = ToyEnv(seed=0)
    data = tmp_path / "demos.jsonl"
    write_records(data, demonstrations(env, env.tasks("train", 10), seed=0))
    out = tmp_path / "run"
    # 9 training tasks, batches of 2: 5 batches an epoch, 2 per step -> step 1 ends mid-epoch
    kwargs = {"data": str(data), "model": str(tiny_model_dir), "out": str(out), "val_fraction": 0.1,
              "max_steps": 4, "batch_size": 2, "grad_accum": 2, "lr": 1e-2, "save_every": 1,
              "keep_checkpoints": 100, "eval_every": 2}
    check_mid_epoch_resume(lambda resume: train(SFTConfig(**kwargs, resume=resume)), out, batches_at_step_1=2)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3, 4]
