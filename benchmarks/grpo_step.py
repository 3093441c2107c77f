"""Time split of a GRPO step (rollout / judge / update) for a toy config (run by hand).

    python benchmarks/grpo_step.py [--config configs/toy_reagent_r.yaml] [--steps 5] [key=value ...]

Trains a few steps into a temporary directory and prints the mean seconds per phase
from the run's metrics.jsonl, and the update's peak memory. Untrained tiny models are created when the config's model
paths do not exist (generation then runs to the token limits: an upper bound).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from reagent.config import load_config
from reagent.train.config import TrainConfig
from reagent.train.trainer import GRPOTrainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/toy_grpo.yaml")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    out = Path(tempfile.mkdtemp())
    overrides = [f"output_dir={out}", f"max_steps={args.steps}", f"save_every={args.steps}", *args.overrides]
    config = load_config(TrainConfig, yaml_path=args.config, overrides=overrides)
    GRPOTrainer(config).train()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1:]  # skip warm-up step
    phases = ("rollout", "judge", "update", "step")
    print(f"{args.config}: {len(rows)} steps after the first, {config.prompts_per_step} prompts x "
          f"{config.group_size} rollouts ({config.variant})")
    for ph in phases:
        vals = [r.get(f"timing_s/{ph}", 0.0) for r in rows]
        print(f"  {ph:<8} {sum(vals) / max(len(vals), 1):7.2f} s/step")
    for key in ("memory/peak_allocated_gb", "memory/peak_rss_gb"):
        if rows and key in rows[-1]:
            print(f"  {key}: {max(r[key] for r in rows):.2f}")


if __name__ == "__main__":
    main()
