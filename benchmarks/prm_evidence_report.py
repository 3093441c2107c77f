"""Every number of ``docs/prm_results.md``, recomputed from the PRM evidence study's saved records.

    python benchmarks/prm_evidence_report.py --run runs/prm --records docs/prm_results --md docs/prm_results.md
    python benchmarks/prm_evidence_report.py --records docs/prm_results --md docs/prm_results.md  # from records

``--run`` first copies what the numbers need out of a study directory
(``benchmarks/prm_evidence.py``) into ``--records``: each evaluation's records without
their trajectories (``seedS/eval/NAME.jsonl``; a beam-search record keeps its
``generated_tokens``), the RL runs' and InversePRM iterations' per-step metrics, each
InversePRM iteration's discrimination report, each value head's held-out report and the
study's settings. Everything below is computed from those files alone:
:func:`eval.best_of_n.bon_curve` for the Best-of-N curves (the scorer's pick among the
first n candidates, graded by its environment outcome), pass@1 as the mean over
questions of the share of correct samples. ``tests/benchmarks/test_prm_evidence.py``
recomputes a number of the committed page.

Beam search against Best-of-N at equal generated tokens: Best-of-N with n samples costs
n x T tokens per question, T the SFT policy's mean generated tokens per episode (its
plain evaluation, same questions); a beam run that generated B tokens per question is
compared with the AgentPRM Best-of-N curve at n = B / T, interpolated linearly in
log2 n between the measured n (and capped at the largest n, said so in the table).

Uncertainty: mean ± standard error over seeds (with one seed, over questions).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from eval.best_of_n import bon_curve
from eval.metrics import mean_and_stderr
from reagent.jsonl import write_records
from reagent.quickstart.report import jsonl_rows

SCORER_NAMES = {"prm": "AgentPRM (TD+GAE, promise+progress)", "pvm": "PVM (MC, beta 0)", "orm": "ORM",
                "judge": "generative judge"}
PLAIN = ("sft", "inverse", "grpo", "grpo-prm")
PLAIN_NAMES = {"sft": "SFT start", "inverse": "InversePRM (no outcome reward)", "grpo": "GRPO (outcome)",
               "grpo-prm": "GRPO + process_reward: prm"}
RL_KEYS = ("step", "accuracy", "reward/total_mean", "process/reward_mean", "groups/degenerate_frac")


# ---------------------------------------------------------------- collecting saved records


def light(rec: dict) -> dict:
    """An eval record without its trajectory; a beam search's generated tokens kept."""
    out = {k: v for k, v in rec.items() if k not in ("trajectory", "question", "made_by")}
    tokens = (rec.get("trajectory") or {}).get("generated_tokens")
    if tokens is not None:
        out["generated_tokens"] = tokens
    return out


def collect(run: Path, records: Path) -> None:
    """Copy the study's numbers-bearing files from ``run`` into ``records`` (replacing its seeds)."""
    for old in records.glob("seed*"):
        shutil.rmtree(old)
    for seed_dir in sorted(run.glob("seed*")):
        out = records / seed_dir.name
        for eval_dir in sorted((seed_dir / "eval").glob("*/")):
            recs = jsonl_rows(eval_dir / "records.jsonl")
            if recs:
                write_records(out / "eval" / f"{eval_dir.name}.jsonl", [light(r) for r in recs])
        for rl_dir in sorted((seed_dir / "rl").glob("*/")):
            write_records(out / "rl" / f"{rl_dir.name}.jsonl",
                   [{k: m[k] for k in RL_KEYS if k in m} for m in jsonl_rows(rl_dir / "metrics.jsonl")])
        for it in sorted((seed_dir / "inverse").glob("iter-*/")):
            if (it / "done.json").exists():
                done = json.loads((it / "done.json").read_text())
                (out / "inverse").mkdir(parents=True, exist_ok=True)
                (out / "inverse" / f"{it.name}.json").write_text(json.dumps(
                    {k: done[k] for k in ("iteration", "labels", "negatives", "discrimination", "seconds")}, indent=2))
                write_records(out / "inverse" / f"{it.name}-rl.jsonl",
                       [{k: m[k] for k in RL_KEYS if k in m} for m in jsonl_rows(it / "policy" / "metrics.jsonl")])
        for head in sorted((seed_dir / "prm").glob("*/final/reagent_prm.json")):
            (out / "prm").mkdir(parents=True, exist_ok=True)
            meta = json.loads(head.read_text())
            (out / "prm" / f"{head.parents[1].name}.json").write_text(json.dumps(
                {k: meta[k] for k in ("objective", "beta", "gamma", "step", "heldout")}, indent=2))
    records.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "study.json", records / "study.json")


