"""`reagent validate`: FILE:LINE: reason for bad records, count and exit code."""

import json
import subprocess
import sys

from tests.test_records import make_trajectory


def run_validate(*files):
    return subprocess.run([sys.executable, "-m", "reagent", "validate", *map(str, files)],
                          capture_output=True, text=True)


def test_malformed_line_in_the_middle(tmp_path):
    good = make_trajectory().to_json()
    path = tmp_path / "traces.jsonl"
    bad = json.loads(good)
    bad["messages"][0]["role"] = "robot"
    path.write_text("\n".join([good, good, "{oops", json.dumps(bad), good]) + "\n")
    proc = run_validate(path)
    assert proc.returncode == 1
    assert f"{path}:3: malformed JSON" in proc.stdout
    assert f"{path}:4: trajectory: field 'messages[0].role'" in proc.stdout
    assert f"{path}: 3 valid, 2 invalid" in proc.stdout


def test_valid_file_exits_zero_and_counts(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(make_trajectory(id=str(i)).to_json() for i in range(4)) + "\n")
    proc = run_validate(path)
    assert proc.returncode == 0, proc.stdout
    assert f"{path}: 4 valid, 0 invalid" in proc.stdout


def test_help_lists_every_subcommand():
    from reagent.cli import COMMANDS

    proc = subprocess.run([sys.executable, "-m", "reagent", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout
