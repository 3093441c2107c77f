"""``reagent build-dataset``: judge verdicts -> a clean, balanced, split judge dataset.

    reagent build-dataset --judgments judge.jsonl --out-dir data/judge \\
        [--balance outcome] [--val-fraction 0.1] [--seed 0]

Reads the JSONL that ``reagent annotate`` writes (one or more files), then in order:
keeps verdicts whose parse status is in ``keep_statuses``; drops critiques that leak
the reference answer; drops duplicate trajectories; balances (optional); splits
train/validation by task. Writes ``train.jsonl`` and ``validation.jsonl``
(:class:`~reagent.records.JudgeExample`, what ``reagent train-rrm`` reads), ``hf/``
(``datasets.DatasetDict.save_to_disk``), ``stats.json``, ``stats.md``,
``score_hist.png`` and ``config.yaml``. See :mod:`data_gen.filters` for each filter.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from data_gen.export import dataset_stats, export
from data_gen.filters import BALANCE_MODES, balance, clean, split_key, task_of
from reagent.config import add_config_args, cfg, config_hash, load_config, save_config
from reagent.jsonl import SkipReport, read_records
from reagent.records import JudgeExample
from reagent.train.data import split_by_group


@dataclass
class BuildConfig:
    # cfg gives list defaults a default_factory, so RUF009's concern does not apply.
    judgments: list = cfg([], help="annotate output files (judge-example JSONL), "  # noqa: RUF009
                          "one or more")
    out_dir: str = cfg("judge_dataset", help="directory for the dataset files")
    keep_statuses: list = cfg(["ok"],  # noqa: RUF009
                              help="parse statuses kept (ok; add out_of_range to keep verdicts "
                              "whose score was clipped into [0, 1])")
    drop_leaks: bool = cfg(True, help="drop examples whose critique contains the normalised "
                           "reference answer, or whose analysis names one the trajectory "
                           "does not show")
    leak_fields: list = cfg(["critique", "analysis"],  # noqa: RUF009
                            help="fields checked for leakage (critique, analysis)")
    dedup: bool = cfg(True, help="keep one example per identical rendered trajectory")
    balance: str = cfg("none", help="balance cells: none | outcome (correct/incorrect) | score "
                       "(teacher-score bins) | outcome_score (both)")
    score_bins: int = cfg(5, help="number of equal score bins over [0, 1] for balancing")
    balance_cap: int | None = cfg(None, help="examples kept per balance cell (default: the "
                                  "size of the smallest non-empty cell)")
    val_fraction: float = cfg(0.1, help="share of task groups in validation; examples sharing a "
                              "task id or a question form one group, so none is on both sides "
                              "(the rule of every trainer's split, reagent.train.data.split_by_group)")
    seed: int = cfg(0, help="seed of balancing and of the split")
    save_hf: bool = cfg(True, help="also write a datasets.DatasetDict with save_to_disk")
    plot: bool = cfg(True, help="write the score histogram PNG")

    def __post_init__(self):
        if not self.judgments:
            raise ValueError("judgments is required: --judgments FILE [FILE ...]")
        if self.balance not in BALANCE_MODES:
            raise ValueError(f"balance='{self.balance}' is not one of: {', '.join(BALANCE_MODES)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.score_bins < 1:
            raise ValueError(f"score_bins must be >= 1, got {self.score_bins}")
        if self.balance_cap is not None and self.balance_cap < 1:
            raise ValueError(f"balance_cap must be >= 1, got {self.balance_cap}")
        bad = [f for f in self.leak_fields if f not in ("critique", "analysis")]
        if bad:
            raise ValueError(f"leak_fields {bad} not allowed; use critique and/or analysis")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, BuildConfig)


def log(msg: str) -> None:
    print(f"build-dataset: {msg}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    c = load_config(BuildConfig, args)
    examples: list[JudgeExample] = []
    for path in c.judgments:
        skips = SkipReport()
        examples += read_records(path, JudgeExample, skip_bad=True, report=skips)
        if skips.skipped:
            log(f"{path}: {skips.summary()}")
    stages = {"read": len(examples)}
    kept, dropped = clean(examples, c.keep_statuses, c.drop_leaks, c.leak_fields, c.dedup)
    stages["after_filters"] = len(kept)
    kept = balance(kept, c.balance, c.score_bins, c.balance_cap, c.seed)
    stages["after_balance"] = len(kept)
    train, val = split_by_group(kept, task_of, c.val_fraction, c.seed, linked=split_key)
    made_by = {"command": "build-dataset", "config_hash": config_hash(c),
               "inputs": [str(p) for p in c.judgments],
               "teachers": sorted({ex.teacher for ex in kept})}
    for ex in kept:
        ex.extra["built_by"] = {"command": "build-dataset", "config_hash": made_by["config_hash"]}
    splits = {"train": train, "validation": val}
    stats = dataset_stats(splits, stages, Counter(dropped), made_by)
    written = export(c.out_dir, splits, stats, save_hf=c.save_hf, plot=c.plot)
    save_config(c, Path(c.out_dir) / "config.yaml")
    a = stats["agreement"]
    log(f"read {stages['read']}, kept {stages['after_filters']} after filters "
        f"({', '.join(f'{k} {v}' for k, v in sorted(dropped.items())) or 'nothing dropped'}), "
        f"{stages['after_balance']} after balance -> train {len(train)}, validation {len(val)}")
    log(f"teacher score vs outcome: Pearson {a['pearson_score_outcome']}, "
        f"AUROC {a['auroc_score_for_correct']}")
    log("wrote " + ", ".join(str(p) for p in written))
    return 0 if kept else 1
