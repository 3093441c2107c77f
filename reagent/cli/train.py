"""``reagent train --config FILE [key=value ...]``: GRPO / Reagent-R / Reagent-U policy training."""

from __future__ import annotations

import argparse
import sys

from reagent.config import add_config_args, load_config
from reagent.train.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, TrainConfig)


def main(args: argparse.Namespace) -> int:
    from reagent.train.trainer import GRPOTrainer

    config = load_config(TrainConfig, args)
    trainer = GRPOTrainer(config)
    final = trainer.train()
    print(f"train: done; final checkpoint {final}")
    counter = trainer.judge_counter
    if counter is not None and counter.judged and counter.failed == counter.judged:
        # Every judge reward was missing: the run was outcome-only whatever its variant.
        level = "warning" if config.on_judge_failure == "outcome_only" else "error"
        print(f"train: {level}: every judgment failed ({counter.summary()}); the policy "
              "trained on outcome rewards alone", file=sys.stderr)
        return 1 if level == "error" else 0
    return 0
