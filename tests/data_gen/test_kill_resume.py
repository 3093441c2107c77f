"""SIGKILL ``reagent annotate`` at a random point, re-run: exactly one record per trajectory."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from reagent.jsonl import write_records
from rrm.prompt import format_judgment

from .conftest import ScriptedServer, toy_traces

N = 40


def _count_lines(path) -> int:
    return open(path, encoding="utf-8").read().count("\n") if path.exists() else 0


@pytest.mark.slow
def test_sigkill_then_rerun_gives_one_record_per_trajectory(tmp_path):
    traces = tmp_path / "traces.jsonl"
    trajs = toy_traces(N)
    write_records(traces, trajs)
    out = tmp_path / "judge.jsonl"
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 10**6))  # printed on failure
    rng = random.Random(seed)
    cmd = [sys.executable, "-m", "reagent", "annotate", "--traces", str(traces), "--out", str(out),
           "--concurrency", "4", "--model", "slow-teacher", "--no-progress"]
    def reply(body: dict) -> str:
        return format_judgment("a", "- b", 0.5)

    with ScriptedServer(reply, delay_s=0.05) as srv:  # 40 requests / 4 at a time: ~0.5 s
        cmd += ["--base-url", srv.url]
        kills = 0
        for _ in range(2):  # kill twice, at random points after the first records
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            start_lines = _count_lines(out)
            while _count_lines(out) <= start_lines and proc.poll() is None:
                assert time.monotonic() < deadline, "annotate wrote nothing"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.15))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
            written = _count_lines(out)
            print(f"run ended with {written} lines (killed: {kills})")
            if written >= N:
                break
        assert kills >= 1, f"never killed (seed {seed}); make the server slower"
        done = subprocess.run(cmd, check=False, stderr=subprocess.PIPE, text=True, timeout=120)
        assert done.returncode == 0, f"seed {seed}: {done.stderr}"
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert Counter(r["trajectory_id"] for r in records) == Counter(t.id for t in trajs), seed
    assert all(r["status"] == "ok" and r["score"] == 0.5 for r in records)
    assert len(srv.requests) >= N
