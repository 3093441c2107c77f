"""``reagent quickstart --out DIR [--budget smoke|default] [--seeds N]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from reagent.config import add_config_args, cfg, load_config


@dataclass
class QuickstartConfig:
    out: str = cfg("runs/quickstart", help="directory for every stage's outputs and the report")
    budget: str = cfg("default", help="smoke (< 1 min, checks structure) | default (<= 15 min on 2 cores)")
    seeds: int = cfg(1, help="independent runs (seed 0..N-1); the report gives mean and s.e. over seeds")
    device: str = cfg("cpu", help="device for every stage: cpu | cuda | auto")
    jobs: int = cfg(2, help="stages run at once when they do not depend on each other; each gets "
                    "cores/jobs torch threads (a tiny model cannot use many)")
    launcher: str = cfg("fork", help="fork (Linux: import torch once, fork per stage; elsewhere falls back) "
                        "| subprocess (a fresh interpreter per stage)")
    judge_rl_steps: int | None = cfg(None, help="judge RL (train-rrm-rl) steps after the judge's SFT; the "
                                     "later stages then use the RL judge and the report shows both judges. "
                                     "Default: the budget's (0 = no RL stage: it did not pay, issue 16)")

    def __post_init__(self):
        from reagent.quickstart.budgets import BUDGETS

        if self.budget not in BUDGETS:
            raise ValueError(f"budget={self.budget!r}: use one of {', '.join(BUDGETS)}")
        if self.launcher not in ("fork", "subprocess"):
            raise ValueError(f"launcher={self.launcher!r}: use fork or subprocess")
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if self.judge_rl_steps is not None and self.judge_rl_steps < 0:
            raise ValueError(f"judge_rl_steps must be >= 0, got {self.judge_rl_steps}")

    def budget_values(self):
        """The named budget, with ``judge_rl_steps`` replaced where it is set."""
        from reagent.quickstart.budgets import BUDGETS

        b = BUDGETS[self.budget]
        return b if self.judge_rl_steps is None else dataclasses.replace(b, judge_rl_steps=self.judge_rl_steps)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, QuickstartConfig)


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reagent.quickstart.launch import fork_available, preload
    from reagent.quickstart.pipeline import seed_stages
    from reagent.quickstart.report import write_report
    from reagent.quickstart.scheduler import run_plan

    c = load_config(QuickstartConfig, args)
    root, budget = Path(c.out), c.budget_values()
    plan = [(s, st) for s in range(c.seeds) for st in seed_stages(root, s, budget, c.device)]
    total = sum(st.eta_share(c.jobs) for _, st in plan)
    start = time.time()
    launcher = c.launcher if fork_available() else "subprocess"
    if launcher == "fork":
        preload()
    threads = max(1, (os.cpu_count() or 1) // c.jobs)
    # The bar advances by each stage's estimated seconds, so its ETA is the overall one.
    with tqdm(total=round(total), unit="s", bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]") as bar:
        def on_done(seed, stage, done):
            bar.set_description(f"quickstart ({c.budget}) seed {seed}: {stage.name:<22}")
            bar.update(round(stage.eta_share(c.jobs)))

        done_by_seed = run_plan(root, plan, c.jobs, launcher, threads, on_done)
    results = write_report(root, c.seeds, c.budget, budget, done_by_seed, c.jobs)
    print(f"\nquickstart: done in {time.time() - start:.0f} s; report {root / 'report.md'}", file=sys.stderr)
    for name, row in results["variants"].items():
        print(f"  {name:<14} held-out accuracy {row['accuracy']:.3f} ± {row['stderr']:.3f}", file=sys.stderr)
    return 0