# ---------------------------------------------------------------- computing


def pass1(recs: list[dict]) -> float:
    """Mean over questions of the share of correct samples."""
    return _mean(per_question(recs))


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def over_seeds(values: list[float], units: list[float] | None = None) -> tuple[float, float]:
    """Mean ± s.e. over seeds; with one seed, the s.e. over that seed's ``units`` (questions or episodes)."""
    if len(values) > 1:
        return mean_and_stderr(values)
    if units:
        return values[0], mean_and_stderr(units)[1]
    return (values[0], 0.0) if values else (float("nan"), 0.0)


def per_question(recs: list[dict]) -> list[float]:
    """Each question's share of correct samples (what pass@1 averages)."""
    by_q: dict[str, list[float]] = {}
    for r in recs:
        by_q.setdefault(r["task_id"], []).append(1.0 if (r.get("score") or 0.0) >= 1.0 else 0.0)
    return [sum(v) / len(v) for v in by_q.values()]


def _bernoulli(p: float, n: int) -> list[float]:
    """n questions of which a share p was right (a Best-of-N pick is right or wrong)."""
    k = round(p * n)
    return [1.0] * k + [0.0] * (n - k)


def at_budget(curve: dict[int, float], n: float) -> tuple[float, bool]:
    """Best-of-N accuracy at (fractional) n, linear in log2 n; (value, capped at the largest n)."""
    ns = sorted(curve)
    if n <= ns[0]:
        return curve[ns[0]], False
    if n >= ns[-1]:
        return curve[ns[-1]], n > ns[-1]
    hi = next(i for i, m in enumerate(ns) if m >= n)
    a, b = ns[hi - 1], ns[hi]
    t = (math.log2(n) - math.log2(a)) / (math.log2(b) - math.log2(a))
    return curve[a] + t * (curve[b] - curve[a]), False


