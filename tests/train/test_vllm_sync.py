"""The vLLM weight sync under ZeRO-3 hands the engine full, gathered tensors (a fake
engine that records what it receives; 2 CPU processes under accelerate launch)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_zero3_weight_sync_hands_full_tensors(tiny_model_dir, tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs/accelerate/zero3.yaml"), "--num_processes", "2", "--mixed_precision", "no",
           str(Path(__file__).with_name("zero3_sync_script.py")), str(tiny_model_dir), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["world"] == 2
        received = result["received"]
        assert received and all(r["shape_ok"] and r["equal"] for r in received.values()), received
        # what the trainer used to pass: the partitioned parameters, empty on every rank
        assert all(shape == [0] for name, shape in result["old_path_shapes"].items() if name in received)
