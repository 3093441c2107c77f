"""``reagent sft --data demos.jsonl --model DIR --out DIR``: supervised warm-up of a policy."""

from __future__ import annotations

import argparse
import json

from reagent.config import add_config_args, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reagent.train.sft import SFTConfig

    add_config_args(parser, SFTConfig)


def main(args: argparse.Namespace) -> int:
    from reagent.train.sft import SFTConfig, train

    config = load_config(SFTConfig, args)
    last = train(config)
    print(json.dumps({"final": f"{config.out}/final", **last}, indent=2))
    return 0
