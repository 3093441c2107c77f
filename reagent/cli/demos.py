"""``reagent demos``: rule-based demonstrations on the toy task, for the SFT warm-up.

A ``flaw_rate`` share of the episodes carry one deliberate flaw (guessing, a
mental-arithmetic slip, an irrelevant or repeated lookup, ...), so the warm-started
policy makes realistic mistakes that outcome and process rewards can then remove.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass

from reagent.config import add_config_args, cfg, config_hash, load_config
from reagent.envs.toy import ToyEnv
from reagent.envs.toy_demos import demonstrations
from reagent.jsonl import write_records


@dataclass
class DemosConfig:
    out: str = cfg("demos.jsonl", help="output trajectory JSONL (overwritten)")
    split: str = cfg("train", help="toy split: train | heldout")
    limit: int = cfg(2000, help="number of tasks (one episode each)")
    flaw_rate: float = cfg(0.4, help="share of episodes with one deliberate flaw")
    revision_rate: float = cfg(0.0, help="share of episodes that show a first attempt (flawed half the "
                               "time), its critique and a clean revision (for Reagent-C/U)")
    env_seed: int = cfg(0, help="seed of the toy task generator")
    seed: int = cfg(0, help="seed of the flaw draw")
    one_call_per_turn: bool = cfg(False, help="one tool call per assistant turn (Llama 3.1's "
                                  "template allows no more); default: a step's calls share a turn")

    def __post_init__(self):
        for name in ("flaw_rate", "revision_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, DemosConfig)


def main(args: argparse.Namespace) -> int:
    c = load_config(DemosConfig, args)
    env = ToyEnv(seed=c.env_seed)
    trajs = demonstrations(env, env.tasks(c.split, c.limit), flaw_rate=c.flaw_rate, seed=c.seed,
                           revision_rate=c.revision_rate, one_call_per_turn=c.one_call_per_turn)
    made_by = {"command": "demos", "config_hash": config_hash(c)}
    for t in trajs:
        t.extra["made_by"] = made_by
    write_records(c.out, trajs)
    flaws = Counter(t.extra["demo_flaw"] for t in trajs)
    correct = sum(t.outcome == 1.0 for t in trajs)
    print(f"demos: wrote {len(trajs)} episodes to {c.out} ({correct} correct); flaws: "
          + ", ".join(f"{k} {v}" for k, v in sorted(flaws.items())), file=sys.stderr)
    return 0
