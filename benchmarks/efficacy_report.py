"""Every number of ``docs/results.md``, recomputed from the efficacy study's saved records.

    python benchmarks/efficacy_report.py --run runs/efficacy --records docs/results --md docs/results.md
    python benchmarks/efficacy_report.py --records docs/results --md docs/results.md   # from saved records

``--run`` first copies what the numbers need out of a study directory
(``benchmarks/efficacy.py``) into ``--records``: each held-out evaluation's records without
their trajectories (``seedS/eval/NAME.jsonl``: verdicts, Reagent-C's first attempt,
process stats), each RL run's per-step metrics (``seedS/rl/RUN.jsonl``), the judge-quality
report and the study's settings. Everything below is computed from those files alone,
with :func:`eval.report.compute_metrics` (the numbers ``reagent eval`` reports), so
``tests/benchmarks/test_efficacy.py`` can recompute a number of the committed page.

Uncertainty: with several seeds, mean ± standard error over seeds; with one seed, the
standard error over questions of that seed (which ignores training noise). A difference
to grpo is marked *within noise* when the two ±2 s.e. intervals overlap.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from eval.metrics import mean_and_stderr
from eval.report import compute_metrics
from reagent.jsonl import write_records
from reagent.quickstart.report import judge_quality_lines, judge_quality_of, jsonl_rows

RL_KEYS = ("step", "accuracy", "reward/total_mean", "reward/judge_mean", "groups/degenerate_frac",
           "judge/failure_rate", "process/answer_neutral_flaws", "process/tool_calls", "process/tokens")


# ---------------------------------------------------------------- collecting saved records


def light(rec: dict) -> dict:
    """An eval record without trajectories (what every metric here needs)."""
    rec = {k: v for k, v in rec.items() if k not in ("trajectory", "question", "made_by")}
    if isinstance(rec.get("initial"), dict):
        rec["initial"] = {k: v for k, v in rec["initial"].items() if k != "trajectory"}
    return rec


def collect(run: Path, records: Path) -> None:
    """Copy the study's numbers-bearing files from ``run`` into ``records`` (replacing it)."""
    if records.exists():
        shutil.rmtree(records)
    for seed_dir in sorted(run.glob("seed*")):
        out = records / seed_dir.name
        for eval_dir in sorted((seed_dir / "eval").glob("*/")):
            recs = jsonl_rows(eval_dir / "records.jsonl")
            if recs:
                write_records(out / "eval" / f"{eval_dir.name}.jsonl", [light(r) for r in recs])
        for rl_dir in sorted((seed_dir / "rl").glob("*/")):
            lines = jsonl_rows(rl_dir / "metrics.jsonl")
            if lines:
                write_records(out / "rl" / f"{rl_dir.name}.jsonl", [{k: m[k] for k in RL_KEYS if k in m} for m in lines])
        for name in ("judge_quality.json", "judge_quality_sft.json"):
            if (seed_dir / "eval" / name).exists():
                shutil.copy(seed_dir / "eval" / name, out / name)
    shutil.copy(run / "study.json", records / "study.json")


# ---------------------------------------------------------------- computing


def eval_metrics(records: Path) -> dict[str, list[dict]]:
    """``{eval name: [overall metrics of seed 0, seed 1, ...]}`` over the seeds that have it."""
    out: dict[str, list[dict]] = {}
    for seed_dir in sorted(records.glob("seed*")):
        for f in sorted((seed_dir / "eval").glob("*.jsonl")):
            out.setdefault(f.stem, []).append(compute_metrics(jsonl_rows(f))["overall"])
    return out


def combine(per_seed: list[dict], key: str, se_key: str | None = None) -> tuple[float, float]:
    """(mean, s.e.) of ``key`` over seeds; one seed: its value and ``se_key`` (over questions)."""
    values = [m[key] for m in per_seed if m.get(key) is not None and not _nan(m[key])]
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        se = per_seed[0].get(se_key) if se_key else None
        return values[0], float("nan") if se is None else se
    return mean_and_stderr(values)


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def within_noise(a: tuple[float, float], b: tuple[float, float]) -> bool | None:
    """True when the ±2 s.e. intervals overlap; None when an s.e. is unknown."""
    if any(_nan(x) for x in (*a, *b)):
        return None
    return abs(a[0] - b[0]) <= 2 * (a[1] + b[1])


def rl_curves(records: Path, run: str, key: str) -> dict[int, list[float]]:
    """Per-step training metric ``key`` of ``run`` over seeds."""
    out: dict[int, list[float]] = {}
    for seed_dir in sorted(records.glob("seed*")):
        for m in jsonl_rows(seed_dir / "rl" / f"{run}.jsonl"):
            if m.get(key) is not None and not _nan(m[key]):
                out.setdefault(m["step"], []).append(m[key])
    return out


def fmt(x: Any, digits: int = 3) -> str:
    return "-" if x is None or _nan(x) else f"{x:.{digits}f}"


