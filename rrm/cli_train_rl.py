"""``reagent train-rrm-rl``: the judge's RL stage (GRPO on its own verdicts), see :mod:`rrm.rl`.

    reagent train-rrm-rl --data judge.jsonl --model runs/rrm/final --out runs/rrm_rl
    reagent train-rrm-rl --config cfg.yaml w_outcome=0.5 steps=200

``--resume`` continues from the latest complete checkpoint in ``--out``.
"""

from __future__ import annotations

import argparse
import json

from reagent.config import add_config_args, load_config
from rrm.rl import TrainRRMRLConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, TrainRRMRLConfig)


def main(args: argparse.Namespace) -> int:
    from rrm.rl import train

    metrics = train(load_config(TrainRRMRLConfig, args))
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}, indent=2))
    return 0