def compute(records: Path) -> dict:
    study = json.loads((records / "study.json").read_text())
    seeds = sorted(p for p in records.glob("seed*") if p.is_dir())
    evals = {s.name: {p.stem: jsonl_rows(p) for p in sorted((s / "eval").glob("*.jsonl"))} for s in seeds}
    data: dict = {"study": study, "seeds": [s.name for s in seeds], "bon": {}, "beam": {}, "plain": {},
                  "inverse": {}, "rl": {}, "prm": {}, "evals_by_seed": {s: sorted(e) for s, e in evals.items()}}
    for scorer in SCORER_NAMES:
        names = [s for s, e in evals.items() if e.get(f"bon-{scorer}")]
        per_seed = [{row["n"]: row for row in bon_curve(evals[s][f"bon-{scorer}"])} for s in names]
        if not per_seed:
            continue
        ns = sorted(set.intersection(*(set(c) for c in per_seed)))
        data["bon"][scorer] = {n: {"accuracy": over_seeds([c[n]["accuracy"] for c in per_seed],
                                                          _bernoulli(per_seed[0][n]["accuracy"],
                                                                     per_seed[0][n]["records"])),
                                   "pass": over_seeds([c[n]["pass@n"] for c in per_seed],
                                                      _bernoulli(per_seed[0][n]["pass@n"], per_seed[0][n]["records"])),
                                   "seeds": names,
                                   "per_seed": [c[n]["accuracy"] for c in per_seed]} for n in ns}
    tokens = {s: _mean([r["process"]["tokens"] for r in e.get("sft", []) if (r.get("process") or {}).get("tokens")])
              for s, e in evals.items()}
    data["tokens_per_episode"] = tokens
    beams = sorted({name for e in evals.values() for name in e if name.startswith("beam-")})
    for name in beams:
        acc, gen, bon_acc, n_eq, capped, first = [], [], [], [], False, None
        for s, e in evals.items():
            recs = e.get(name)
            if not recs or not e.get("bon-prm") or not tokens[s]:
                continue
            acc.append(pass1(recs))
            first = first or recs
            gen.append(_mean([r["generated_tokens"] for r in recs]))
            curve = {row["n"]: row["accuracy"] for row in bon_curve(e["bon-prm"])}
            n = gen[-1] / tokens[s]
            value, cap = at_budget(curve, n)
            bon_acc.append(value)
            n_eq.append(n)
            capped = capped or cap
        if acc:
            data["beam"][name] = {"accuracy": over_seeds(acc, per_question(first)), "tokens": _mean(gen),
                                  "n_equal": _mean(n_eq),
                                  "bon_at_equal": over_seeds(bon_acc, _bernoulli(bon_acc[0], len(per_question(first)))),
                                  "capped": capped,
                                  "per_seed": acc, "bon_per_seed": bon_acc}
    for name in PLAIN:
        runs = [e[name] for e in evals.values() if e.get(name)]
        if runs:
            by_seed = {s: (pass1(e[name]), mean_and_stderr(per_question(e[name]))[1])
                       for s, e in evals.items() if e.get(name)}
            flaw_lists = [[(r.get("process") or {}).get("answer_neutral_flaws", 0) for r in recs] for recs in runs]
            token_lists = [[(r.get("process") or {}).get("tokens") or 0 for r in recs] for recs in runs]
            data["plain"][name] = {"accuracy": over_seeds([pass1(r) for r in runs], per_question(runs[0])),
                                   "per_seed": [pass1(r) for r in runs], "by_seed": by_seed,
                                   "flaws": over_seeds([_mean(x) for x in flaw_lists], flaw_lists[0]),
                                   "tokens": over_seeds([_mean(x) for x in token_lists], token_lists[0])}
    for s in seeds:
        for it in sorted((s / "inverse").glob("iter-*.json")):
            done = json.loads(it.read_text())
            rl = jsonl_rows(s / "inverse" / f"{it.stem}-rl.jsonl")
            data["inverse"].setdefault(done["iteration"], []).append(
                {**done["discrimination"], "rl_accuracy_first": rl[0].get("accuracy") if rl else None,
                 "rl_accuracy_last": rl[-1].get("accuracy") if rl else None})
        for run in sorted((s / "rl").glob("*.jsonl")):
            data["rl"].setdefault(run.stem, []).append(jsonl_rows(run))
        for head in sorted((s / "prm").glob("*.json")):
            data["prm"].setdefault(head.stem, []).append(json.loads(head.read_text())["heldout"])
    return data


# ---------------------------------------------------------------- writing


def fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def pm(v: tuple[float, float]) -> str:
    return f"{fmt(v[0])} ± {fmt(v[1])}"


def _mean_of(rows: list[dict], key: str) -> str:
    """The formatted mean of ``key`` over the rows that have a number there; "n/a" if none do."""
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return fmt(_mean(vals)) if vals else "n/a"


def verdicts(data: dict) -> list[str]:
    """The issue's goals, each checked on the means (and whether the gap is beyond 2 s.e.)."""
    out = []
    bon = data["bon"]
    if all(k in bon for k in ("prm", "pvm", "orm")):
        n = max(bon["prm"])
        # on the seeds all three have (a study cut short may have more seeds of one than another)
        common = set.intersection(*(set(bon[k][n]["seeds"]) for k in ("prm", "pvm", "orm")))
        a, b, c = (_mean([v for s, v in zip(bon[k][n]["seeds"], bon[k][n]["per_seed"]) if s in common])
                   for k in ("prm", "pvm", "orm"))
        holds = a >= b >= c
        out.append(f"- AgentPRM ≥ PVM ≥ ORM at N = {n}: **{'holds' if holds else 'does not hold'}** "
                   f"({fmt(a)} / {fmt(b)} / {fmt(c)}, mean over {len(common)} seed(s)).")
    for name, row in data["beam"].items():
        holds = row["accuracy"][0] >= row["bon_at_equal"][0]
        out.append(f"- {name} ≥ AgentPRM Best-of-N at equal generated tokens: **{'holds' if holds else 'does not hold'}**"
                   f" ({fmt(row['accuracy'][0])} vs {fmt(row['bon_at_equal'][0])} at n ≈ {row['n_equal']:.1f}).")
    p = data["plain"]
    for a, b in (("inverse", "sft"), ("grpo-prm", "grpo")):
        common = sorted(set(p.get(a, {}).get("by_seed", {})) & set(p.get(b, {}).get("by_seed", {})))
        if common:  # paired on the seeds both have
            diffs = [p[a]["by_seed"][s][0] - p[b]["by_seed"][s][0] for s in common]
            d = _mean(diffs)
            noise = 2 * (mean_and_stderr(diffs)[1] if len(diffs) > 1 else
                         math.hypot(p[a]["by_seed"][common[0]][1], p[b]["by_seed"][common[0]][1]))
            out.append(f"- {PLAIN_NAMES[a]} vs {PLAIN_NAMES[b]}: {d:+.3f} pass@1 on {len(common)} seed(s) "
                       f"({'beyond' if abs(d) > noise else 'within'} 2 s.e. = {noise:.3f}).")
    return out