def pm(v: tuple[float, float]) -> str:
    return fmt(v[0]) + ("" if _nan(v[1]) else f" ± {fmt(v[1])}")


# ---------------------------------------------------------------- the page


def compute(records: Path) -> dict:
    """Every table of the page as data (the test recomputes from this too)."""
    study = json.loads((records / "study.json").read_text())
    evals = eval_metrics(records)
    steps, final = study["steps"], f"step{study['steps']}"
    runs = ["grpo"] + [f"{v}-{j}" for j in ("rules", "trained") for v in ("reagent-r", "reagent-u")]
    rows = {}
    for run in ["sft", *runs]:
        name = "sft" if run == "sft" else f"{run}-{final}"
        per_seed = evals.get(name, [])
        if not per_seed:
            continue
        zero = rl_curves(records, run, "groups/degenerate_frac")
        zero_all = [x for xs in zero.values() for x in xs]
        kinds = sorted({k for m in per_seed for k in m if k.startswith("process/flaws/")})
        rows[run] = {
            "seeds": len(per_seed),
            "accuracy": combine(per_seed, "pass@1", "pass@1_stderr_questions"),
            "flaws": combine(per_seed, "process/answer_neutral_flaws"),
            "by_kind": {k.removeprefix("process/flaws/"): combine(per_seed, k)[0] for k in kinds},
            "tool_calls": combine(per_seed, "process/tool_calls")[0],
            "tokens": combine(per_seed, "process/tokens")[0],
            "zero_signal": sum(zero_all) / len(zero_all) if zero_all else float("nan"),
        }
    for run, row in rows.items():
        if run != "grpo" and "grpo" in rows:
            row["acc_within_noise"] = within_noise(row["accuracy"], rows["grpo"]["accuracy"])
            row["flaws_within_noise"] = within_noise(row["flaws"], rows["grpo"]["flaws"])
    critique = {}
    for name, per_seed in sorted(evals.items()):
        if name.startswith("critique-"):
            _, policy, judge, mode = name.split("-", 3)
            critique[name] = {"policy": policy, "judge": judge, "mode": mode,
                              **{k: combine(per_seed, k, se)[0] if k != "pass@1" else combine(per_seed, k, se)
                                 for k, se in (("initial_pass@1", None), ("pass@1", "pass@1_stderr_questions"),
                                               ("keep_rate", None), ("fix_rate", None),
                                               ("revised_frac", None))}}
    curves = {}
    for run in runs:
        acc, flaws = {}, {}
        if "sft" in evals:
            acc[0] = [m["pass@1"] for m in evals["sft"]]
            flaws[0] = [m.get("process/answer_neutral_flaws") for m in evals["sft"]]
        for step in range(1, steps + 1):
            per_seed = evals.get(f"{run}-step{step}")
            if per_seed:
                acc[step] = [m["pass@1"] for m in per_seed]
                flaws[step] = [m.get("process/answer_neutral_flaws") for m in per_seed]
        train = rl_curves(records, run, "process/answer_neutral_flaws")
        curves[run] = {"accuracy": acc, "flaws": flaws, "train_flaws": train}
    # The study's trained judge: the SFT one unless the study chose the RL one (--trained-judge rl)
    quality = [judge_quality_of(d) for d in sorted(records.glob("seed*/"))]
    quality = [q for q in quality if q]
    used = study.get("trained_judge", "rl")  # studies before the option used the RL judge where it ran
    return {"study": study, "rows": rows, "critique": critique, "curves": curves, "judge_quality": quality,
            "trained_judge": used, "judge_auroc": [q.get(used, q["sft"]).get("auroc") for q in quality]}


