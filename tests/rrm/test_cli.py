"""The judge commands end to end on a tiny local model: judge, eval-rrm, shipped configs."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from reagent.cli import main
from reagent.jsonl import load_records, write_records
from reagent.records import Trajectory

from .conftest import toy_judge_examples, toy_trajectories

ROOT = Path(__file__).resolve().parents[2]
RRM_CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("rrm_*.yaml"))


def test_local_judge_cli_resumes_and_eval_reads_stored_verdicts(judge_model_dir, tmp_path,
                                                                capsys):
    traces = tmp_path / "traces.jsonl"
    write_records(traces, toy_trajectories(2))
    out = tmp_path / "judged.jsonl"
    args = ["judge", "--model", str(judge_model_dir), "--traces", str(traces), "--out", str(out),
            "--max-new-tokens", "4", "--retry-max-new-tokens", "6", "--on-failure",
            "outcome_only", "--limit", "3"]
    assert main(args) == 0
    assert len(load_records(out, Trajectory)) == 3
    assert main(args) == 0  # resume: the fourth one only
    judged = load_records(out, Trajectory)
    assert len({t.id for t in judged}) == 4 == len(judged)
    assert all(t.judge.score is None and t.judge.status == "truncated" for t in judged)
    assert all(t.judge.extra["config_hash"] for t in judged)
    capsys.readouterr()
    assert main(["eval-rrm", "--data", str(out), "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["judge"] == "stored judgments" and report["n"] == 4
    assert report["format_valid_rate"] == 0.0 and report["coverage"] == 0.0
    assert report["statuses"] == {"truncated": 4}


def test_eval_rrm_with_a_local_judge_on_judge_examples(judge_model_dir, tmp_path):
    data = tmp_path / "labelled.jsonl"
    write_records(data, toy_judge_examples(2))
    assert main(["eval-rrm", "--model", str(judge_model_dir), "--data", str(data),
                 "--max-new-tokens", "4", "--judgments-out", str(tmp_path / "j.jsonl"),
                 "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == 4 and report["judge"] == str(judge_model_dir)
    assert set(report) >= {"format_valid_rate", "score_mae", "score_pearson", "auroc",
                           "pairwise_accuracy", "coverage"}
    assert len((tmp_path / "j.jsonl").read_text().splitlines()) == 4


def test_eval_rrm_without_judge_or_verdicts_is_an_error(tmp_path):
    data = tmp_path / "labelled.jsonl"
    write_records(data, toy_judge_examples(1))
    assert main(["eval-rrm", "--data", str(data)]) == 2


def test_train_rrm_flags_and_yaml_reach_the_config(tmp_path):
    import argparse

    from reagent.config import add_config_args, load_config
    from rrm.sft import TrainRRMConfig

    (tmp_path / "c.yaml").write_text("lr: 2.0e-5\nepochs: 3\n")
    parser = argparse.ArgumentParser()
    add_config_args(parser, TrainRRMConfig)
    args = parser.parse_args(["--config", str(tmp_path / "c.yaml"), "--data", "d", "--model",
                              "m", "--out", "o", "--grad-accum", "4", "max_grad_norm=0.5",
                              "--chat-template-kwargs", '{"enable_thinking": false}'])
    c = load_config(TrainRRMConfig, args)
    assert (c.lr, c.epochs, c.grad_accum, c.max_grad_norm) == (2e-5, 3, 4, 0.5)
    assert c.chat_template_kwargs == {"enable_thinking": False}


@pytest.mark.parametrize("path", RRM_CONFIGS, ids=lambda p: p.name)
def test_shipped_accelerate_configs_are_valid(path):
    text = path.read_text()
    assert text.startswith("# accelerate launch --config_file configs/accelerate/" + path.name)
    config = yaml.safe_load(text)
    assert config["distributed_type"] == "DEEPSPEED"
    ds = config["deepspeed_config"]
    assert ds["zero_stage"] in (2, 3)
    # accumulation must come from --grad-accum, or DeepSpeed would silently override it
    assert "gradient_accumulation_steps" not in ds
    if ds["zero_stage"] == 3:
        assert ds["zero3_save_16bit_model"] is True  # checkpoints need the gathered weights
    from accelerate.commands.config.config_args import ClusterConfig

    ClusterConfig.from_yaml_file(path)


def test_both_zero_stages_are_shipped():
    assert [p.name for p in RRM_CONFIGS] == ["rrm_zero2.yaml", "rrm_zero3.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_two_process_deepspeed_on_cpu(judge_model_dir, tmp_path, stage):
    import os
    import subprocess
    import sys

    data = tmp_path / "judge.jsonl"
    write_records(data, toy_judge_examples(8, seed=3))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / f"configs/accelerate/rrm_zero{stage}.yaml"), "--num_processes", "2",
           "--mixed_precision", "no", "-m", "reagent", "train-rrm", "--data", str(data),
           "--model", str(judge_model_dir), "--out", str(out), "--epochs", "1",
           "--batch-size", "2", "--grad-accum", "2", "--val-fraction", "0.25",
           "--eval-max-examples", "4", "--eval-max-new-tokens", "4", "--log-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "train/loss" in r]
    assert steps == list(range(1, len(steps) + 1))  # rank 0 alone writes metrics
    assert rows[-1]["eval/n"] == 4  # both ranks' verdicts were gathered
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(out / "final")  # gathered, not ZeRO shards
    base = AutoModelForCausalLM.from_pretrained(judge_model_dir)
    for (name, p), q in zip(final.named_parameters(), base.parameters()):
        assert p.shape == q.shape and not torch.equal(p, q), name
