"""Tracker sinks: what each writes can be read back; bad choices and missing packages fail clearly."""

import json
import sys

import pytest

from reagent.trackers import DEFAULT_REPORT_TO, TRACKERS, JsonlSink, make_sinks, validate_report_to
from reagent.train.runtime import MetricsLogger


def test_report_to_is_validated_against_the_tracker_names():
    assert validate_report_to(["jsonl", "tensorboard"]) == ["jsonl", "tensorboard"]
    assert validate_report_to("none") == [] and validate_report_to([]) == []
    assert validate_report_to("wandb") == ["wandb"]
    with pytest.raises(ValueError, match=r"unknown tracker 'tensorbord'; choose from jsonl, tensorboard, wandb"):
        validate_report_to(["jsonl", "tensorbord"])
    with pytest.raises(ValueError, match="listed twice"):
        validate_report_to(["jsonl", "jsonl"])
    assert TRACKERS == ("jsonl", "tensorboard", "wandb")


def test_every_trainer_config_validates_report_to(tmp_path):
    from reagent.train.config import TrainConfig
    from reagent.train.sft import SFTConfig
    from rrm.sft import TrainRRMConfig

    assert TrainConfig().report_to == list(DEFAULT_REPORT_TO)
    with pytest.raises(ValueError, match="unknown tracker 'mlflow'"):
        TrainConfig(report_to=["mlflow"])
    with pytest.raises(ValueError, match="unknown tracker 'mlflow'"):
        SFTConfig(data="d", model="m", out="o", report_to=["mlflow"])
    with pytest.raises(ValueError, match="unknown tracker 'mlflow'"):
        TrainRRMConfig(data="d", model="m", out="o", report_to=["mlflow"])
    from rrm.prm_train import TrainPRMConfig
    from rrm.rl import TrainRRMRLConfig

    for config in (TrainPRMConfig, TrainRRMRLConfig):
        with pytest.raises(ValueError, match="unknown tracker 'mlflow'"):
            config(data="d", model="m", out="o", report_to=["mlflow"])


def test_jsonl_and_tensorboard_write_what_was_logged_and_truncate_on_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLogger(tmp_path, report_to=["jsonl", "tensorboard"])
    log.log(1, {"reward/mean": 0.25, "judge/outcome_corr": float("nan"), "config_hash": "abc"})
    log.log(2, {"reward/mean": 0.75, "judge/outcome_corr": 0.5, "config_hash": "abc"})
    log.log(3, {"reward/mean": 0.9, "judge/outcome_corr": 0.6})
    log.truncate_after(2)  # resumed from the step-2 checkpoint: step 3 is redone
    log.log(3, {"reward/mean": 0.8, "judge/outcome_corr": 0.7})
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(m["step"], m["reward/mean"], m["judge/outcome_corr"]) for m in lines] == [
        (1, 0.25, None), (2, 0.75, 0.5), (3, 0.8, 0.7)]
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("reward/mean")] == [1, 2, 3]
    assert [e.value for e in acc.Scalars("reward/mean")] == pytest.approx([0.25, 0.75, 0.8])
    assert [e.step for e in acc.Scalars("judge/outcome_corr")] == [2, 3]  # NaN left out
    assert "config_hash" not in acc.Tags()["scalars"]


def test_non_main_ranks_get_no_sinks(tmp_path):
    log = MetricsLogger(tmp_path, is_main=False, report_to=["jsonl"])
    log.log(1, {"x": 1.0})
    assert log.sinks == [] and not (tmp_path / "metrics.jsonl").exists()


def test_missing_packages_name_the_package_unless_the_default_skips_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what an environment without wandb looks like
    with pytest.raises(ImportError, match=r"'wandb' package is not installed; pip install wandb"):
        make_sinks(["jsonl", "wandb"], tmp_path)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"'tensorboard' package is not installed"):
        make_sinks(["tensorboard"], tmp_path)
    sinks = make_sinks(DEFAULT_REPORT_TO, tmp_path)  # the default goes on with jsonl alone
    assert [type(s).__name__ for s in sinks] == ["JsonlSink"]
    assert "tensorboard is not installed" in capsys.readouterr().out


def test_a_failing_sink_is_reported_once_and_the_others_still_log(tmp_path, capsys):
    broken = JsonlSink(tmp_path / "broken" / "metrics.jsonl")
    broken.path = tmp_path / "no-such-dir" / "metrics.jsonl"  # every write fails
    log = MetricsLogger(tmp_path, sinks=[broken, JsonlSink(tmp_path / "metrics.jsonl")])
    log.log(1, {"x": 1.0})
    log.log(2, {"x": 2.0})
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    assert capsys.readouterr().out.count("JsonlSink failed to write") == 1
    assert "JsonlSink" in log.failures


def test_wandb_offline_run_records_the_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is optional; install it to test the wandb sink")
    monkeypatch.setenv("WANDB_MODE", "offline")  # wandb's own switch: no account, no network
    monkeypatch.setenv("WANDB_SILENT", "true")
    log = MetricsLogger(tmp_path, report_to=["wandb"], run_name="t", config={"lr": 0.1})
    run = log.sinks[0]._run
    log.log(1, {"reward/mean": 0.25, "note": "text"})
    log.log(2, {"reward/mean": 0.75})
    assert run.summary["reward/mean"] == 0.75 and run.config["lr"] == 0.1
    log.close()
    assert list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
