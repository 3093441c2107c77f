"""The efficacy study (issue 19): its stage plan, and docs/results.md recomputed from its records."""

import json
import re
from pathlib import Path

from benchmarks.efficacy import RL_RUNS, eval_steps, study_budget, study_stages
from benchmarks.efficacy_report import compute, fmt

ROOT = Path(__file__).resolve().parents[2]
RECORDS, PAGE = ROOT / "docs" / "results", ROOT / "docs" / "results.md"


def test_study_plan_trains_every_run_at_equal_steps_from_one_sft(tmp_path):
    b = study_budget("smoke", 6)
    stages = {st.name: st for st in study_stages(tmp_path, 0, b, every=4, revise_below=0.9)}
    assert eval_steps(6, 4) == [4, 6]
    sft = str(tmp_path / "seed0" / "sft" / "final")
    for run in RL_RUNS:
        args = stages[f"rl-{run}"].args
        assert f"model={sft}" in args and "max_steps=6" in args and "save_every=4" in args
        assert f"output_dir={tmp_path / 'seed0' / 'rl' / run}" in args
        assert {f"eval-{run}-step4", f"eval-{run}-step6"} <= set(stages)
    assert "judge_model=rules" in stages["rl-reagent-u-rules"].args
    assert "train-judge" not in stages["rl-reagent-r-rules"].needs  # the oracle needs no trained judge
    trained = f"judge_model={tmp_path / 'seed0' / 'judge' / 'final'}"
    assert trained in stages["rl-reagent-r-trained"].args and "train-judge" in stages["rl-reagent-r-trained"].needs
    below = stages["eval-critique-grpo-rules-below"].args
    assert below[below.index("--revise-below") + 1] == "0.9" and "rules" in below
    assert "--revise-below" not in stages["eval-critique-sft-trained-all"].args
    names = [st.name for st in study_stages(tmp_path, 0, b, every=4, revise_below=0.9)]
    assert len(names) == len(set(names)) and not any(n.startswith("score-") for n in names)
    assert len([n for n in names if n.startswith("eval-critique-")]) == 8  # {sft, grpo} x 2 judges x 2 modes


def _accuracy(path: Path) -> float:
    """pass@1 from the saved records, independently of the report code: mean over questions
    of the fraction of correct attempts."""
    by_q: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        by_q.setdefault(rec["task_id"], []).append(1.0 if (rec.get("score") or 0.0) >= 1.0 else 0.0)
    return sum(sum(v) / len(v) for v in by_q.values()) / len(by_q)


def test_results_page_numbers_are_recomputed_from_its_records():
    data = compute(RECORDS)
    study = data["study"]
    # the grpo row: pass@1 per seed from its final evaluation's records, then the mean over seeds
    per_seed = [_accuracy(seed / "eval" / f"grpo-step{study['steps']}.jsonl")
                for seed in sorted(RECORDS.glob("seed*/"))]
    acc = sum(per_seed) / len(per_seed)
    assert len(per_seed) == study["seeds"]
    assert abs(data["rows"]["grpo"]["accuracy"][0] - acc) < 1e-12
    row = next(line for line in PAGE.read_text().splitlines() if line.startswith("| grpo |"))
    assert re.match(rf"\| grpo \| \d+ \| {re.escape(fmt(acc))}( ± [0-9.]+)? \|", row), row


def test_collect_and_compute_two_seeds(tmp_path):
    """Records are slimmed on collection; two seeds give mean ± s.e. over seeds; Reagent-C
    rows carry keep and fix rates."""
    from benchmarks.efficacy_report import collect, within_noise

    run = tmp_path / "run"

    def write(path, lines):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))

    def rec(q, score, **kw):
        return {"id": f"{q}#0", "task_id": q, "attempt": 0, "score": score, "answer": "1",
                "trajectory": {"messages": ["long"]}, "process": {"tool_calls": 2, "tokens": 10,
                "flaws": {"repeated_call": 1} if score < 1 else {}, "answer_neutral_flaws": int(score < 1)}, **kw}

    for seed, correct in ((0, 1), (1, 3)):
        s = run / f"seed{seed}"
        write(s / "eval" / "grpo-step2" / "records.jsonl", [rec(f"q{i}", float(i < correct)) for i in range(4)])
        write(s / "eval" / "sft" / "records.jsonl", [rec(f"q{i}", 0.0) for i in range(4)])
        firsts = [{"score": 1.0, "trajectory": {}}, {"score": 0.0}, {"score": 0.0}, {"score": 1.0}]
        write(s / "eval" / "critique-sft-rules-below" / "records.jsonl",
              [rec(f"q{i}", float(i < 2), initial={**f, "revised": f["score"] < 1,
                                                    "revise_skipped": None if f["score"] < 1 else "above_threshold"})
               for i, f in enumerate(firsts)])
        write(s / "rl" / "grpo" / "metrics.jsonl", [{"step": 1, "groups/degenerate_frac": 0.5, "other": 1},
                                                   {"step": 2, "groups/degenerate_frac": 0.25}])
    (run / "study.json").write_text(json.dumps({"seeds": 2, "steps": 2, "eval_every": 2, "size": "smoke",
                                                "revise_below": 1.0, "budget": {}}))
    records = tmp_path / "records"
    collect(run, records)
    saved = json.loads((records / "seed0" / "eval" / "critique-sft-rules-below.jsonl").read_text().splitlines()[0])
    assert "trajectory" not in saved and "trajectory" not in saved["initial"]
    assert json.loads((records / "seed0" / "rl" / "grpo.jsonl").read_text().splitlines()[0]) == {
        "step": 1, "groups/degenerate_frac": 0.5}
    data = compute(records)
    mean, se = data["rows"]["grpo"]["accuracy"]
    assert (mean, se) == (0.5, 0.25)  # seeds 0.25 and 0.75: s.d. 0.354 / sqrt(2)
    assert data["rows"]["grpo"]["flaws"][0] == 0.5 and data["rows"]["grpo"]["zero_signal"] == 0.375
    c = data["critique"]["critique-sft-rules-below"]
    assert (c["keep_rate"], c["fix_rate"], c["revised_frac"]) == (0.5, 0.5, 0.5)
    assert data["curves"]["grpo"]["accuracy"] == {0: [0.0, 0.0], 2: [0.25, 0.75]}
    assert within_noise((0.5, 0.1), (0.8, 0.05)) is True and within_noise((0.2, 0.01), (0.8, 0.05)) is False
