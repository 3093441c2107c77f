"""``reagent train-rrm``: fine-tune a judge on teacher-annotated examples (:mod:`rrm.sft`).

    reagent train-rrm --data judge.jsonl --model DIR --out runs/rrm
    accelerate launch --config_file configs/accelerate/rrm_zero3.yaml \\
        -m reagent train-rrm --data judge.jsonl --model DIR --out runs/rrm --batch-size 2

Under ``accelerate launch`` every process runs this command; the effective batch is
``batch_size * grad_accum * processes``. ``--resume`` continues from the latest complete
checkpoint in ``--out``.
"""

from __future__ import annotations

import argparse
import json

from reagent.config import add_config_args, load_config
from rrm.sft import TrainRRMConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, TrainRRMConfig)


def main(args: argparse.Namespace) -> int:
    from rrm.sft import train

    metrics = train(load_config(TrainRRMConfig, args))
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}, indent=2))
    return 0
