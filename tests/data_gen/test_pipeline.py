"""Offline pipeline: toy traces -> ``annotate --teacher rules`` -> ``build-dataset`` -> train-rrm."""

from __future__ import annotations

import json

import pytest

from reagent.cli import main
from reagent.jsonl import from_dataset, load_records, write_records
from reagent.records import JudgeExample, Task
from rrm.parse import parse_judgment
from rrm.prompt import sft_messages

from .conftest import toy_traces


@pytest.fixture
def rules_dataset(tmp_path):
    traces = tmp_path / "traces.jsonl"
    write_records(traces, toy_traces(20, seed=1, env_seed=7))
    judge = tmp_path / "judge.jsonl"
    assert main(["annotate", "--traces", str(traces), "--teacher", "rules", "--env-seed", "7",
                 "--out", str(judge), "--no-progress"]) == 0
    out = tmp_path / "dataset"
    assert main(["build-dataset", "--judgments", str(judge), "--out-dir", str(out),
                 "--val-fraction", "0.2"]) == 0
    return judge, out


def test_rules_teacher_writes_verdicts_the_judge_parser_accepts(rules_dataset):
    judge, _ = rules_dataset
    records = load_records(judge, JudgeExample)
    assert len(records) == 20
    for ex in records:
        assert ex.teacher == "rules" and ex.extra["status"] == "ok"
        target = sft_messages(ex)[-1]["content"]  # what train-rrm trains on
        parsed = parse_judgment(target)
        assert parsed.status == "ok" and parsed.score == ex.score
        assert ex.trajectory.startswith(f"Question: {ex.question}")
    flawed = [ex for ex in records if ex.extra["flaws"]]
    assert flawed and all(ex.score < 1.0 for ex in flawed)


def test_build_dataset_files(rules_dataset):
    _, out = rules_dataset
    train = load_records(out / "train.jsonl", JudgeExample)
    val = load_records(out / "validation.jsonl", JudgeExample)
    assert len(train) + len(val) == 20 and val
    assert not {e.extra["task_id"] for e in train} & {e.extra["task_id"] for e in val}
    assert all(e.extra["built_by"]["command"] == "build-dataset" for e in train + val)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["splits"]["train"]["examples"] == len(train)
    assert stats["made_by"]["teachers"] == ["rules"] and stats["made_by"]["config_hash"]
    assert stats["agreement"]["auroc_score_for_correct"] > 0.5  # rules scores track outcome
    assert (out / "score_hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Teacher score vs outcome" in (out / "stats.md").read_text()
    from datasets import load_from_disk

    hf = load_from_disk(str(out / "hf"))
    assert from_dataset(hf["train"], JudgeExample)[0].to_dict() == train[0].to_dict()


def test_rules_teacher_needs_the_toy_tasks(tmp_path, capsys):
    traces = tmp_path / "traces.jsonl"
    write_records(traces, toy_traces(5, env_seed=7))
    args = ["annotate", "--traces", str(traces), "--teacher", "rules", "--no-progress"]
    assert main([*args, "--env-seed", "8", "--out", str(tmp_path / "a.jsonl")]) == 2
    assert "pass the --env-seed that rollout used" in capsys.readouterr().err
    # A Task file works instead of the seed.
    from reagent.envs.toy import ToyEnv

    tasks = tmp_path / "tasks.jsonl"
    write_records(tasks, ToyEnv(seed=7).tasks("train", 5))
    assert load_records(tasks, Task)[0].meta["ledger"]
    assert main([*args, "--tasks", str(tasks), "--out", str(tmp_path / "b.jsonl")]) == 0


@pytest.mark.slow
def test_train_rrm_accepts_the_dataset(rules_dataset, tiny_model_dir, tmp_path):
    _, out = rules_dataset
    run = tmp_path / "rrm"
    rc = main(["train-rrm", "--data", str(out / "train.jsonl"),
               "--val-data", str(out / "validation.jsonl"), "--model", str(tiny_model_dir),
               "--out", str(run), "--epochs", "1", "--batch-size", "32", "--grad-accum", "1",
               "--lr", "1e-3", "--no-eval-before", "--eval-max-examples", "2",
               "--eval-max-new-tokens", "4", "--max-chars", "4000"])
    assert rc == 0
    assert (run / "final").is_dir()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("train/loss" in m for m in metrics)
