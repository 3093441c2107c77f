"""The quickstart's report: every number is recomputed from the files the stages saved.

Accuracy is pass@1 over the k sampled attempts per held-out question (eval
``records.jsonl``), with the standard error over questions (one seed) or over seeds
(several). Mean judge score comes from the trained judge's verdicts on those same
held-out trajectories; tool calls are counted in them; wall time is the stage's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from reagent.quickstart.pipeline import VARIANTS

ROWS = ("sft", *VARIANTS, "sft-critique", "grpo-critique")


def jsonl_rows(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file written by the project's own stages (blank lines
    skipped); [] when the file does not exist (a stage that did not run)."""
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def accuracy(records: list[dict]) -> tuple[float, float]:
    """pass@1 (mean over questions of the share of correct attempts) and its s.e. over questions."""
    from eval.report import compute_metrics

    m = compute_metrics(records)["overall"]
    return m["pass@1"], m["pass@1_stderr_questions"]


def _tool_calls(records: list[dict]) -> float:
    counts = [sum(len(m.get("tool_calls") or []) for m in r["trajectory"]["messages"] if m["role"] == "assistant")
              for r in records]
    return sum(counts) / len(counts) if counts else float("nan")


def _judge_mean(path: Path) -> float:
    scores = [r["judge"]["score"] for r in jsonl_rows(path) if (r.get("judge") or {}).get("score") is not None]
    return sum(scores) / len(scores) if scores else float("nan")


def _seconds(seed_dir: Path, stage: str) -> float:
    marker = seed_dir / "stages" / f"{stage}.json"
    return json.loads(marker.read_text())["seconds"] if marker.exists() else float("nan")


def seed_results(seed_dir: Path) -> dict:
    rows = {}
    for name in ROWS:
        records = jsonl_rows(seed_dir / "eval" / name / "records.jsonl")
        if not records:
            continue
        acc, se = accuracy(records)
        stage = {"sft": "sft", "sft-critique": "eval-sft-critique", "grpo-critique": "eval-grpo-critique"}.get(
            name, f"rl-{name}")
        rows[name] = {"accuracy": acc, "stderr": se, "questions": len({r["task_id"] for r in records}),
                      "attempts": len(records), "judge_mean": _judge_mean(seed_dir / "eval" / name / "judged.jsonl"),
                      "tool_calls": _tool_calls(records), "wall_s": _seconds(seed_dir, stage)}
    return {"variants": rows, "judge_quality": judge_quality_of(seed_dir / "eval")}


def judge_quality_of(eval_dir: Path) -> dict[str, dict]:
    """The held-out judge reports of one seed in ``eval_dir``: ``sft`` (the SFT judge) and,
    where the judge RL stage ran, ``rl`` (SFT then RL). With an RL stage the SFT judge's
    report is ``judge_quality_sft.json`` and the RL judge's ``judge_quality.json``."""
    final, sft = eval_dir / "judge_quality.json", eval_dir / "judge_quality_sft.json"
    out = {}
    if sft.exists():
        out["sft"] = json.loads(sft.read_text())
        if final.exists():
            out["rl"] = json.loads(final.read_text())
    elif final.exists():
        out["sft"] = json.loads(final.read_text())
    return out


QUALITY_COLUMNS = (("format_valid_rate", "format-valid rate"), ("coverage", "coverage"),
                   ("auroc", "AUROC vs outcome"), ("auroc_failures_worst", "AUROC, failures worst"),
                   ("score_pearson", "Pearson vs teacher"), ("score_mae", "MAE vs teacher"),
                   ("pairwise_accuracy", "pairwise acc."),
                   ("pairwise_accuracy_failures_worst", "pairwise, failures worst"))
QUALITY_STAGES = {"sft": "SFT only", "rl": "SFT + RL"}


def judge_quality_lines(quality: list[dict[str, dict]]) -> list[str]:
    """Markdown: the judge-quality table, one row per seed and judge stage (SFT only, SFT + RL),
    then the mean ± s.e. over seeds of each stage (issue 16's table)."""
    lines = ["## Judge quality (held-out trajectories of the SFT policy, rule-based teacher labels)", "",
             "AUROC and pairwise accuracy over the trajectories the judge scored (coverage); "
             "\"failures worst\" counts every failed judgment as the lowest score. Goal (issue 16): "
             "format-valid >= 0.95 and AUROC >= 0.80 on every seed.", "",
             "| seed | judge | " + " | ".join(name for _, name in QUALITY_COLUMNS) + " |",
             "|---|---|" + "---|" * len(QUALITY_COLUMNS)]
    for stage, label in QUALITY_STAGES.items():
        for s, q in enumerate(quality):
            if stage in q:
                lines.append(f"| {s} | {label} | " + " | ".join(_fmt(q[stage].get(k)) for k, _ in QUALITY_COLUMNS)
                             + " |")
    for stage, label in QUALITY_STAGES.items():
        per_seed = [q[stage] for q in quality if stage in q]
        if len(per_seed) > 1:
            cells = []
            for k, _ in QUALITY_COLUMNS:
                xs = [r.get(k) for r in per_seed if r.get(k) is not None]
                cells.append(f"{_fmt(_mean(xs))} ± {_fmt(_std(xs) / math.sqrt(len(xs)))}" if len(xs) > 1
                             else _fmt(_mean(xs)))
            lines.append(f"| mean ± s.e. ({len(per_seed)} seeds) | {label} | " + " | ".join(cells) + " |")
    return lines


