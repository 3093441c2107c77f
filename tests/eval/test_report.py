"""Metrics recomputed from records (hand-worked), results files, and `reagent report`."""

import json
import math

import pytest

from eval.report import compute_metrics, load_run, write_results
from reagent.cli import main as reagent_main


def rec(bench, q, attempt, score, **kw):
    return {
        "id": f"{bench}-{q}#{attempt}",
        "task_id": f"{bench}-{q}",
        "benchmark": bench,
        "attempt": attempt,
        "answer": "x",
        "score": score,
        "turns": 2,
        **kw,
    }


def write_run(folder, records):
    folder.mkdir(parents=True)
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_compute_metrics_by_hand():
    # math: q0 correct 2/2, q1 correct 1/2 (attempt 0), q2 could-not-judge + wrong.
    # qa: one question, one attempt, correct.
    records = [
        rec("math", 0, 0, 1.0),
        rec("math", 0, 1, 1.0),
        rec("math", 1, 0, 1.0),
        rec("math", 1, 1, 0.0),
        rec("math", 2, 0, None),
        rec("math", 2, 1, 0.0),
        rec("qa", 0, 0, 1.0),
    ]
    m = compute_metrics(records)
    math_m = m["benchmarks"]["math"]
    assert (math_m["questions"], math_m["attempts"], math_m["k"]) == (3, 6, 2)
    assert math_m["pass@1"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert math_m["pass@2"] == pytest.approx(2 / 3)  # q0: 1, q1: 1 - C(1,2)/C(2,2) = 1, q2: 0
    assert math_m["pass@1_stderr"] == pytest.approx(1 / 6)  # runs 2/3 and 1/3: std sqrt(1/18)
    assert math_m["could_not_judge"] == 1
    qa = m["benchmarks"]["qa"]
    assert qa["pass@1"] == 1.0 and math.isnan(qa["pass@1_stderr"])  # one attempt: undefined
    # overall pools the 4 questions; K is the fewest attempts any question has (1).
    assert m["overall"]["questions"] == 4 and m["overall"]["k"] == 1
    assert m["overall"]["pass@1"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)


def test_partial_run_uses_the_attempts_every_question_has():
    records = [rec("b", 0, 0, 1.0), rec("b", 0, 1, 0.0), rec("b", 1, 0, 0.0)]
    m = compute_metrics(records)["benchmarks"]["b"]
    assert m["k"] == 1 and "pass@2" not in m
    assert m["pass@1"] == pytest.approx((0.5 + 0.0) / 2)


def test_results_files_and_report_over_two_runs(tmp_path, capsys):
    a, b = tmp_path / "base", tmp_path / "critique"
    write_run(a, [rec("gsm8k", q, k, float(q % 2)) for q in range(4) for k in range(2)])
    write_run(
        b,
        [rec("gsm8k", q, k, 1.0, initial={"score": 0.0}) for q in range(4) for k in range(2)]
        + [rec("toy", 0, 0, 0.0)],
    )
    metrics = write_results(b, notes={"gsm8k": ["corpus: none"]}, made_by={"model": "m"})
    saved = json.loads((b / "results.json").read_text())
    assert saved["benchmarks"]["gsm8k"]["initial_pass@1"] == 0.0
    assert saved["benchmarks"]["toy"]["pass@1_stderr"] is None  # NaN is written as null
    assert metrics["overall"]["questions"] == 5
    md = (b / "results.md").read_text()
    assert "| overall | 5 |" in md and "corpus: none" in md
    assert load_run(a)["benchmarks"]["gsm8k"]["pass@1"] == 0.5

    png = tmp_path / "cmp" / "chart.png"
    assert reagent_main(["report", str(a), str(b), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = png.with_suffix(".md").read_text()
    assert (
        "| base | gsm8k | 4 | 2 | 0.500" in table and "| critique | gsm8k | 4 | 2 | 1.000" in table
    )
    assert "| critique | overall |" in table and table.split("\n", 2)[2] in capsys.readouterr().out
    assert reagent_main(["report", str(tmp_path / "missing"), "--out", str(png)]) == 2
