"""``reagent train-prm``: see :mod:`rrm.prm_train`."""

from __future__ import annotations

import argparse

from reagent.config import add_config_args, load_config
from rrm.prm_train import TrainPRMConfig, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, TrainPRMConfig)


def main(args: argparse.Namespace) -> int:
    train(load_config(TrainPRMConfig, args))
    return 0