def combine(per_seed: list[dict]) -> dict:
    """Mean over seeds; s.e. over seeds when there are several, else the per-question s.e."""
    out = {}
    for name in ROWS:
        vals = [s["variants"][name] for s in per_seed if name in s["variants"]]
        if not vals:
            continue
        row = {k: _mean([v[k] for v in vals]) for k in ("accuracy", "judge_mean", "tool_calls", "wall_s")}
        accs = [v["accuracy"] for v in vals]
        row["stderr"] = (_std(accs) / math.sqrt(len(accs))) if len(accs) > 1 else vals[0]["stderr"]
        row["seeds"] = len(vals)
        out[name] = row
    return out


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def _std(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def write_report(root: Path, seeds: int, budget_name: str, budget, stages: dict[int, list], jobs: int = 1) -> dict:
    per_seed = [seed_results(root / f"seed{s}") for s in range(seeds)]
    table = combine(per_seed)
    quality = [s["judge_quality"] for s in per_seed]
    results = {"budget": budget_name, "budget_values": vars(budget), "seeds": seeds, "jobs": jobs,
               "variants": table, "per_seed": per_seed}
    (root / "results.json").write_text(json.dumps(results, indent=2, default=str))
    plot_curves(root, seeds, budget)
    views = write_views(root, seeds)
    (root / "report.md").write_text(_markdown(root, seeds, budget_name, budget, table, quality, stages, jobs)
                                    + _views_markdown(root, views))
    return results


def write_views(root: Path, seeds: int) -> dict[str, list[Path]]:
    """``view.html`` of every evaluation (its records, with the trained judge's verdicts where
    they were scored) and ``run.html`` of every RL run; name -> pages, one per seed."""
    from reagent.view.dashboard import write_dashboard
    from reagent.view.items import load_items
    from reagent.view.page import write_page

    pages: dict[str, list[Path]] = {}
    for s in range(seeds):
        for name in ROWS:
            d = root / f"seed{s}" / "eval" / name
            if (d / "records.jsonl").exists():
                judged = [d / "judged.jsonl"] if (d / "judged.jsonl").exists() else []
                items, report = load_items([d / "records.jsonl"], judged)
                pages.setdefault(name, []).append(
                    write_page(d / "view.html", items, report, f"held-out evaluation: {name}, seed {s}"))
        for v in VARIANTS:
            run = root / f"seed{s}" / "rl" / v
            if (run / "metrics.jsonl").exists():
                pages.setdefault(f"{v} training", []).append(
                    write_dashboard(run, run / "run.html", f"training run: {v}, seed {s}", png=False)[0])
    return pages


def _views_markdown(root: Path, views: dict[str, list[Path]]) -> str:
    lines = ["## Trajectory viewers and run dashboards", "",
             "Static pages that open offline: every held-out attempt beside the judge's verdict "
             "(initial and critique-revised attempts side by side), and each RL run's curves.", ""]
    for name, pages in views.items():
        links = ", ".join(f"[seed {p.relative_to(root).parts[0].removeprefix('seed')}]({p.relative_to(root)})"
                          for p in pages)
        lines.append(f"- {name}: {links}")
    return "\n".join(lines) + "\n"


def _budget_line(name: str, b) -> str:
    if name == "sft":
        return f"{b.sft_steps} SFT steps x {b.sft_batch} demos"
    if name in VARIANTS:
        g = b.group_size // 2 if name == "reagent-u" else b.group_size
        per_step = b.prompts_per_step * b.group_size
        how = f"{b.prompts_per_step} prompts x ({g} initial + {g} revised)" if name == "reagent-u" else \
            f"{b.prompts_per_step} prompts x {g}"
        return f"{b.rl_steps} steps x {per_step} trajectories ({how})"
    return "inference: answer, critique, revise"


def _results_link() -> str:
    """docs/results.md of the source checkout this package runs from, else its repository path."""
    from reagent.quickstart.pipeline import _repo_file

    page = _repo_file("docs", "results.md")
    return f"[docs/results.md]({page.as_uri()})" if page else "docs/results.md in the source repository"


def _vs_grpo(name: str, row: dict, grpo: dict | None) -> str:
    """"within noise" when the ±2 s.e. intervals of ``row`` and grpo overlap."""
    if grpo is None or name == "grpo":
        return ""
    values = (row["accuracy"], row["stderr"], grpo["accuracy"], grpo["stderr"])
    if any(v is None or v != v for v in values):
        return "-"
    overlap = abs(row["accuracy"] - grpo["accuracy"]) <= 2 * (row["stderr"] + grpo["stderr"])
    return "within noise" if overlap else ("higher" if row["accuracy"] > grpo["accuracy"] else "lower")


def _markdown(root: Path, seeds: int, budget_name: str, b, table: dict, quality: list[dict],
              stages: dict[int, list], jobs: int) -> str:
    se_note = "s.e. over seeds" if seeds > 1 else "s.e. over questions"
    lines = [f"# reagent quickstart ({budget_name} budget, {seeds} seed{'s' if seeds > 1 else ''})", "",
             f"Held-out toy tasks: {b.eval_tasks} questions x {b.eval_k} sampled attempts (temperature 1). "
             f"Accuracy = pass@1 ({se_note}). Numbers are computed from `seed*/eval/*/records.jsonl`. "
             f"Wall time is the stage's own; up to {jobs} independent stages ran at once.", "",
             "A few RL steps cannot separate the variants: the column *vs grpo* says whether a difference "
             "is within noise (the ±2 s.e. intervals overlap). For the study at equal, longer RL steps "
             f"with an oracle and a trained judge, see {_results_link()} (`benchmarks/efficacy.py`).", "",
             "| variant | held-out accuracy ± s.e. | vs grpo | mean judge score | mean tool calls | wall time (s) "
             "| budget |",
             "|---|---|---|---|---|---|---|"]
    for name, row in table.items():
        lines.append(f"| {name} | {_fmt(row['accuracy'])} ± {_fmt(row['stderr'])} | "
                     f"{_vs_grpo(name, row, table.get('grpo'))} | {_fmt(row['judge_mean'])} | "
                     f"{_fmt(row['tool_calls'], 2)} | {_fmt(row['wall_s'], 1)} | {_budget_line(name, b)} |")
    lines += ["", *judge_quality_lines(quality)]
    lines += ["", "![curves](curves.png)", "", "## Commands (every stage, in dependency order)", ""]
    for s, done in stages.items():
        lines.append(f"### seed {s}")
        lines += [f"- `{d['command']}` ({d['seconds']:.1f} s)" for d in done]
        lines.append("")
    lines += ["## Training configs", ""]
    for v in VARIANTS:
        cfg = root / "seed0" / "rl" / v / "config.yaml"
        if cfg.exists():
            lines += [f"### {v}", "```yaml", cfg.read_text().strip(), "```", ""]
    return "\n".join(lines) + "\n"


def plot_curves(root: Path, seeds: int, b) -> Path:
    """Training reward and held-out accuracy against step, one line per variant (seed 0..N mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_a) = plt.subplots(1, 2, figsize=(11, 4))
    half = max(b.rl_steps // 2, 1)
    for v in VARIANTS:
        rewards: dict[int, list[float]] = {}
        accs: dict[int, list[float]] = {}
        for s in range(seeds):
            sd = root / f"seed{s}"
            for m in jsonl_rows(sd / "rl" / v / "metrics.jsonl"):
                rewards.setdefault(m["step"], []).append(m.get("reward/total_mean"))
            for step, name in ((0, "sft"), (half, f"{v}-step{half}"), (b.rl_steps, v)):
                recs = jsonl_rows(sd / "eval" / name / "records.jsonl")
                if recs:
                    accs.setdefault(step, []).append(accuracy(recs)[0])
        if rewards:
            steps = sorted(rewards)
            ax_r.plot(steps, [_mean(rewards[k]) for k in steps], label=v)
        if accs:
            steps = sorted(accs)
            ax_a.plot(steps, [_mean(accs[k]) for k in steps], marker="o", label=v)
    ax_r.set(title="training reward (outcome + lambda * judge)", xlabel="step", ylabel="mean reward")
    ax_a.set(title="held-out accuracy (pass@1)", xlabel="step", ylabel="accuracy", ylim=(0, 1))
    for ax in (ax_r, ax_a):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = root / "curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
