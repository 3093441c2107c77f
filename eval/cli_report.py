"""``reagent report DIR... --out FILE.png``: compare eval runs in one chart and one table.

Each DIR is a ``reagent eval --out`` folder; its metrics are recomputed from its
``records.jsonl`` (so a report never disagrees with the records) or, without records,
read from ``results.json``. The PNG has one group of pass@1 bars per benchmark, one bar
per run; the combined Markdown table goes to ``FILE.md`` beside the PNG and to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", help="result folders written by `reagent eval --out`")
    parser.add_argument(
        "--out",
        required=True,
        help="PNG file for the bar chart; the table goes to the same name with .md",
    )
    parser.add_argument(
        "--labels", nargs="+", default=None, help="one label per folder (default: the folder names)"
    )


def main(args: argparse.Namespace) -> int:
    from eval.report import combined_table, comparison, plot_comparison

    labels, runs = comparison(args.dirs)
    if args.labels:
        if len(args.labels) != len(args.dirs):
            raise ValueError(f"--labels has {len(args.labels)} names for {len(args.dirs)} folders")
        labels = list(args.labels)
    png = plot_comparison(labels, runs, args.out)
    table = combined_table(labels, runs)
    md = Path(png).with_suffix(".md")
    md.write_text("# Evaluation comparison\n\n" + table + "\n")
    print(table)
    print(f"report: wrote {png} and {md}", file=sys.stderr)
    return 0
