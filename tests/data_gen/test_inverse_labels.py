"""InversePRM labels: demonstration steps 1, policy steps 0, balanced; a PRM trains on them."""

import json

import pytest

from data_gen.inverse_labels import discriminator_labels
from reagent.cli import main as reagent_main
from reagent.jsonl import load_records, write_records
from reagent.records import StepLabel, Trajectory
from reagent.steps import agent_steps
from tests.rrm.conftest import toy_trajectories


def split_clean_flawed(n):
    trajs = toy_trajectories(n, seed=2)
    return [t for t in trajs if t.id.endswith("-clean")], [t for t in trajs if not t.id.endswith("-clean")]


def test_labels_are_balanced_and_per_step():
    demos, policy = split_clean_flawed(6)
    empty = Trajectory.from_dict({"id": "e", "task_id": "x", "messages": [{"role": "user", "content": "q"}]})
    labels, counts = discriminator_labels(demos, policy[:4] + [empty], seed=1)
    assert counts == {"pairs": 4, "skipped_no_turn": 1}
    assert sorted(x.steps[0]["q"] for x in labels) == [0.0] * 4 + [1.0] * 4
    for x in labels:
        StepLabel.from_dict(x.to_dict())  # valid records (method inverse)
        traj = Trajectory.from_dict(x.trajectory)
        assert len(x.steps) == len(agent_steps(traj.messages))
        assert {s["q"] for s in x.steps} == {1.0 if traj.id.endswith("-clean") else 0.0}
    with pytest.raises(ValueError, match="needs demonstrations and policy rollouts"):
        discriminator_labels(demos, [empty])


def test_train_prm_learns_the_discriminator(tmp_path, tiny_model_dir):
    demos, policy = split_clean_flawed(20)
    labels, _ = discriminator_labels(demos, policy)
    write_records(tmp_path / "inv.jsonl", labels)
    out = tmp_path / "inv-prm"
    assert reagent_main(["train-prm", "--data", str(tmp_path / "inv.jsonl"), "--model", str(tiny_model_dir),
                         "--out", str(out), "--beta", "0", "--epochs", "2", "--lr", "3e-3", "--batch-size", "8",
                         "--val-fraction", "0.2"]) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r["eval/mse"] for r in rows if r.get("eval/mse") is not None]
    assert evals[-1] < evals[0]
    assert len(load_records(tmp_path / "inv.jsonl", StepLabel)) == len(labels)
