"""Math-Shepherd and PRM800K records, written in their published formats, become step labels."""

from __future__ import annotations

import json

import pytest

from data_gen.prm_import import import_prm_file
from reagent.cli import main as reagent_main
from reagent.jsonl import RecordError, SkipReport, load_records
from reagent.records import StepLabel

SHEPHERD = {
    "input": "Tom has 3 apples and buys 2. How many? Step 1: He starts with 3. ки\n"
             "Step 2: 3 + 2 = 6. ки\nStep 3: The answer is: 6 ки",
    "label": "Tom has 3 apples and buys 2. How many? Step 1: He starts with 3. +\n"
             "Step 2: 3 + 2 = 6. -\nStep 3: The answer is: 6 -",
    "task": "GSM8K",
}

PRM800K = {
    "labeler": "x", "timestamp": "2022-01-01",
    "question": {"problem": "What is 2+2?", "ground_truth_answer": "4"},
    "label": {"steps": [
        {"completions": [{"text": "2+2 is a sum.", "rating": 0, "flagged": None}],
         "human_completion": None, "chosen_completion": 0},
        {"completions": [{"text": "It equals 5.", "rating": -1}, {"text": "It equals 4.", "rating": 1}],
         "human_completion": None, "chosen_completion": 1},
        {"completions": [{"text": "So the answer is 3.", "rating": -1}],
         "human_completion": None, "chosen_completion": None},
    ], "finish_reason": "found_error"},
}


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_math_shepherd_steps_and_labels(tmp_path):
    src = _write(tmp_path / "ms.jsonl", [SHEPHERD])
    [label] = list(import_prm_file(str(src), "math-shepherd"))
    assert [s["text"] for s in label.steps] == ["Step 1: He starts with 3.", "Step 2: 3 + 2 = 6.",
                                                "Step 3: The answer is: 6"]
    assert [s["q"] for s in label.steps] == [1.0, 0.0, 0.0]
    assert [s["advantage"] for s in label.steps] == [0.0, -1.0, 0.0]
    assert label.method == "mc" and label.params["source"] == "math-shepherd"
    msgs = label.trajectory["messages"]
    assert msgs[0]["content"] == "Tom has 3 apples and buys 2. How many?"
    assert label.trajectory["outcome"] == 0.0


def test_prm800k_follows_the_chosen_completions_to_the_first_error(tmp_path):
    src = _write(tmp_path / "prm800k.jsonl", [PRM800K])
    [label] = list(import_prm_file(str(src), "prm800k", neutral_q=0.5))
    assert [s["text"] for s in label.steps] == ["2+2 is a sum.", "It equals 4.", "So the answer is 3."]
    assert [s["q"] for s in label.steps] == [0.5, 1.0, 0.0]
    assert label.method == "human"


def test_bad_records_name_file_and_line(tmp_path):
    bad = dict(SHEPHERD, label=SHEPHERD["label"].replace("+", "?"))
    src = _write(tmp_path / "ms.jsonl", [SHEPHERD, bad])
    with pytest.raises(RecordError, match=r"ms.jsonl:2: field 'label': step 1 is marked '\?'"):
        list(import_prm_file(str(src), "math-shepherd", skip_bad=False))
    report = SkipReport()
    assert len(list(import_prm_file(str(src), "math-shepherd", report=report))) == 1
    assert report.skipped == 1 and report.errors[0].line == 2


def test_import_cli_output_trains_positions(tmp_path, tiny_tokenizer):
    from rrm.prm_data import encode_labels

    src = _write(tmp_path / "ms.jsonl", [SHEPHERD, {"input": "no tags", "label": "no tags"}])
    out = tmp_path / "labels.jsonl"
    assert reagent_main(["import-prm", "--format", "math-shepherd", "--input", str(src), "--out", str(out)]) == 0
    labels = load_records(out, StepLabel)
    assert len(labels) == 1
    items, report = encode_labels(tiny_tokenizer, labels, max_len=512)
    assert report.kept == 1 and len(items[0].positions) == 3
