"""Tracker sinks: what each writes can be read back; bad choices and missing packages fail clearly."""

import json
import sys

import pytest

from reagent.trackers import TRACKERS, Trackers, make_trackers, validate_report_to


def test_report_to_is_validated_against_the_tracker_names():
    assert validate_report_to(["jsonl", "tensorboard"]) == ["jsonl", "tensorboard"]
    assert validate_report_to("none") == [] and validate_report_to([]) == []
    assert validate_report_to("wandb") == ["wandb"]
    with pytest.raises(ValueError, match=r"unknown tracker 'tensorbord'; choose from jsonl, tensorboard, wandb"):
        validate_report_to(["jsonl", "tensorbord"])
    with pytest.raises(ValueError, match="listed twice"):
        validate_report_to(["jsonl", "jsonl"])
    assert TRACKERS == ("jsonl", "tensorboard", "wandb")


def test_jsonl_and_tensorboard_write_what_was_logged(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with make_trackers(["jsonl", "tensorboard"], tmp_path) as trackers:
        trackers.log(1, {"reward/mean": 0.25, "judge/outcome_corr": float("nan"), "config_hash": "abc"})
        trackers.log(2, {"reward/mean": 0.75, "judge/outcome_corr": 0.5, "config_hash": "abc"})
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(m["step"], m["reward/mean"], m["judge/outcome_corr"]) for m in lines] == [(1, 0.25, None), (2, 0.75, 0.5)]
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("reward/mean")] == [(1, 0.25), (2, 0.75)]
    assert [(e.step, e.value) for e in acc.Scalars("judge/outcome_corr")] == [(2, 0.5)]  # NaN left out
    assert "config_hash" not in acc.Tags()["scalars"]


def test_non_main_ranks_get_no_sinks(tmp_path):
    trackers = make_trackers(["jsonl"], tmp_path, is_main=False)
    trackers.log(1, {"x": 1.0})
    assert trackers.sinks == [] and not (tmp_path / "metrics.jsonl").exists()


def test_missing_wandb_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what an environment without wandb looks like
    with pytest.raises(ImportError, match=r"'wandb' package is not installed; pip install wandb"):
        make_trackers(["jsonl", "wandb"], tmp_path)


def test_a_failing_sink_is_reported_and_the_others_still_log(tmp_path, capsys):
    from reagent.trackers import JsonlTracker

    broken = JsonlTracker(tmp_path / "broken")
    broken.path = tmp_path / "no-such-dir" / "metrics.jsonl"  # every write fails
    good = JsonlTracker(tmp_path)
    trackers = Trackers([broken, good])
    trackers.log(1, {"x": 1.0})
    trackers.log(2, {"x": 2.0})
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    assert capsys.readouterr().out.count("JsonlTracker failed to log") == 1
    assert "JsonlTracker" in trackers.failures


def test_wandb_offline_run_records_the_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is optional; install it to test the wandb sink")
    monkeypatch.setenv("WANDB_MODE", "offline")  # wandb's own switch: no account, no network
    monkeypatch.setenv("WANDB_SILENT", "true")
    trackers = make_trackers(["wandb"], tmp_path, run_name="t", config={"lr": 0.1})
    run = trackers.sinks[0]._run
    trackers.log(1, {"reward/mean": 0.25, "note": "text"})
    trackers.log(2, {"reward/mean": 0.75})
    assert run.summary["reward/mean"] == 0.75 and run.config["lr"] == 0.1
    trackers.close()
    assert list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
