"""label-steps -> train-prm -> score-steps on toy demonstrations with a nano model, end to end."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest
import torch

from reagent.cli import main as reagent_main
from reagent.jsonl import load_records, write_records
from reagent.records import StepLabel, Trajectory
from reagent.steps import agent_steps
from tests.rrm.conftest import toy_trajectories


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    path = tmp_path_factory.mktemp("prm") / "traces.jsonl"
    trajs = toy_trajectories(30, seed=1)
    bad = Trajectory.from_dict({**trajs[0].to_dict(), "id": "no-outcome", "outcome": None})
    write_records(path, trajs + [bad])
    return path


def test_label_steps_td_gae_bootstrap(traces, tmp_path):
    out = tmp_path / "labels.jsonl"
    assert reagent_main(["label-steps", "--traces", str(traces), "--method", "td_gae", "--gamma", "0.9",
                         "--lam", "1", "--out", str(out)]) == 0
    labels = load_records(out, StepLabel)
    assert len(labels) == 60  # the trajectory without an outcome is skipped, not labelled 0
    for label in labels:
        traj = Trajectory.from_dict(label.trajectory)
        n = len(agent_steps(traj.messages))
        assert len(label.steps) == n
        # V = 0, lam = 1: Q_t = 0.9^(n-1-t) * outcome.
        assert [s["q"] for s in label.steps] == pytest.approx([0.9 ** (n - 1 - t) * traj.outcome for t in range(n)])
        assert label.params == {"gamma": 0.9, "lam": 1.0, "value_model": None, "bootstrap": "V=0"}
        assert label.extra["cost"] == {"tokens_generated": 0, "tokens_scored": 0}


@pytest.mark.slow
def test_train_prm_learns_and_saves_a_transformers_model(traces, tiny_model_dir, tmp_path):
    from accelerate.utils import set_seed

    from rrm.prm import load_prm

    labels = tmp_path / "labels.jsonl"
    reagent_main(["label-steps", "--traces", str(traces), "--method", "td_gae", "--gamma", "1", "--lam", "1",
                  "--out", str(labels)])
    # Stand-in MC targets for the Spearman column: the same steps, ranked by their step index.
    mc = [StepLabel.from_dict({**x.to_dict(), "method": "mc",
                               "steps": [{"q": s["q"] * (k + 1) / len(x.steps), "advantage": 0.0}
                                         for k, s in enumerate(x.steps)]}) for x in load_records(labels, StepLabel)]
    write_records(tmp_path / "mc.jsonl", mc)
    out = tmp_path / "prm"
    assert reagent_main(["train-prm", "--data", str(labels), "--model", str(tiny_model_dir), "--out", str(out),
                         "--beta", "0.5", "--epochs", "3", "--lr", "3e-3", "--batch-size", "8",
                         "--val-fraction", "0.2", "--mc-data", str(tmp_path / "mc.jsonl")]) == 0
    rows = read_metrics(out / "metrics.jsonl")
    evals = [r for r in rows if r.get("eval/mse") is not None]
    assert len(evals) == 4  # before training and after each epoch
    assert evals[-1]["eval/mse"] < evals[0]["eval/mse"]
    assert all("train/loss/progress" in r for r in rows if "train/loss" in r)
    assert "eval/final_auroc" in evals[-1]
    assert evals[-1]["eval/mc_steps"] > 0 and -1 <= evals[-1]["eval/mc_spearman"] <= 1
    # Every trainable parameter changed (the head against its seeded initialisation).
    set_seed(0)
    before = dict(load_prm(tiny_model_dir).named_parameters())
    after = dict(load_prm(out / "final").named_parameters())
    unchanged = [k for k, p in before.items() if torch.equal(p, after[k])]
    assert not unchanged, unchanged
    assert (out / "checkpoints").exists() and (out / "final" / "reagent_prm.json").exists()
    # The checkpoint loads with plain transformers in a fresh process.
    code = ("import sys, torch; from transformers import AutoModelForTokenClassification as M, AutoTokenizer as T;"
            "m = M.from_pretrained(sys.argv[1]); t = T.from_pretrained(sys.argv[1]);"
            "x = t('hello', return_tensors='pt'); print(m.config.num_labels, tuple(m(**x).logits.shape))")
    done = subprocess.run([sys.executable, "-c", code, str(out / "final")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "1"
    # score-steps: one value per agent step.
    scored = tmp_path / "scored.jsonl"
    assert reagent_main(["score-steps", "--model", str(out / "final"), "--data", str(traces),
                         "--out", str(scored)]) == 0
    trajs = load_records(scored, Trajectory)
    for t in trajs:
        assert len(t.rewards["prm_steps"]) == len(agent_steps(t.messages))
        assert t.rewards["prm"] == t.rewards["prm_steps"][-1]
    # The scorer interface over the same checkpoint: step values, min-aggregated.
    from rrm.prm import load_value_scorer

    scorer = load_value_scorer("prm", out / "final", aggregate="min", device="cpu")
    assert scorer(trajs[:4]) == pytest.approx([min(t.rewards["prm_steps"]) for t in trajs[:4]], abs=1e-5)
    with pytest.raises(ValueError, match="trained as prm"):
        load_value_scorer("orm", out / "final")
    # Resume: a fourth epoch continues from the last checkpoint's step and epoch.
    last_step = rows[-1]["step"]
    assert reagent_main(["train-prm", "--data", str(labels), "--model", str(tiny_model_dir), "--out", str(out),
                         "--epochs", "4", "--lr", "3e-3", "--batch-size", "8", "--val-fraction", "0.2",
                         "--beta", "0.5", "--resume"]) == 0
    resumed = read_metrics(out / "metrics.jsonl")
    assert [r["train/epoch_done"] for r in resumed if "train/epoch_done" in r] == [1, 2, 3, 4]
    assert resumed[-1]["step"] > last_step and not any(r["step"] == 0 for r in resumed[len(rows):])


def test_orm_objective_trains_on_the_last_step(traces, tiny_model_dir, tmp_path):
    labels = tmp_path / "labels.jsonl"
    reagent_main(["label-steps", "--traces", str(traces), "--out", str(labels)])
    out = tmp_path / "orm"
    assert reagent_main(["train-prm", "--data", str(labels), "--model", str(tiny_model_dir), "--out", str(out),
                         "--objective", "orm", "--epochs", "1", "--lr", "3e-3", "--batch-size", "16"]) == 0
    meta = json.loads((out / "final" / "reagent_prm.json").read_text())
    assert meta["objective"] == "orm" and meta["heldout"]["steps"] == meta["heldout"]["n"]


def test_train_prm_config_errors_name_the_field():
    from rrm.prm_train import TrainPRMConfig

    with pytest.raises(ValueError, match="objective='prn'"):
        TrainPRMConfig(data="x", model="y", out="z", objective="prn")
    with pytest.raises(ValueError, match="beta=-1"):
        TrainPRMConfig(data="x", model="y", out="z", beta=-1)


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