def plot(data: dict, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for run, c in data["curves"].items():
        for ax, key in zip(axes, ("accuracy", "flaws", "train_flaws")):
            pts = {s: [x for x in v if x is not None] for s, v in c[key].items()}
            steps = sorted(s for s, v in pts.items() if v)
            if steps:
                ax.plot(steps, [sum(pts[s]) / len(pts[s]) for s in steps], marker="o", label=run)
    axes[0].set(title="held-out accuracy (pass@1), mean over seeds", xlabel="RL step (0 = SFT)",
                ylabel="accuracy", ylim=(0, 1))
    axes[1].set(title="answer-neutral flaws per trajectory (held-out)", xlabel="RL step (0 = SFT)",
                ylabel="flaws")
    axes[2].set(title="answer-neutral flaws per trajectory (training rollouts)", xlabel="RL step",
                ylabel="flaws")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def _noise(flag: bool | None) -> str:
    return "-" if flag is None else ("within noise" if flag else "**outside noise**")


def markdown(data: dict, records: Path, md: Path, png: Path, label: str) -> str:
    st = data["study"]
    se = "s.e. over seeds" if st["seeds"] > 1 else "s.e. over questions (one seed: training noise not included)"
    lines = [
        "# Does the judge's signal improve the policy? (issue 19)", "",
        label, "",
        f"Study: {st['seeds']} seed(s), {st['steps']} RL steps per run, held-out evaluation every "
        f"{st['eval_every']} steps, quickstart size `{st['size']}` "
        f"({st['budget']['eval_tasks']} held-out questions x {st['budget']['eval_k']} attempts, "
        f"{st['budget']['prompts_per_step']} prompts x {st['budget']['group_size']} per RL step). "
        f"Accuracy = pass@1 ± {se}.", "",
        "Made by:", "", "```",
        f"python benchmarks/efficacy.py --out RUN --seeds {st['seeds']} --steps {st['steps']} "
        f"--eval-every {st['eval_every']} --size {st['size']} --revise-below {st['revise_below']}"
        + (f" --judge-rl-steps {st['budget']['judge_rl_steps']} --trained-judge {st.get('trained_judge', 'rl')}"
           if st["budget"].get("judge_rl_steps") else ""),
        f"python benchmarks/efficacy_report.py --run RUN --records {records.as_posix()} --md {md.as_posix()}",
        "```", "",
        f"Every number below is recomputed from `{records.as_posix()}/` by the second command without `--run`.", "",
        "## RL variants at equal steps (final checkpoint)", "",
        "Oracle = the rules checker as the judge (`judge_model=rules`); trained = the seed's trained "
        "judge. *Neutral flaws* = answer-neutral flaws per trajectory (irrelevant lookups, repeated "
        "calls, non-existent accounts, malformed calls, unknown tools, calc on one number). "
        "*Zero-signal groups* = mean fraction of training groups whose rewards were all equal. "
        "The last two columns compare with grpo (±2 s.e. intervals overlap = within noise).", "",
        "| run | seeds | accuracy | neutral flaws/traj | flaws by kind | tool calls | tokens | "
        "zero-signal groups | accuracy vs grpo | flaws vs grpo |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for run, r in data["rows"].items():
        kinds = ", ".join(f"{k} {fmt(v, 2)}" for k, v in r["by_kind"].items() if v) or "none"
        lines.append(f"| {run} | {r['seeds']} | {pm(r['accuracy'])} | {pm(r['flaws'])} | {kinds} | "
                     f"{fmt(r['tool_calls'], 2)} | {fmt(r['tokens'], 1)} | {fmt(r['zero_signal'])} | "
                     f"{_noise(r.get('acc_within_noise')) if run not in ('grpo', 'sft') else ''} | "
                     f"{_noise(r.get('flaws_within_noise')) if run not in ('grpo', 'sft') else ''} |")
    lines += ["", f"![accuracy and flaws vs step]({png.name})", "",
              "## Reagent-C (critique, then revise) on the SFT and grpo policies", "",
              f"`all` revises every attempt the judge scored; `below` only those it scored below "
              f"{st['revise_below']} with a critique that names a flaw. Keep rate = correct first "
              "attempts still correct after; fix rate = wrong first attempts now correct. "
              "A failed judgment is never revised.", "",
              "| policy | judge | mode | first attempt | after critique | keep rate | fix rate | revised |",
              "|---|---|---|---|---|---|---|---|"]
    for c in data["critique"].values():
        lines.append(f"| {c['policy']} | {c['judge']} | {c['mode']} | {fmt(c['initial_pass@1'])} | "
                     f"{pm(c['pass@1'])} | {fmt(c['keep_rate'])} | {fmt(c['fix_rate'])} | "
                     f"{fmt(c['revised_frac'])} |")
    auroc = ", ".join(fmt(a) for a in data["judge_auroc"]) or "-"
    lines += ["", f"Trained judge AUROC vs outcome on held-out SFT trajectories, per seed: {auroc} "
              "(the issue expects the trained-judge ordering only once this is >= 0.8). The study's trained "
              f"judge: {'SFT then RL' if data['trained_judge'] == 'rl' else 'SFT only'}.", "",
              *judge_quality_lines(data["judge_quality"]), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a benchmarks/efficacy.py output directory to collect records from first")
    p.add_argument("--records", required=True, help="saved records directory (written with --run, else read)")
    p.add_argument("--md", required=True, help="the page to write (its PNG goes beside it)")
    p.add_argument("--label", default="", help="a line at the top saying what kind of run this is")
    a = p.parse_args(argv)
    records, md = Path(a.records), Path(a.md)
    if a.run:
        collect(Path(a.run), records)
    if not (records / "study.json").exists():
        p.error(f"{records} holds no study.json: pass --run DIR of a finished benchmarks/efficacy.py run")
    data = compute(records)
    png = plot(data, md.with_name(md.stem + "_curves.png"))
    if a.label:  # kept with the records, so a recompute without --label writes the same page
        (records / "LABEL").write_text(a.label + "\n")
    label = (records / "LABEL").read_text().strip() if (records / "LABEL").exists() else ""
    md.write_text(markdown(data, records, md, png, label))
    print(f"efficacy_report: wrote {md} and {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
