"""``reagent train-prm``: see :mod:`rrm.prm_train` (``--method inverse``: :mod:`rrm.inverse_prm`)."""

from __future__ import annotations

import argparse

from reagent.config import add_config_args, load_config
from rrm.prm_train import TrainPRMConfig, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, TrainPRMConfig)


def main(args: argparse.Namespace) -> int:
    c = load_config(TrainPRMConfig, args)
    if c.method == "inverse":
        from rrm.inverse_prm import run_inverse

        run_inverse(c)
    else:
        train(c)
    return 0
