"""Write a judge dataset: JSONL per split, ``datasets.save_to_disk``, and a stats report.

The report answers "what is in this dataset and can the teacher be trusted?":

* counts: per split, by outcome class, by teacher, and what each filter dropped;
* agreement between teacher score and outcome (:mod:`rrm.metrics`): Pearson correlation,
  AUROC of the score for correct (outcome >= 0.5) against incorrect trajectories, and the
  mean score per outcome class. A teacher whose score does not separate correct from
  incorrect trajectories at all (AUROC near 0.5) deserves a look before training on it;
* a PNG histogram of teacher scores by outcome class.

``stats.json`` (machine-readable), ``stats.md`` (for people) and the PNG's metadata all
carry ``made_by``: the command, its config hash and the teachers whose verdicts went in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from data_gen.filters import outcome_class
from reagent.jsonl import to_dataset, write_records
from reagent.records import JudgeExample
from rrm.metrics import auroc, correct, pearson

SPLITS = ("train", "validation")
HIST_BINS = 10


def agreement(examples: Sequence[JudgeExample]) -> dict:
    """How well teacher scores agree with outcomes, over examples that have both."""
    scores = [ex.score for ex in examples]
    outcomes = [ex.outcome for ex in examples]
    by_class: dict[str, list[float]] = {}
    for ex in examples:
        if ex.score is not None:
            by_class.setdefault(outcome_class(ex.outcome), []).append(ex.score)
    return {
        "n_with_outcome": sum(o is not None and s is not None for s, o in zip(scores, outcomes)),
        "pearson_score_outcome": pearson(scores, outcomes),
        "auroc_score_for_correct": auroc(scores, [correct(o) for o in outcomes]),
        "mean_score_by_outcome": {k: sum(v) / len(v) for k, v in sorted(by_class.items())},
    }


def histogram(examples: Sequence[JudgeExample], bins: int = HIST_BINS) -> dict[str, list[int]]:
    """Counts of teacher scores in ``bins`` equal bins over [0, 1], per outcome class."""
    out: dict[str, list[int]] = {}
    for ex in examples:
        if ex.score is None:
            continue
        row = out.setdefault(outcome_class(ex.outcome), [0] * bins)
        row[min(int(ex.score * bins), bins - 1)] += 1
    return dict(sorted(out.items()))


def dataset_stats(splits: dict[str, list[JudgeExample]], stages: dict[str, int],
                  dropped: Counter, made_by: dict) -> dict:
    """The stats report as a dict (written as stats.json)."""
    everything = [ex for exs in splits.values() for ex in exs]
    return {
        "made_by": made_by,
        "stages": stages,
        "dropped": dict(sorted(dropped.items())),
        "splits": {
            name: {"examples": len(exs),
                   "tasks": len({ex.extra.get("task_id") for ex in exs}),
                   "by_outcome": dict(sorted(Counter(outcome_class(ex.outcome)
                                                     for ex in exs).items()))}
            for name, exs in splits.items()},
        "teachers": dict(sorted(Counter(ex.teacher for ex in everything).items())),
        "agreement": agreement(everything),
        "score_histogram": {"bins": HIST_BINS, "counts": histogram(everything)},
    }


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def stats_markdown(stats: dict) -> str:
    """A short human-readable report of :func:`dataset_stats`."""
    a = stats["agreement"]
    made_by = stats["made_by"]
    lines = ["# Judge dataset", "",
             (f"Made by `{made_by.get('command')}` (config {made_by.get('config_hash')}) "
              f"from {', '.join(made_by.get('inputs', []))}."), "",
             "| stage | examples |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in stats["stages"].items()]
    lines += ["", "| dropped / noted | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in stats["dropped"].items()] or ["| none | 0 |"]
    lines += ["", "| split | examples | tasks | by outcome |", "|---|---|---|---|"]
    for name, s in stats["splits"].items():
        outcomes = ", ".join(f"{k} {v}" for k, v in s["by_outcome"].items())
        lines.append(f"| {name} | {s['examples']} | {s['tasks']} | {outcomes} |")
    means = ", ".join(f"{k} {_fmt(v)}" for k, v in a["mean_score_by_outcome"].items())
    teachers = ", ".join(f"{k} ({v})" for k, v in stats["teachers"].items())
    lines += ["", (f"Teacher score vs outcome ({a['n_with_outcome']} examples with both): "
                   f"Pearson {_fmt(a['pearson_score_outcome'])}, "
                   f"AUROC {_fmt(a['auroc_score_for_correct'])}; "
                   f"mean score by outcome: {means or 'n/a'}."),
              "", f"Teachers: {teachers}.",
              "", "![score histogram by outcome](score_hist.png)", ""]
    return "\n".join(lines)


def plot_histogram(stats: dict, path: Path) -> None:
    """Teacher-score histogram by outcome class as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = stats["score_histogram"]
    bins = hist["bins"]
    width = 1.0 / bins
    classes = list(hist["counts"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bar_w = width / max(len(classes), 1)
    colors = {"correct": "tab:green", "incorrect": "tab:red", "unknown": "tab:gray"}
    for k, name in enumerate(classes):
        xs = [i * width + k * bar_w for i in range(bins)]
        ax.bar(xs, hist["counts"][name], width=bar_w * 0.95, align="edge",
               color=colors.get(name), label=f"{name} (n={sum(hist['counts'][name])})")
    ax.set_xlim(0, 1)
    ax.set_xlabel("teacher score")
    ax.set_ylabel("examples")
    ax.set_title("Teacher score by outcome")
    ax.legend()
    fig.tight_layout()
    made_by = json.dumps(stats["made_by"], sort_keys=True, default=str)
    fig.savefig(path, dpi=100, metadata={"Software": "reagent build-dataset", "Description": made_by})
    plt.close(fig)


def export(out_dir: str | Path, splits: dict[str, list[JudgeExample]], stats: dict,
           save_hf: bool = True, plot: bool = True) -> list[Path]:
    """Write every file of the dataset into ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, exs in splits.items():
        path = out_dir / f"{name}.jsonl"
        write_records(path, exs)
        written.append(path)
    if save_hf:
        from datasets import DatasetDict

        hf = DatasetDict({name: to_dataset(exs) for name, exs in splits.items() if exs})
        hf.save_to_disk(str(out_dir / "hf"))
        written.append(out_dir / "hf")
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
    (out_dir / "stats.md").write_text(stats_markdown(stats))
    written += [out_dir / "stats.json", out_dir / "stats.md"]
    if plot:
        plot_histogram(stats, out_dir / "score_hist.png")
        written.append(out_dir / "score_hist.png")
    return written
