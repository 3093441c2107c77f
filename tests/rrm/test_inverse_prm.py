"""InversePRM (``reagent train-prm --method inverse``): config checks and one iteration end to end."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rrm.prm_train import TrainPRMConfig


def test_inverse_method_needs_demos_and_policy():
    with pytest.raises(ValueError, match="--method inverse needs --demos, --policy"):
        TrainPRMConfig(method="inverse", out="x")
    with pytest.raises(ValueError, match="method='gail'"):
        TrainPRMConfig(method="gail", data="d", model="m", out="x")
    with pytest.raises(ValueError, match="iterations=0"):
        TrainPRMConfig(method="inverse", demos="d", policy="p", out="x", iterations=0)
    with pytest.raises(ValueError, match="key=value"):
        TrainPRMConfig(method="inverse", demos="d", policy="p", out="x", train_args=["lr"])
    TrainPRMConfig(method="inverse", demos="d", policy="p", out="x")  # data/model not needed


def test_outcome_weight_zero_is_validated():
    from reagent.train.config import TrainConfig

    with pytest.raises(ValueError, match="outcome_weight=0 with variant=grpo .* process_reward=prm"):
        TrainConfig(outcome_weight=0)
    with pytest.raises(ValueError, match="keep_degenerate_groups=true"):
        TrainConfig(outcome_weight=0, process_reward="prm", prm_model="x")
    with pytest.raises(ValueError, match="outcome_weight=-1"):
        TrainConfig(outcome_weight=-1)
    TrainConfig(outcome_weight=0, process_reward="prm", prm_model="x", keep_degenerate_groups=True)
    TrainConfig(outcome_weight=0, variant="reagent-r", judge_model="rules")  # the judge's score is a reward


def test_demo_tasks_are_the_demonstrations_tasks(tmp_path):
    from reagent.envs.toy import ToyEnv
    from reagent.envs.toy_demos import demonstrations
    from rrm.inverse_prm import demo_tasks

    env = ToyEnv(seed=3)
    demos = demonstrations(env, env.tasks("train", 6), flaw_rate=0.0, seed=0)
    c = TrainPRMConfig(method="inverse", demos="d.jsonl", policy="p", out=str(tmp_path), env_seed=3)
    assert [t.id for t in demo_tasks(c, demos)] == [d.task_id for d in demos]
    for d in demos:
        d.task_id = "no-such-task"
    with pytest.raises(ValueError, match="d.jsonl: none of the demonstrations' task ids"):
        demo_tasks(c, demos)


def _weights(path):
    from transformers import AutoModelForCausalLM

    return {n: p.detach().clone() for n, p in AutoModelForCausalLM.from_pretrained(path).named_parameters()}


@pytest.mark.slow
def test_one_inverse_prm_iteration_end_to_end(tmp_path, tiny_model_dir):
    """Toy demonstrations, the nano policy (also the PRM's backbone): rollout, discriminator
    PRM, RL with the PRM as the only reward; then a re-run skips the finished iteration."""
    from reagent.cli import main
    from reagent.envs.toy import ToyEnv
    from reagent.envs.toy_demos import demonstrations
    from reagent.jsonl import write_records

    env = ToyEnv(seed=0)
    write_records(tmp_path / "demos.jsonl", demonstrations(env, env.tasks("train", 16), flaw_rate=0.0, seed=0))
    policy = shutil.copytree(tiny_model_dir, tmp_path / "policy0")
    out = tmp_path / "inv"
    args = ["train-prm", "--method", "inverse", "--demos", str(tmp_path / "demos.jsonl"), "--policy", str(policy),
            "--out", str(out), "--iterations", "1", "--rollout-tasks", "8", "--rollout-n", "2", "--rl-steps", "2",
            "--epochs", "4", "--lr", "3e-3", "--batch-size", "4", "--val-fraction", "0", "--max-turns", "2",
            "--max-tokens", "48", "--max-new-tokens", "16", "--device", "cpu",
            "--train-args", "prompts_per_step=2", "group_size=2", "lr=1e-2", "micro_batch_size=4"]
    assert main(args) == 0
    it = out / "iter-0"
    for name in ("tasks.jsonl", "rollouts.jsonl", "labels.jsonl", "discrimination.json", "done.json",
                 "prm/final/reagent_prm.json", "logs/rollout.log", "logs/train-prm.log", "logs/train.log"):
        assert (it / name).exists(), name
    labels = [json.loads(x) for x in (it / "labels.jsonl").read_text().splitlines()]
    assert {r["method"] for r in labels} == {"inverse"}
    assert {s["q"] for r in labels for s in r["steps"]} == {0.0, 1.0}
    # The PRM learnt to tell demonstration steps from policy steps on its training data, or at least its loss fell.
    disc = json.loads((it / "discrimination.json").read_text())
    losses = [m["train/loss"] for m in map(json.loads, (it / "prm" / "metrics.jsonl").read_text().splitlines())
              if "train/loss" in m]
    assert disc["demo_mean"] > disc["policy_mean"] or losses[-1] < losses[0], (disc, losses)
    # RL with the PRM as the only reward: the total reward is 0, the process reward scored every episode.
    rl = [json.loads(x) for x in (it / "policy" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in rl] == [1, 2]
    assert all(m["reward/total_mean"] == 0.0 and m["process/scored"] > 0 for m in rl)
    done = json.loads((it / "done.json").read_text())
    before, after = _weights(policy), _weights(done["policy"])
    assert any(not torch.equal(before[n], after[n]) for n in before), "the policy did not change"
    summary = json.loads((out / "inverse_prm.json").read_text())
    assert summary["policy"] == done["policy"] and summary["prm"] == str(it / "prm" / "final")
    # Resumable: the finished iteration is skipped, nothing is redone.
    stamp = (it / "done.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (it / "done.json").stat().st_mtime_ns == stamp