def plots(data: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, name: str) -> str:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        return name

    names = []
    if data["bon"]:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for scorer, rows in data["bon"].items():
            ns = sorted(rows)
            ax.errorbar(ns, [rows[n]["accuracy"][0] for n in ns], yerr=[rows[n]["accuracy"][1] for n in ns],
                        marker="o", capsize=2, label=SCORER_NAMES[scorer])
        first = next(iter(data["bon"].values()))
        ns = sorted(first)
        ax.plot(ns, [first[n]["pass"][0] for n in ns], linestyle="--", color="grey", label="pass@N (oracle)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("N (samples per question)")
        ax.set_ylabel("held-out accuracy")
        ax.legend(fontsize="small")
        names.append(save(fig, "bon.png"))
    if data["beam"] and "prm" in data["bon"]:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        rows = data["bon"]["prm"]
        t = _mean([v for v in data["tokens_per_episode"].values() if v])
        ns = sorted(rows)
        ax.plot([n * t for n in ns], [rows[n]["accuracy"][0] for n in ns], marker="o", label="Best-of-N (AgentPRM)")
        for name, row in data["beam"].items():
            ax.errorbar([row["tokens"]], [row["accuracy"][0]], yerr=[row["accuracy"][1]], marker="s", capsize=2,
                        linestyle="none", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("generated tokens per question")
        ax.set_ylabel("held-out accuracy")
        ax.legend(fontsize="small")
        names.append(save(fig, "beam.png"))
    if data["plain"]:
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        keys = list(data["plain"])
        ax.bar(range(len(keys)), [data["plain"][k]["accuracy"][0] for k in keys],
               yerr=[data["plain"][k]["accuracy"][1] for k in keys], capsize=3)
        ax.set_xticks(range(len(keys)), [k for k in keys])
        ax.set_ylabel("held-out pass@1")
        names.append(save(fig, "policies.png"))
    return names


def render(data: dict, records: Path, md: Path) -> str:
    study, z = data["study"], data["study"]["sizes"]
    rel = records.relative_to(md.parent) if records.is_relative_to(md.parent) else records
    lines = ["# PRM evidence: Best-of-N, beam search, InversePRM and RL with step rewards (issue 18)", "",
             "Generated by `benchmarks/prm_evidence_report.py` from the records in "
             f"`{rel}/` (study: `benchmarks/prm_evidence.py --size {study['size']} --seeds {study['seeds']}"
             + (f" --sft {study['sft']}" if study.get("sft") else "")
             + (f" --judge {study['judge']}" if study.get("judge") else "") + "`). Toy ledger task, held-out questions "
             f"({z['heldout']} per seed), {sum(1 for e in data['evals_by_seed'].values() if e)} seed(s) with evaluations; "
             "mean ± s.e. over seeds (one seed: over questions).", ""]
    lines += ["## Verdicts", ""] + verdicts(data) + [""]
    if data["bon"]:
        ns = sorted(next(iter(data["bon"].values())))
        lines += ["## Best-of-N accuracy against N", "", "![Best-of-N](" + f"{rel}/bon.png)", "",
                  "| scorer | " + " | ".join(f"N={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
        for scorer, rows in data["bon"].items():
            seeds = len(rows[ns[0]]["per_seed"])
            lines.append(f"| {SCORER_NAMES[scorer]} [{seeds} seed{'s' if seeds > 1 else ''}] | "
                         + " | ".join(pm(rows[n]["accuracy"]) for n in ns) + " |")
        first = next(iter(data["bon"].values()))
        lines.append("| pass@N (oracle) | " + " | ".join(pm(first[n]["pass"]) for n in ns) + " |")
        lines.append("")
    if data["beam"]:
        t = data["tokens_per_episode"]
        lines += ["## Beam search against Best-of-N at equal generated tokens", "",
                  "![beam](" + f"{rel}/beam.png)", "",
                  "Tokens per episode of the SFT policy (plain eval): "
                  + ", ".join(f"{s} {fmt(v)}" for s, v in t.items()) + ".", "",
                  "| search | accuracy | generated tokens / question | equal-budget n | AgentPRM BoN at that n |",
                  "|---|---|---|---|---|"]
        for name, row in data["beam"].items():
            capped = " (capped at the largest N)" if row["capped"] else ""
            lines.append(f"| {name} [{len(row['per_seed'])} seed(s)] | {pm(row['accuracy'])} | {row['tokens']:.0f} | "
                         f"{row['n_equal']:.1f} | "
                         f"{pm(row['bon_at_equal'])}{capped} |")
        lines.append("")
    if data["plain"]:
        lines += ["## Policies: InversePRM and GRPO with/without process_reward: prm", "",
                  "![policies](" + f"{rel}/policies.png)", "",
                  f"GRPO runs: {z['rl_steps']} steps each, {z['prompts_per_step']} prompts x {z['group_size']}; "
                  f"InversePRM: {z['inverse_iterations']} iteration(s) x {z['inverse_rl_steps']} RL steps, no outcome "
                  "reward.", "",
                  "| policy | pass@1 | answer-neutral flaws / episode | generated tokens / episode |", "|---|---|---|---|"]
        for name, row in data["plain"].items():
            lines.append(f"| {PLAIN_NAMES[name]} [{len(row['per_seed'])} seed(s)] | {pm(row['accuracy'])} | "
                         f"{pm(row['flaws'])} | {pm(row['tokens'])} |")
        lines.append("")
    if data["inverse"]:
        lines += ["### InversePRM iterations (discrimination on the iteration's labels; RL accuracy is the "
                  "environment's, never trained on)", "",
                  "| iteration | demo step value | policy step value | accuracy | AUROC | RL rollout accuracy first → last |",
                  "|---|---|---|---|---|---|"]
        for k, rows in sorted(data["inverse"].items()):
            cells = [_mean_of(rows, key) for key in ("demo_mean", "policy_mean", "accuracy", "auroc")]
            first, last = _mean_of(rows, "rl_accuracy_first"), _mean_of(rows, "rl_accuracy_last")
            lines.append(f"| {k} | " + " | ".join(cells) + f" | {first} → {last} |")
        lines.append("")
    if data["prm"]:
        lines += ["## Value heads: held-out report of train-prm (mean over seeds)", "",
                  "| head | MSE to targets | final-step AUROC vs outcome | Spearman vs MC |", "|---|---|---|---|"]
        for head, reps in sorted(data["prm"].items()):
            lines.append(f"| {head} | " + " | ".join(_mean_of(reps, key) for key in ("mse", "final_auroc", "mc_spearman"))
                         + " |")
        lines.append("")
    notes = records / "NOTES.md"
    if notes.exists():
        lines += ["## Reading the numbers", "", notes.read_text().strip(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default=None, help="study directory to collect records from first")
    p.add_argument("--records", required=True, help="saved records (written with --run)")
    p.add_argument("--md", required=True, help="the Markdown page to write (PNGs go beside the records)")
    a = p.parse_args(argv)
    records, md = Path(a.records), Path(a.md)
    if a.run:
        collect(Path(a.run), records)
    data = compute(records)
    plots(data, records)
    md.write_text(render(data, records.resolve(), md.resolve()) + "\n")
    print(f"prm-evidence-report: wrote {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
