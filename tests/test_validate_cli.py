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


def _hostile_lines() -> dict[str, tuple[bytes, str]]:
    """name -> (raw line, text the error must hold); each one a way a reader crashed or
    accepted garbage before."""
    good = json.loads(make_trajectory().to_json())

    def variant(**kw) -> bytes:
        return json.dumps({**good, **kw}).encode()

    return {
        "nesting": (b"[" * 100000, "nested deeper than 100"),
        "huge_int": (b'{"id": ' + b"9" * 4301 + b"}", "4300 digits"),
        "bad_byte": (b'{"id": "\xff\xfe", "task_id": "q"}', "invalid UTF-8 byte at column 9"),
        "lone_surrogate": (variant(final_answer="\\ud800").replace(b"\\\\ud800", b"\\ud800"),
                           "lone UTF-16 surrogate"),
        "nan_outcome": (variant(outcome=float("nan")), "field 'outcome': nan is not a finite"),
        "inf_score": (variant(judge={**good["judge"], "score": float("inf")}),
                      "field 'judge.score': inf is not a finite"),
        "big_outcome": (variant(outcome=10 ** 400), "field 'outcome': number too large"),
        "token_ids": (variant(token_ids=["a", None], loss_mask=[0, 1]), "field 'token_ids[0]'"),
        "loss_mask": (variant(token_ids=[1, 2], loss_mask=[7, "z"]), "field 'loss_mask[0]': expected 0 or 1"),
        "bool_ids": (variant(token_ids=[True, 2], loss_mask=[0, 1]), "field 'token_ids[0]'"),
        "huge_role": (variant(messages=[{"role": "x" * 100000}]), "more characters"),
        "nan_untyped": (variant(rewards={"judge": float("nan")}),
                        "field 'rewards.judge': NaN/Infinity is not a JSON number"),
    }


def test_hostile_lines_are_each_reported_by_line_and_the_rest_kept(tmp_path):
    from reagent.cli.validate import check_file

    good = make_trajectory().to_json().encode()
    cases = _hostile_lines()
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join([good, *(raw for raw, _ in cases.values()), good]) + b"\n")
    n_good, errors = check_file(str(path))
    assert n_good == 2
    by_line = {e.line: str(e) for e in errors}
    assert sorted(by_line) == list(range(2, 2 + len(cases)))
    for line, (name, (_, expected)) in enumerate(cases.items(), start=2):
        assert by_line[line].startswith(f"{path}:{line}: "), name
        assert expected in by_line[line], (name, by_line[line][:300])
        assert len(by_line[line]) < 600, name  # a bad value is never echoed unbounded
