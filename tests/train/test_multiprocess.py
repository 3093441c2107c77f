"""Two CPU processes under ``accelerate launch`` with DeepSpeed ZeRO-2/3: GRPO with
episodes of different lengths and a rank whose groups are all dropped finishes; its
checkpoint is a full ``save_pretrained`` model; a run killed after step 2 and resumed
ends where an uninterrupted run ends."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import psutil
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sft_policy(tmp_path_factory) -> Path:
    """A nano policy briefly fine-tuned on demonstrations: its episodes stop (eos, answers)
    at different times, unlike an untrained model that always runs to its limit."""
    from reagent.envs.toy import ToyEnv
    from reagent.envs.toy_demos import demonstrations
    from reagent.jsonl import write_records
    from reagent.tiny_model import make_tiny_model
    from reagent.train.sft import SFTConfig, train

    root = tmp_path_factory.mktemp("sft_policy")
    make_tiny_model(root / "base", size="nano", seed=0)
    env = ToyEnv(seed=0)
    write_records(root / "demos.jsonl", demonstrations(env, env.tasks("train", 64), seed=0))
    train(SFTConfig(data=str(root / "demos.jsonl"), model=str(root / "base"), out=str(root / "sft"),
                    max_steps=40, batch_size=16, lr=1e-2, eval_every=40))
    return root / "sft" / "final"


def launch_cmd(stage: int, policy: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ROOT / f"configs/accelerate/zero{stage}.yaml"), "--num_processes", "2",
            "--mixed_precision", "no", "-m", "reagent", "train", "--config", str(ROOT / "configs/toy_grpo.yaml"),
            f"model={policy}", f"output_dir={out}", "prompts_per_step=1", "group_size=4", "max_turns=3",
            "max_tokens=96", "max_new_tokens=48", "micro_batch_size=2", "keep_degenerate_groups=false",
            "truncated=penalise", "truncation_penalty=-1", "lr=1e-3", "device=cpu", "save_rollouts=true", *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def launch(stage: int, policy: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(launch_cmd(stage, policy, out, *extra), capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=ENV, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def launch_and_kill(stage: int, policy: Path, out: Path, *extra: str, after_step: int) -> None:
    """Start the run and SIGKILL it (launcher and both ranks) as soon
    as the checkpoint of ``after_step`` is complete, while later steps are running."""
    marker = out / "checkpoints" / f"step-{after_step:06d}" / "COMPLETE"
    proc = subprocess.Popen(launch_cmd(stage, policy, out, *extra), cwd=ROOT, env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    finished_first = proc.poll() is not None
    # the ranks may run in their own process group (torch elastic), so kill the whole tree
    tree = psutil.Process(proc.pid).children(recursive=True) if not finished_first else []
    os.killpg(proc.pid, signal.SIGKILL)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    err = proc.communicate(timeout=60)[1]
    assert not finished_first, f"the run ended before the kill (rc {proc.returncode}): {err[-3000:]}"
    assert marker.exists(), f"no step-{after_step} checkpoint within 600 s"


def mixed_groups(out: Path) -> dict[int, dict[int, int]]:
    """step -> rank -> number of groups with unequal rewards (the rest are dropped)."""
    found: dict[int, dict[int, int]] = defaultdict(dict)
    for f in sorted((out / "rollouts").glob("step-*-rank*.jsonl")):
        groups = defaultdict(set)
        for line in f.read_text().splitlines():
            row = json.loads(line)
            groups[row["id"].split("#")[0]].add(row["rewards"]["total"])
        step, rank = int(f.name.split("-")[1]), int(f.name.split("rank")[1].split(".")[0])
        found[step][rank] = sum(len(v) > 1 for v in groups.values())
    return found


def metrics(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def check_zero3_run(out: Path, policy: Path) -> None:
    """The ZeRO-3 run finished although episodes ended at different times and one rank
    had nothing to train on some step; its checkpoint is a full model equal to the
    trained (ZeRO-partitioned) weights."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoModelForCausalLM

    assert metrics(out)[-1]["dist/zero_stage"] == 3
    lengths = {len(json.loads(x)["token_ids"]) for f in (out / "rollouts").glob("*.jsonl")
               for x in f.read_text().splitlines()}
    assert len(lengths) > 4  # episodes really ended at different times
    mixed = mixed_groups(out)
    lopsided = [s for s, by_rank in mixed.items() if sorted(by_rank.values())[0] == 0 < max(by_rank.values())]
    assert lopsided, mixed  # a step where one rank had nothing to train and the other had
    ckpt = out / "checkpoints" / "step-000004"
    loaded = AutoModelForCausalLM.from_pretrained(ckpt / "model")
    base = AutoModelForCausalLM.from_pretrained(policy)
    gathered = get_fp32_state_dict_from_zero_checkpoint(str(ckpt / "state"), tag="pytorch_model")
    for (name, p), (base_name, q) in zip(loaded.named_parameters(), base.named_parameters()):
        assert name == base_name and p.shape == q.shape, name
        assert torch.equal(p, gathered[name]), name  # the saved model is the trained weights
    assert any(not torch.equal(p, q) for p, q in zip(loaded.parameters(), base.parameters()))


@pytest.mark.parametrize("stage", [2, 3])
def test_kill_after_step_2_and_resume_matches_the_uninterrupted_run(stage, sft_policy, tmp_path):
    """Under ZeRO-3 the uninterrupted run is also the degenerate-rank / full-weights check."""
    from safetensors.torch import load_file

    args = ("max_steps=4", "save_every=2", "keep_checkpoints=5")
    full = tmp_path / "full"
    launch(stage, sft_policy, full, *args)
    if stage == 3:
        check_zero3_run(full, sft_policy)
    # a real kill: the whole process group gets SIGKILL once the step-2 checkpoint is complete
    killed = tmp_path / "killed"
    launch_and_kill(stage, sft_policy, killed, *args, after_step=2)
    assert not (killed / "checkpoints" / "step-000004" / "COMPLETE").exists()  # killed mid-run
    launch(stage, sft_policy, killed, *args, "resume=true")
    assert [r["step"] for r in metrics(killed)] == [1, 2, 3, 4]  # each step logged once
    for a, b in zip(metrics(full), metrics(killed)):
        assert (a["data/epoch"], a["data/index"]) == (b["data/epoch"], b["data/index"])
    wa = load_file(str(full / "checkpoints" / "step-000004" / "model" / "model.safetensors"))
    wb = load_file(str(killed / "checkpoints" / "step-000004" / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:  # tolerance: float32 rounding of the same arithmetic
        assert torch.allclose(wa[k], wb[k], atol=1e-6, rtol=0), k
