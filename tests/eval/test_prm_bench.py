"""ProcessBench and PRMBench: loaders on records in the published formats, metrics on hand values."""

from __future__ import annotations

import json

import pytest

from eval.prm_bench import (
    first_error,
    load_prmbench,
    load_processbench,
    prmbench_metrics,
    processbench_metrics,
)
from reagent.cli import main as reagent_main

PB = [
    {"id": "gsm8k-0", "generator": "Qwen2-7B", "problem": "1+1?", "steps": ["1+1=2.", "The answer is 2."],
     "final_answer_correct": True, "label": -1},
    {"id": "gsm8k-1", "generator": "Qwen2-7B", "problem": "2+2?", "steps": ["2+2=5.", "The answer is 5."],
     "final_answer_correct": False, "label": 0},
    {"id": "gsm8k-2", "generator": "Llama", "problem": "3+3?", "steps": ["3+3=6.", "6*1=7.", "So 7."],
     "final_answer_correct": False, "label": 1},
]

PRMB = [
    {"idx": 0, "question": "x?", "original_process": ["a", "b", "c"], "modified_process": ["a", "b'", "c"],
     "modified_steps": [2], "error_steps": [2], "reason": "r", "classification": "circular"},
    {"idx": 1, "question": "y?", "original_process": ["a", "b"], "modified_process": ["a", "b", "b again"],
     "modified_steps": [3], "error_steps": [3], "reason": "r", "classification": "redundency"},
]


def test_processbench_metrics_by_hand(tmp_path):
    path = tmp_path / "gsm8k.json"
    path.write_text(json.dumps(PB))
    items = load_processbench(str(path))
    assert [it.split for it in items] == ["gsm8k"] * 3
    # Predictions at threshold 0.5: [-1] correct; [0] matches label 0; [0] but label 1 -> wrong.
    values = [[0.9, 0.8], [0.1, 0.2], [0.4, 0.3, 0.2]]
    m = processbench_metrics(items, values, 0.5)["gsm8k"]
    # error_acc = 1/2, correct_acc = 1/1, f1 = 2*0.5*1/(1.5) = 2/3
    assert (m["error_acc"], m["correct_acc"]) == (0.5, 1.0)
    assert m["f1"] == pytest.approx(2 / 3)
    assert first_error([0.6, 0.5, 0.49], 0.5) == 2


def test_prmbench_score_by_hand(tmp_path):
    path = tmp_path / "prmbench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PRMB))
    items = load_prmbench(str(path))
    # Record 0 steps truth [+,-,+], values [.9,.2,.8] -> all right. Record 1 truth [+,+,-],
    # values [.9,.1,.7] -> step 2 false negative, step 3 false positive.
    values = [[0.9, 0.2, 0.8], [0.9, 0.1, 0.7]]
    m = prmbench_metrics(items, values, 0.5)
    assert m["circular"]["prm_score"] == 1.0
    # redundency: tp=1 fp=1 fn=1 -> f1 = 2/4 = 0.5; tn=0 -> f1_neg = 0; score 0.25
    assert m["redundency"]["f1"] == 0.5 and m["redundency"]["f1_neg"] == 0.0
    assert m["redundency"]["prm_score"] == 0.25
    # overall: tp=3 fp=1 fn=1 -> 6/8; tn=1 fp(neg)=1 fn(neg)=1 -> 2/4; score = 0.5*0.75 + 0.5*0.5
    assert m["overall"]["prm_score"] == pytest.approx(0.625)


def test_loaders_name_the_bad_record(tmp_path):
    bad = tmp_path / "math.json"
    bad.write_text(json.dumps([PB[0], {**PB[1], "label": 7}]))
    with pytest.raises(ValueError, match=r"math.json\[record 1\]: field 'label'"):
        load_processbench(str(bad))
    jl = tmp_path / "prmbench.jsonl"
    jl.write_text(json.dumps(PRMB[0]) + "\n\n" + json.dumps({**PRMB[1], "error_steps": [9]}) + "\n")
    with pytest.raises(ValueError, match=r"prmbench.jsonl:3: field 'error_steps'"):
        load_prmbench(str(jl))


def test_eval_prm_cli_prints_per_split(tmp_path, tiny_model_dir, capsys):
    from transformers import AutoTokenizer

    from rrm.prm import load_prm

    prm = tmp_path / "prm"
    load_prm(tiny_model_dir).save_pretrained(prm)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(prm)
    (tmp_path / "gsm8k.json").write_text(json.dumps(PB))
    (tmp_path / "math.json").write_text(json.dumps(PB[:2]))
    out = tmp_path / "report.json"
    assert reagent_main(["eval-prm", "--benchmark", "processbench", "--data", str(tmp_path / "gsm8k.json"),
                         str(tmp_path / "math.json"), "--model", str(prm), "--device", "cpu",
                         "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gsm8k:" in printed and "math:" in printed and "overall:" in printed
    report = json.loads(out.read_text())["metrics"]
    assert report["overall"]["n"] == 5 and report["gsm8k"]["n"] == 3
    (tmp_path / "prmbench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PRMB))
    assert reagent_main(["eval-prm", "--benchmark", "prmbench", "--data", str(tmp_path / "prmbench.jsonl"),
                         "--model", str(prm), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "circular:" in printed and "prm_score=" in printed
    assert reagent_main(["eval-prm", "--benchmark", "processbench", "--data", str(tmp_path / "nope.json"),
                         "--model", str(prm)]) == 2
