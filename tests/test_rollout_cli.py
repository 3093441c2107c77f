"""`reagent rollout`: K trajectories per task that validate, and resume after SIGKILL."""

import json
import signal
import subprocess
import sys
import time

import pytest


def rollout_cmd(model, out, limit, n=2, batch=4):
    return [sys.executable, "-m", "reagent", "rollout", "--model", str(model), "--env", "toy",
            "--split", "train", "--limit", str(limit), "--n", str(n), "--out", str(out),
            "--batch-size", str(batch), "--max-turns", "2", "--max-tokens", "48", "--max-new-tokens", "24",
            "--device", "cpu"]


def ids_in(path):
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def test_rollout_writes_k_per_task_and_validates(tiny_model_dir, tmp_path):
    out = tmp_path / "traces.jsonl"
    proc = subprocess.run(rollout_cmd(tiny_model_dir, out, limit=3, n=2), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ids = ids_in(out)
    assert sorted(ids) == sorted(f"toy-train-{i}#{k}" for i in range(3) for k in range(2))
    check = subprocess.run([sys.executable, "-m", "reagent", "validate", str(out)], capture_output=True, text=True)
    assert check.returncode == 0 and "6 valid, 0 invalid" in check.stdout
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        assert rec["stop_reason"] in ("answered", "max_turns", "max_tokens")
        assert len(rec["token_ids"]) == len(rec["loss_mask"]) and rec["made_by"]["command"] == "rollout"
    again = subprocess.run(rollout_cmd(tiny_model_dir, out, limit=3, n=2), capture_output=True, text=True)
    assert "0 to run" in again.stderr and ids_in(out) == ids


@pytest.mark.slow
def test_rollout_resumes_after_sigkill(tiny_model_dir, tmp_path):
    out = tmp_path / "traces.jsonl"
    cmd = rollout_cmd(tiny_model_dir, out, limit=40, n=2, batch=4)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(ids_in(out)) < 8):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(out.read_text().splitlines())
    assert 0 < partial < 80, "the kill should land mid-run"
    subprocess.run(cmd, check=True, capture_output=True)
    ids = ids_in(out)
    expected = {f"toy-train-{i}#{k}" for i in range(40) for k in range(2)}
    assert len(ids) == len(expected) and set(ids) == expected  # nothing lost, nothing twice
