"""The PRM evidence study (issue 18): its stage plan, its smoke pipeline, and docs/prm_results.md
recomputed from its saved records."""

import json
import re
from pathlib import Path

import pytest

from benchmarks.prm_evidence import SCORERS, SIZES, study_stages
from benchmarks.prm_evidence_report import at_budget, compute, fmt

ROOT = Path(__file__).resolve().parents[2]
RECORDS, PAGE = ROOT / "docs" / "prm_results", ROOT / "docs" / "prm_results.md"


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_plan_ranks_the_same_candidates_and_trains_at_equal_steps(tmp_path):
    z = SIZES["study"]
    stages = {st.name: st for st in study_stages(tmp_path, 1, z)}
    assert len(stages) == len(study_stages(tmp_path, 1, z))  # names are unique
    sft = str(tmp_path / "seed1" / "sft" / "final")
    bon = [stages[f"eval-bon-{s}"].args for s in SCORERS]
    # Every scorer ranks the same candidates: same policy, sampling seed, questions and N.
    for flag in ("--model", "--seed", "--limit", "--best-of", "--temperature"):
        assert len({_arg(a, flag) for a in bon}) == 1, flag
    assert _arg(bon[0], "--model") == sft and _arg(bon[0], "--best-of") == "16"
    assert _arg(stages["eval-bon-pvm"].args, "--scorer-model").endswith("prm/pvm/final")
    assert "train-pvm" in stages["eval-bon-pvm"].needs and "train-judge" in stages["eval-bon-judge"].needs
    assert _arg(stages["train-pvm"].args, "--beta") == "0" and "labels_mc" in _arg(stages["train-pvm"].args, "--data")
    assert _arg(stages["train-orm"].args, "--objective") == "orm"
    assert _arg(stages["train-prm"].args, "--beta") == "1" and "labels_td" in _arg(stages["train-prm"].args, "--data")
    grpo, prm = stages["rl-grpo"].args, stages["rl-grpo-prm"].args
    assert set(prm) - set(grpo) == {"process_reward=prm", f"prm_model={tmp_path / 'seed1' / 'prm' / 'prm' / 'final'}",
                                    f"output_dir={tmp_path / 'seed1' / 'rl' / 'grpo-prm'}"}
    inverse = stages["inverse-prm"].args
    assert _arg(inverse, "--method") == "inverse" and _arg(inverse, "--policy") == sft
    assert not any(st.alone for st in stages.values())  # the study shares its cores
    unjudged = {st.name for st in study_stages(tmp_path, 1, z, judge=False)}
    assert "eval-bon-judge" not in unjudged and "train-judge" not in unjudged and "eval-bon-prm" in unjudged


def test_plan_order_finishes_seed0_then_the_best_of_n_chains(tmp_path):
    from benchmarks.prm_evidence import plan_order

    z = SIZES["study"]
    plan = plan_order([(seed, st) for seed in range(3) for st in study_stages(tmp_path, seed, z)])
    names = [(seed, st.name) for seed, st in plan]
    seed0 = [st.name for st in study_stages(tmp_path, 0, z)]
    assert names[:len(seed0)] == [(0, n) for n in seed0]  # seed 0 whole, in its own order
    rest = names[len(seed0):]
    last_bon = max(i for i, (_, n) in enumerate(rest) if n.startswith("eval-bon-"))
    first_rl = min(i for i, (_, n) in enumerate(rest) if n.startswith(("rl-", "inverse")))
    assert last_bon < first_rl


def test_import_start_marks_the_stages_it_replaces(tmp_path):
    from benchmarks.prm_evidence import JUDGE_STAGES, START_STAGES, import_start

    for name in ("sft", "judge"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "demos.jsonl").write_text("")
    import_start(tmp_path / "run", 2, tmp_path / "sft", tmp_path / "demos.jsonl", tmp_path / "judge")
    s = tmp_path / "run" / "seed2"
    assert (s / "sft" / "final" / "config.json").exists() and (s / "judge" / "final" / "config.json").exists()
    assert {p.stem for p in (s / "stages").glob("*.json")} == set(START_STAGES + JUDGE_STAGES)
    assert json.loads((s / "stages" / "sft.json").read_text())["imported"]["sft"] == str(tmp_path / "sft")


def test_bon_at_equal_budget_interpolates_in_log_n():
    curve = {1: 0.2, 2: 0.4, 4: 0.5}
    assert at_budget(curve, 2) == (0.4, False)
    assert at_budget(curve, 2 ** 1.5)[0] == pytest.approx(0.45)  # halfway between n=2 and n=4 in log2
    assert at_budget(curve, 0.5) == (0.2, False) and at_budget(curve, 8) == (0.5, True)


def _bon_accuracy(path: Path, n: int) -> float:
    """Best-of-n accuracy from saved records, independently of the report code: the highest
    scorer_score among the first n candidates (unscored last, ties to the earliest) is correct."""
    right = []
    for line in path.read_text().splitlines():
        cands = json.loads(line)["candidates"][:n]
        keyed = [(c["scorer_score"] if c["scorer_score"] is not None else float("-inf"), -i)
                 for i, c in enumerate(cands)]
        right.append((cands[-max(keyed)[1]]["env_outcome"] or 0.0) >= 1.0)
    return sum(right) / len(right)


def test_results_page_numbers_are_recomputed_from_its_records():
    data = compute(RECORDS)
    n = max(data["bon"]["prm"])
    seeds = sorted(p for p in RECORDS.glob("seed*") if p.is_dir())
    accs = [_bon_accuracy(s / "eval" / "bon-prm.jsonl", n) for s in seeds]
    assert data["bon"]["prm"][n]["per_seed"] == pytest.approx(accs)
    mean = sum(accs) / len(accs)
    row = next(line for line in PAGE.read_text().splitlines() if line.startswith("| AgentPRM"))
    assert re.search(rf"\| {re.escape(fmt(mean))} ± [0-9.]+ \|$", row), row


@pytest.mark.slow
def test_smoke_pipeline_runs_every_stage_and_reports(tmp_path):
    """``--size smoke`` end to end (the pipeline check), then the report from its records."""
    from benchmarks.prm_evidence import main
    from benchmarks.prm_evidence_report import main as report

    run = tmp_path / "run"
    assert main(["--out", str(run), "--seeds", "1", "--size", "smoke", "--jobs", "2", "--threads", "1"]) == 0
    names = {p.stem for p in (run / "seed0" / "stages").glob("*.json")}
    assert {st.name for st in study_stages(run, 0, SIZES["smoke"])} <= names
    md = tmp_path / "page.md"
    assert report(["--run", str(run), "--records", str(tmp_path / "records"), "--md", str(md)]) == 0
    data = compute(tmp_path / "records")
    assert set(data["bon"]) == set(SCORERS) and sorted(data["bon"]["prm"]) == [1, 2, 4]
    assert set(data["plain"]) == {"sft", "inverse", "grpo", "grpo-prm"} and "beam-w2k2" in data["beam"]
    assert data["inverse"][0][0]["accuracy"] is not None
    page = md.read_text()
    assert "AgentPRM ≥ PVM ≥ ORM at N = 4" in page and (tmp_path / "records" / "bon.png").exists()
    # Resumable: a re-run skips every finished stage.
    stamp = (run / "seed0" / "stages" / "eval-bon-prm.json").stat().st_mtime_ns
    assert main(["--out", str(run), "--seeds", "1", "--size", "smoke", "--jobs", "2", "--threads", "1"]) == 0
    assert (run / "seed0" / "stages" / "eval-bon-prm.json").stat().st_mtime_ns == stamp
