"""Metrics from saved eval records, result tables (Markdown, JSON) and the comparison chart.

Everything is recomputed from ``records.jsonl`` (one line per attempt), never carried
in memory across a run, so a killed and resumed run, a finished one and ``reagent
report`` all compute the same numbers from the same file with :func:`compute_metrics`.

Per benchmark, over questions ``q`` with ``n_q`` graded attempts of which ``c_q`` are
correct:

* ``pass@1``: mean over questions of ``c_q / n_q`` (the mean over the K attempts);
  ``pass@1_stderr``: standard error over the K attempt runs (accuracy of attempt 0, of
  attempt 1, ...), NaN for K = 1; ``pass@1_stderr_questions``: standard error of the
  per-question means, which also exists for K = 1;
* ``pass@k`` for k = 1, 2, 4, ... and K (``K`` = the fewest attempts any question has):
  the unbiased estimator ``1 - C(n-c, k) / C(n, k)`` averaged over questions;
* an attempt the answer checker could not judge (``score`` None) counts as incorrect
  and is counted in ``could_not_judge``, shown next to the numbers, never dropped
  silently;
* Reagent-C records add ``initial_pass@1`` (the first attempts, before the critique),
  ``keep_rate`` (of the first attempts that were correct, the fraction still correct
  after the critique step), ``fix_rate`` (of the wrong ones, the fraction now correct),
  ``revised_frac`` and the skip counts ``revise_skipped/{reason}``;
* records with process stats (:mod:`eval.process`) add ``process/...`` means per
  trajectory: answer-neutral flaws (by kind), tool calls, generated tokens.

``overall`` pools all questions of all benchmarks (micro average).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eval.metrics import mean_and_stderr, pass_at_k
from reagent.process import process_metrics
from reagent.jsonl import BadJSON, iter_json_lines, parse_json_line

RECORDS = "records.jsonl"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


def read_eval_records(path: str | Path, light: bool = True) -> list[dict]:
    """The records of an eval run; a torn or bad line (a kill mid-write) is skipped.

    ``light`` drops the trajectories as it reads: metrics never need them, and a large
    run's trajectories would not fit in memory.
    """
    out = []
    path = Path(path)
    if not path.exists():
        return out
    for _, text in iter_json_lines(path):
        try:
            rec = parse_json_line(text)
        except BadJSON:
            continue
        if isinstance(rec, dict) and "task_id" in rec:
            if light:
                rec.pop("trajectory", None)
                if isinstance(rec.get("initial"), dict):
                    rec["initial"].pop("trajectory", None)
            out.append(rec)
    return out


def _k_values(k_max: int) -> list[int]:
    ks, k = [], 1
    while k < k_max:
        ks.append(k)
        k *= 2
    return ks + [k_max]


def _correct(rec: dict) -> float:
    return 1.0 if rec.get("score") is not None and rec["score"] >= 1.0 else 0.0


def _group_metrics(records: list[dict]) -> dict[str, Any]:
    """Metrics of one group of attempt records (one benchmark, or all pooled)."""
    by_q: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        by_q[rec["task_id"]].append(rec)
    k_max = min(len(recs) for recs in by_q.values())
    per_q = [[_correct(r) for r in recs] for recs in by_q.values()]
    m: dict[str, Any] = {"questions": len(by_q), "attempts": sum(len(v) for v in per_q), "k": k_max}
    q_means = [sum(v) / len(v) for v in per_q]
    m["pass@1"], m["pass@1_stderr_questions"] = mean_and_stderr(q_means)
    by_attempt: dict[int, list[float]] = defaultdict(list)
    for recs in by_q.values():
        for r in recs:
            by_attempt[r.get("attempt", 0)].append(_correct(r))
    runs = [sum(v) / len(v) for _, v in sorted(by_attempt.items())][:k_max]
    m["pass@1_stderr"] = mean_and_stderr(runs)[1]
    for k in _k_values(k_max):
        m[f"pass@{k}"] = math.fsum(pass_at_k(len(v), int(sum(v)), k) for v in per_q) / len(per_q)
    m["could_not_judge"] = sum(r.get("score") is None for r in records)
    m["answered_frac"] = sum(r.get("answer") is not None for r in records) / len(records)
    turns = [r["turns"] for r in records if isinstance(r.get("turns"), int)]
    m["mean_turns"] = sum(turns) / len(turns) if turns else float("nan")
    initial = [r["initial"] for r in records if isinstance(r.get("initial"), dict)]
    if initial:
        m["initial_pass@1"] = sum(_correct(i) for i in initial) / len(initial)
        m["judge_failed"] = sum(i.get("judge_score") is None for i in initial)
        m.update(critique_rates(r for r in records if isinstance(r.get("initial"), dict)))
    m.update(process_metrics(r.get("process") for r in records))
    picks = [r for r in records if r.get("candidates")]
    if picks:
        m["best_of"] = max(len(r["candidates"]) for r in picks)
        m["candidates_any_correct"] = sum(
            any((c.get("env_outcome") or 0.0) >= 1.0 for c in r["candidates"]) for r in picks
        ) / len(picks)
    methods = sorted({r.get("method", "plain") for r in records})
    m["method"] = methods[0] if len(methods) == 1 else ",".join(methods)
    return m


def critique_rates(records: Iterable[dict]) -> dict[str, Any]:
    """Reagent-C keep and fix rates over records with an ``initial`` attempt (NaN when no
    first attempt was correct, resp. wrong), the revised fraction and the skip counts."""
    pairs = [(_correct(r["initial"]), _correct(r), r["initial"]) for r in records]
    right = [final for first, final, _ in pairs if first]
    wrong = [final for first, final, _ in pairs if not first]
    m: dict[str, Any] = {
        "keep_rate": sum(right) / len(right) if right else float("nan"),
        "fix_rate": sum(wrong) / len(wrong) if wrong else float("nan"),
        "revised_frac": sum(i.get("revised", True) for _, _, i in pairs) / len(pairs) if pairs else float("nan"),
    }
    for _, _, i in pairs:
        if i.get("revise_skipped"):
            key = f"revise_skipped/{i['revise_skipped']}"
            m[key] = m.get(key, 0) + 1
    return m


def compute_metrics(records: Iterable[dict]) -> dict[str, Any]:
    """``{"benchmarks": {name: metrics}, "overall": metrics}`` (see the module docstring).

    An id written more than once (an attempt re-checked later) counts once: its last line.
    """
    records = list({r.get("id", i): r for i, r in enumerate(records)}.values())
    by_bench: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        by_bench[rec.get("benchmark", "?")].append(rec)
    out: dict[str, Any] = {
        "benchmarks": {b: _group_metrics(r) for b, r in sorted(by_bench.items())}
    }
    out["overall"] = _group_metrics(records) if records else {}
    return out


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _pm(mean: Any, se: Any) -> str:
    return _num(mean) + ("" if _num(se) == "-" else f" ± {_num(se)}")


def metrics_table(rows: list[tuple[str, str, dict]]) -> str:
    """A Markdown table of ``(run, benchmark, metrics)`` rows; pass@k columns as present."""
    ks = sorted(
        {
            int(key[5:])
            for _, _, m in rows
            for key in m
            if key.startswith("pass@") and key[5:].isdigit() and key != "pass@1"
        }
    )
    head = (["run"] if any(r for r, _, _ in rows) else []) + [
        "benchmark",
        "questions",
        "K",
        "pass@1 ± se (attempts)",
        "se (questions)",
        *[f"pass@{k}" for k in ks],
        "initial pass@1",
        "keep rate",
        "fix rate",
        "neutral flaws/traj",
        "could not judge",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, bench, m in rows:
        cells = ([run] if head[0] == "run" else []) + [
            bench,
            _num(m.get("questions")),
            _num(m.get("k")),
            _pm(m.get("pass@1"), m.get("pass@1_stderr")),
            _num(m.get("pass@1_stderr_questions")),
            *[_num(m.get(f"pass@{k}")) for k in ks],
            _num(m.get("initial_pass@1")),
            _num(m.get("keep_rate")),
            _num(m.get("fix_rate")),
            _num(m.get("process/answer_neutral_flaws")),
            _num(m.get("could_not_judge")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_markdown(
    metrics: dict, notes: dict[str, list[str]] | None = None, made_by: dict | None = None
) -> str:
    rows = [("", b, m) for b, m in metrics["benchmarks"].items()]
    if len(rows) > 1:
        rows.append(("", "overall", metrics["overall"]))
    parts = ["# Evaluation results", "", metrics_table(rows), ""]
    if made_by:
        parts += ["Made by: " + ", ".join(f"{k}={v}" for k, v in made_by.items()), ""]
    for bench, lines in (notes or {}).items():
        parts += [f"- {bench}: " + "; ".join(lines)]
    unjudged = metrics.get("overall", {}).get("could_not_judge", 0)
    if unjudged:
        parts += [
            "",
            (
                f"**{unjudged} attempt(s) could not be judged** and count as incorrect; "
                "see the records whose verdict is could_not_judge."
            ),
        ]
    return "\n".join(parts).rstrip() + "\n"


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def write_results(
    out_dir: str | Path, notes: dict[str, list[str]] | None = None, made_by: dict | None = None
) -> dict:
    """Recompute metrics from ``records.jsonl`` and write ``results.json`` and ``results.md``."""
    out_dir = Path(out_dir)
    metrics = compute_metrics(read_eval_records(out_dir / RECORDS))
    payload = {**metrics, "notes": notes or {}, "made_by": made_by or {}}
    (out_dir / RESULTS_JSON).write_text(
        json.dumps(_json_safe(payload), indent=2, ensure_ascii=False)
    )
    (out_dir / RESULTS_MD).write_text(results_markdown(metrics, notes, made_by))
    return metrics


def load_run(run_dir: str | Path) -> dict:
    """A run's metrics, recomputed from its records when present, else read from results.json."""
    run_dir = Path(run_dir)
    records = read_eval_records(run_dir / RECORDS)
    if records:
        return compute_metrics(records)
    if (run_dir / RESULTS_JSON).is_file():
        return json.loads((run_dir / RESULTS_JSON).read_text())
    raise FileNotFoundError(
        f"{run_dir}: no {RECORDS} or {RESULTS_JSON} (is it a `reagent eval --out` folder?)"
    )


