"""``reagent view``: read trajectories the way the judge reads them, in one offline HTML file.

    reagent view traces.jsonl judged.jsonl eval/records.jsonl --out view.html
    reagent view eval/grpo/records.jsonl --judged eval/grpo/judged.jsonl --out grpo.html
    reagent view runs/grpo --out run.html      # a training run's dashboard (+ run.png)

Files are trajectories, judged trajectories, saved training rollouts, eval records,
judge examples or step labels, in any mix (see :mod:`reagent.view.items`). A single
directory argument holding ``metrics.jsonl`` is a training run. Bad lines are skipped
and listed, on stderr and in the page.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from reagent.config import add_config_args, cfg, load_config


@dataclass
class ViewConfig:
    inputs: list = cfg([], help="JSONL record files, or one training run directory (with metrics.jsonl)")
    out: str = cfg("view.html", help="HTML file to write (a run also writes OUT.png and OUT_rollouts.html)")
    judged: list = cfg([], help="`reagent judge` outputs whose verdicts are attached to the items with the same id")
    title: str = cfg("", help="page title (default: the input names)")
    page_size: int = cfg(100, help="table rows per page (only one page is ever built in the browser)")
    threshold: float = cfg(0.5, help="judge score of the 'correct but low' / 'wrong but high' one-click views")
    png: bool = cfg(True, help="run dashboard: also write the curves as OUT.png (matplotlib)")

    def __post_init__(self):
        if not self.inputs:
            raise ValueError("give at least one FILE or a run directory")
        if self.page_size < 1:
            raise ValueError(f"page_size={self.page_size}: must be at least 1")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold={self.threshold}: judge scores are in [0, 1]")
        for p in [*self.inputs, *self.judged]:
            if not Path(p).exists():
                raise FileNotFoundError(f"{p}: no such file or directory")
        dirs = [p for p in self.inputs if Path(p).is_dir()]
        if dirs and len(self.inputs) > 1:
            raise ValueError(f"a run directory ({dirs[0]}) is viewed on its own, not with other inputs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, ViewConfig, positional=("inputs",))


def run(c: ViewConfig) -> int:
    if Path(c.inputs[0]).is_dir():
        from reagent.view.dashboard import write_dashboard

        out, report = write_dashboard(c.inputs[0], c.out, c.title or None, png=c.png)
    else:
        from reagent.view.items import load_items
        from reagent.view.page import write_page

        items, report = load_items(c.inputs, c.judged)
        title = c.title or "reagent view: " + ", ".join(Path(p).name for p in c.inputs)
        out = write_page(c.out, items, report, title, page_size=c.page_size, threshold=c.threshold)
        print(f"view: {report.summary()}", file=sys.stderr)
        if c.judged:
            print(f"view: attached {report.judged_attached} verdicts from {', '.join(c.judged)}", file=sys.stderr)
    if report.skipped and Path(c.inputs[0]).is_dir():
        print(f"view: skipped {len(report.skipped)} bad lines:\n  " + "\n  ".join(report.skipped[:10]), file=sys.stderr)
    print(f"view: wrote {out}", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    return run(load_config(ViewConfig, args))
