"""Judge endpoints that fail: clear errors, bounded time, and a non-zero exit when nothing
was judged (unless outcome-only was asked for)."""

from __future__ import annotations

import shutil
import time

import pytest

from reagent.cli import main
from reagent.jsonl import load_records, write_records
from reagent.records import Trajectory
from tests.hostile_http import HostileServer

from .conftest import toy_trajectories


@pytest.fixture
def traces(tmp_path):
    path = tmp_path / "traces.jsonl"
    write_records(path, toy_trajectories(2))
    return path


def judge_args(url, traces, out, *extra):
    return ["judge", "--base-url", f"{url}/v1", "--traces", str(traces), "--out", str(out),
            "--backoff-s", "0.01", *extra]


def test_models_endpoint_500_is_an_error_message_not_a_traceback(traces, tmp_path, capsys):
    with HostileServer("models500") as server:
        assert main(judge_args(server.url, traces, tmp_path / "o.jsonl")) == 2
    err = capsys.readouterr().err
    assert "reagent judge: error: cannot read the served model" in err
    assert "InternalServerError" in err and "Traceback" not in err


def test_every_judgment_failed_exits_non_zero_unless_outcome_only(traces, tmp_path, capsys):
    with HostileServer("models500") as server:  # every chat request: HTTP 404
        out = tmp_path / "o.jsonl"
        assert main(judge_args(server.url, traces, out, "--served-model", "m")) == 1
        assert "every one of 4 judgments failed" in capsys.readouterr().err
        assert not out.exists() or not load_records(out, Trajectory)
        assert main(judge_args(server.url, traces, out, "--served-model", "m",
                               "--on-failure", "outcome_only")) == 0
        assert "warning: every judgment failed" in capsys.readouterr().err
        assert all(t.judge.score is None for t in load_records(out, Trajectory))


def test_slow_drip_judge_is_bounded_by_timeout(traces, tmp_path, capsys):
    with HostileServer("drip", interval_s=0.25) as server:  # ~45 s per answer
        start = time.monotonic()
        code = main(judge_args(server.url, traces, tmp_path / "o.jsonl", "--served-model", "m",
                               "--timeout", "1", "--max-retries", "0", "--limit", "2"))
        elapsed = time.monotonic() - start
    assert code == 1 and "every one of 2 judgments failed" in capsys.readouterr().err
    assert elapsed < 20  # two requests in parallel, each cut at 1 s (unbounded: ~45 s)


def test_train_judge_timeout_and_retries_reach_the_client(tiny_model_dir):
    from reagent.train.config import TrainConfig
    from reagent.train.setup import build_judge

    with HostileServer("drip", interval_s=0.25) as server:
        c = TrainConfig(model=str(tiny_model_dir), variant="reagent-r", judge_served_model="m",
                        judge_base_url=f"{server.url}/v1", judge_timeout_s=1,
                        judge_max_retries=0, device="cpu")
        judge, _ = build_judge(c)
        assert judge.backend.max_retries == 0
        start = time.monotonic()
        [j] = judge.score(toy_trajectories(1)[:1])
        assert j.status == "failed" and "Timeout" in j.extra["error"]
        assert time.monotonic() - start < 10
        assert server.requests == 1
        judge.close()
    with pytest.raises(ValueError, match="judge_timeout_s=0"):
        TrainConfig(model="m", judge_timeout_s=0)


@pytest.mark.slow
def test_train_with_a_failing_judge(tiny_model_dir, tmp_path, capsys):
    policy = shutil.copytree(tiny_model_dir, tmp_path / "policy")
    base = ["train", "variant=reagent-r", f"model={policy}", "max_steps=1", "prompts_per_step=2",
            "group_size=2", "max_tokens=48", "max_new_tokens=16", "device=cpu", "save_every=1",
            "micro_batch_size=4", "train_tasks=8"]
    with HostileServer("models500") as server:
        url = f"judge_base_url={server.url}/v1"
        assert main([*base, url, f"output_dir={tmp_path / 'a'}"]) == 2
        assert "reagent train: error: cannot read the served model" in capsys.readouterr().err
        assert main([*base, url, "judge_served_model=m", "on_judge_failure=drop",
                     f"output_dir={tmp_path / 'b'}"]) == 1
        assert "train: error: every judgment failed" in capsys.readouterr().err
