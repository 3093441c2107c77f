"""The smoke quickstart end to end: every stage runs, the report is complete and honest."""

import json
import subprocess
import sys
from collections import defaultdict

import pytest


@pytest.mark.slow
def test_smoke_quickstart_report_is_recomputable(tmp_path):
    out = tmp_path / "qs"
    cmd = [sys.executable, "-m", "reagent", "quickstart", "--out", str(out), "--budget", "smoke"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = (out / "report.md").read_text()
    assert ("| variant | held-out accuracy ± s.e. | vs grpo | mean judge score | mean tool calls | wall time (s) |"
            in report)
    assert "docs/results.md" in report and "within noise" in report
    for name in ("sft", "grpo", "reagent-r", "reagent-u", "sft-critique", "grpo-critique"):
        assert f"\n| {name} |" in report, name
    assert "## Judge quality" in report and "reagent train-rrm" in report and "reagent train " in report
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("sft", "grpo", "reagent-r", "reagent-u", "sft-critique", "grpo-critique"):
        page = out / "seed0" / "eval" / name / "view.html"
        assert f"- {name}: [seed 0](seed0/eval/{name}/view.html)" in report and page.exists()
        first_id = json.loads((page.parent / "records.jsonl").read_text().splitlines()[0])["trajectory"]["id"]
        assert json.dumps(first_id) in page.read_text()  # the page embeds the evaluation's attempts
    results = json.loads((out / "results.json").read_text())
    # Recompute one number from the saved evaluation records: pass@1 of grpo.
    by_q = defaultdict(list)
    for line in (out / "seed0" / "eval" / "grpo" / "records.jsonl").read_text().splitlines():
        rec = json.loads(line)
        by_q[rec["task_id"]].append(1.0 if (rec["score"] or 0.0) >= 1.0 else 0.0)
    expected = sum(sum(v) / len(v) for v in by_q.values()) / len(by_q)
    assert results["variants"]["grpo"]["accuracy"] == pytest.approx(expected)
    # Every stage left its outputs in DIR; a re-run skips them all.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["variants"] == results["variants"]


def test_report_marks_differences_within_noise():
    from reagent.quickstart.report import _vs_grpo

    grpo = {"accuracy": 0.30, "stderr": 0.05}
    assert _vs_grpo("reagent-r", {"accuracy": 0.45, "stderr": 0.03}, grpo) == "within noise"  # 0.15 <= 0.16
    assert _vs_grpo("reagent-u", {"accuracy": 0.50, "stderr": 0.03}, grpo) == "higher"
    assert _vs_grpo("sft", {"accuracy": 0.05, "stderr": 0.02}, grpo) == "lower"
    assert _vs_grpo("grpo", grpo, grpo) == "" and _vs_grpo("sft", grpo, None) == ""


@pytest.fixture(params=["fork", "subprocess"])
def launcher(request):
    from reagent.quickstart.launch import fork_available

    if request.param == "fork" and not fork_available():
        pytest.skip("fork launcher is Linux-only")
    return request.param


def test_stage_launchers_log_mark_and_report_failure(tmp_path, launcher):
    from reagent.quickstart.launch import Stage, run_stage, stage_done

    demos = tmp_path / "demos.jsonl"
    ok = Stage("demos", ["demos", "--out", str(demos), "--limit", "3"], 1)
    done = run_stage(tmp_path, 0, ok, launcher)
    assert len(demos.read_text().splitlines()) == 3
    assert stage_done(tmp_path, 0, ok)["command"] == done["command"] == ok.command
    log = (tmp_path / "seed0" / "logs" / "demos.log").read_text()
    assert log.startswith("$ reagent demos") and "wrote 3 episodes" in log  # the child's stdout
    bad = Stage("bad", ["validate", str(tmp_path / "missing.jsonl")], 1)
    with pytest.raises(RuntimeError, match=r"stage bad failed \(exit 2\)[\s\S]*missing\.jsonl"):
        run_stage(tmp_path, 0, bad, launcher)
    assert stage_done(tmp_path, 0, bad) is None


def test_scheduler_runs_needs_first_skips_done_and_stops_on_failure(tmp_path, launcher):
    from reagent.quickstart.launch import Stage
    from reagent.quickstart.scheduler import run_plan

    demos = tmp_path / "demos.jsonl"
    make = Stage("demos", ["demos", "--out", str(demos), "--limit", "3"], 1)
    check = Stage("check", ["validate", str(demos)], 1, needs=("demos",))  # fails if run first
    finished = []
    by_seed = run_plan(tmp_path, [(0, check), (0, make)], 2, launcher, 1,
                       lambda seed, stage, done: finished.append(stage.name))
    assert finished == ["demos", "check"]
    assert [d["stage"] for d in by_seed[0]] == ["check", "demos"]  # reported in plan order
    again = run_plan(tmp_path, [(0, check), (0, make)], 2, launcher, 1, lambda *a: None)
    assert all(d["skipped"] for d in again[0])

    bad = Stage("bad", ["validate", str(tmp_path / "missing.jsonl")], 1)
    after = Stage("after", ["demos", "--out", str(tmp_path / "after.jsonl"), "--limit", "1"], 1, needs=("bad",))
    with pytest.raises(RuntimeError, match="stage bad failed"):
        run_plan(tmp_path, [(1, bad), (1, after)], 2, launcher, 1, lambda *a: None)
    assert not (tmp_path / "after.jsonl").exists()
    orphan = Stage("orphan", ["env"], 1, needs=("nothing",))
    with pytest.raises(RuntimeError, match="never be met: seed2/orphan"):
        run_plan(tmp_path, [(2, orphan)], 2, launcher, 1, lambda *a: None)


def test_report_writes_and_links_a_viewer_per_evaluation(tmp_path):
    from reagent.quickstart.report import _views_markdown, write_views

    ev = tmp_path / "seed0" / "eval" / "sft-critique"
    ev.mkdir(parents=True)
    traj = {"id": "q#0", "task_id": "q", "messages": [{"role": "user", "content": "2+2?"}], "stage": "initial"}
    rev = {**traj, "id": "q#0/rev", "stage": "revised", "parent_id": "q#0"}
    ev.joinpath("records.jsonl").write_text(json.dumps(
        {"id": "q#0", "task_id": "q", "benchmark": "toy", "question": "2+2?", "score": 1.0, "verdict": "correct",
         "trajectory": rev, "initial": {"score": 0.0, "trajectory": traj}}) + "\n")
    run = tmp_path / "seed0" / "rl" / "grpo"
    run.mkdir(parents=True)
    run.joinpath("metrics.jsonl").write_text('{"step": 1, "reward/total_mean": 0.5}\n')
    views = write_views(tmp_path, 1)
    assert views == {"sft-critique": [ev / "view.html"], "grpo training": [run / "run.html"]}
    assert '"id":"q#0/rev"' in (ev / "view.html").read_text() and "reward/total_mean" in (run / "run.html").read_text()
    md = _views_markdown(tmp_path, views)
    assert "- sft-critique: [seed 0](seed0/eval/sft-critique/view.html)" in md
    assert "- grpo training: [seed 0](seed0/rl/grpo/run.html)" in md


def test_judge_rl_stage_feeds_every_later_judge_use(tmp_path):
    """With ``judge_rl_steps`` the RL judge (trained from the SFT judge) is the one every later
    stage uses, and the SFT judge is still scored on the held-out set; without it nothing changes."""
    import dataclasses

    from reagent.quickstart.budgets import BUDGETS
    from reagent.quickstart.pipeline import seed_stages

    plain = {st.name: st for st in seed_stages(tmp_path, 0, BUDGETS["smoke"])}
    assert "train-judge-rl" not in plain and "judge-quality-sft" not in plain
    rl = {st.name: st for st in seed_stages(tmp_path, 0, dataclasses.replace(BUDGETS["smoke"],
                                                                             judge_rl_steps=3))}
    sft_judge, rl_judge = str(tmp_path / "seed0" / "judge" / "final"), str(tmp_path / "seed0" / "judge_rl" / "final")
    train_rl = rl["train-judge-rl"]
    assert train_rl.args[0] == "train-rrm-rl" and train_rl.needs == ("train-judge",)
    assert train_rl.args[train_rl.args.index("--model") + 1] == sft_judge
    assert train_rl.args[train_rl.args.index("--steps") + 1] == "3"
    assert rl["judge-quality-sft"].args[rl["judge-quality-sft"].args.index("--model") + 1] == sft_judge
    users = [st for st in rl.values() if rl_judge in st.args or any(rl_judge in a for a in st.args)]
    assert {"judge-quality", "rl-reagent-r", "rl-reagent-u", "score-sft", "eval-sft-critique"} <= {
        st.name for st in users}
    for st in users:
        assert "train-judge-rl" in st.needs, st.name
    assert not any(sft_judge in a for st in rl.values() if st.name not in (
        "train-judge", "train-judge-rl", "judge-quality-sft") for a in st.args)


def test_judge_quality_table_shows_sft_and_rl_judges_with_mean_and_se(tmp_path):
    from reagent.quickstart.report import judge_quality_lines, judge_quality_of

    for seed, (sft_auc, rl_auc) in enumerate([(0.6, 0.7), (0.8, 0.9)]):
        d = tmp_path / f"seed{seed}" / "eval"
        d.mkdir(parents=True)
        (d / "judge_quality_sft.json").write_text(json.dumps({"auroc": sft_auc, "format_valid_rate": 1.0}))
        (d / "judge_quality.json").write_text(json.dumps({"auroc": rl_auc, "format_valid_rate": 0.5}))
    only_sft = tmp_path / "seed9" / "eval"
    only_sft.mkdir(parents=True)
    (only_sft / "judge_quality.json").write_text(json.dumps({"auroc": 0.5}))
    assert judge_quality_of(only_sft) == {"sft": {"auroc": 0.5}}  # no RL stage: the one report is the SFT judge's
    quality = [judge_quality_of(tmp_path / f"seed{s}" / "eval") for s in (0, 1)]
    lines = judge_quality_lines(quality)
    rows = [line for line in lines if line.startswith("| ") and "judge |" not in line]
    assert rows[0].startswith("| 0 | SFT only | 1.000 | - | 0.600 |")
    assert rows[3].startswith("| 1 | SFT + RL | 0.500 | - | 0.900 |")
    # mean ± s.e. over the two seeds: AUROC (0.6 + 0.8) / 2 = 0.7, s.e. = std 0.1414 / sqrt(2) = 0.1
    assert "| mean ± s.e. (2 seeds) | SFT only | 1.000 ± 0.000 | - | 0.700 ± 0.100 |" in rows[4]
    assert "| mean ± s.e. (2 seeds) | SFT + RL | 0.500 ± 0.000 | - | 0.800 ± 0.100 |" in rows[5]


def test_judge_rl_stage_is_switched_on_from_the_command_line(tmp_path):
    from reagent.cli.quickstart import QuickstartConfig
    from reagent.quickstart.pipeline import seed_stages

    off = QuickstartConfig(budget="smoke").budget_values()
    on = QuickstartConfig(budget="smoke", judge_rl_steps=3).budget_values()
    assert off.judge_rl_steps == 0 and on.judge_rl_steps == 3
    names = {st.name for st in seed_stages(tmp_path, 0, on)}
    assert {"train-judge-rl", "judge-quality-sft"} <= names
    assert "train-judge-rl" not in {st.name for st in seed_stages(tmp_path, 0, off)}
    with pytest.raises(ValueError, match="judge_rl_steps must be >= 0"):
        QuickstartConfig(budget="smoke", judge_rl_steps=-1)