def run_labels(dirs: list[str | Path]) -> list[str]:
    """Short unique labels: the folder name, with its parent when names repeat."""
    names = [Path(d).resolve().name for d in dirs]
    if len(set(names)) == len(names):
        return names
    return ["/".join(Path(d).resolve().parts[-2:]) for d in dirs]


def comparison(dirs: list[str | Path]) -> tuple[list[str], list[dict]]:
    return run_labels(dirs), [load_run(d) for d in dirs]


def combined_table(labels: list[str], runs: list[dict]) -> str:
    rows = []
    for label, run in zip(labels, runs):
        rows += [(label, b, m) for b, m in run["benchmarks"].items()]
        if len(run["benchmarks"]) > 1:
            rows.append((label, "overall", run["overall"]))
    return metrics_table(rows)


def plot_comparison(labels: list[str], runs: list[dict], out_png: str | Path) -> Path:
    """Grouped bars of pass@1 (± stderr over questions) per benchmark, one bar per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = sorted({b for run in runs for b in run["benchmarks"]})
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(
        figsize=(max(4.0, 1.2 * len(benches) * max(len(runs), 1) ** 0.5 + 2), 3.6)
    )
    for i, (label, run) in enumerate(zip(labels, runs)):
        ms = [run["benchmarks"].get(b, {}) for b in benches]
        means = [m.get("pass@1", 0.0) or 0.0 for m in ms]
        errs = [m.get("pass@1_stderr_questions") or 0.0 for m in ms]
        errs = [0.0 if isinstance(e, float) and math.isnan(e) else e for e in errs]
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(benches))]
        ax.bar(xs, means, width, yerr=errs, capsize=3, label=label)
    ax.set_xticks(range(len(benches)), benches)
    ax.set_ylabel("pass@1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    ax.set_title("pass@1 by benchmark (error bars: stderr over questions)", fontsize="small")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
