"""``reagent train --config FILE [key=value ...]``: GRPO / Reagent-R / Reagent-U policy training."""

from __future__ import annotations

import argparse

from reagent.config import add_config_args, load_config
from reagent.train.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, TrainConfig)


def main(args: argparse.Namespace) -> int:
    from reagent.train.trainer import GRPOTrainer

    config = load_config(TrainConfig, args)
    final = GRPOTrainer(config).train()
    print(f"train: done; final checkpoint {final}")
    return 0
