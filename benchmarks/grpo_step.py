"""Time split of a GRPO step (rollout / judge / update) for a toy config (run by hand).

    python benchmarks/grpo_step.py [--config configs/toy_reagent_r.yaml] [--steps 5] [key=value ...]

Runs a few training steps (no checkpoints) and prints, over the steps after the first,
the mean wall seconds per phase from the step's metrics, the mean CPU seconds of this
process per step (steadier than wall time on a shared machine), and the update's peak
memory. Untrained tiny models are created when the config's model paths do not exist
(generation then runs to the token limits, and an untrained judge writes runaway
verdicts to its limit: an upper bound). Reagent-R against GRPO at equal trajectories
(issue 20: at most 1.5x), every group kept in the update on both sides:

    python benchmarks/grpo_step.py --config configs/toy_grpo.yaml keep_degenerate_groups=true
    python benchmarks/grpo_step.py --config configs/toy_reagent_r.yaml keep_degenerate_groups=true
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
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
    trainer = GRPOTrainer(config)
    rows, cpu = [], []
    for _ in range(args.steps):
        start = time.process_time()
        rows.append(trainer.train_step())
        cpu.append(time.process_time() - start)
        trainer.step += 1
    rows, cpu = rows[1:], cpu[1:]  # skip the warm-up step
    print(f"{args.config}: {len(rows)} steps after the first, {config.prompts_per_step} prompts x "
          f"{config.group_size} rollouts ({config.variant}); load {os.getloadavg()[0]:.1f}")
    for ph in ("rollout", "judge", "update", "step"):
        vals = [r.get(f"timing_s/{ph}", 0.0) for r in rows]
        print(f"  {ph:<8} {sum(vals) / max(len(vals), 1):7.2f} s/step")
    print(f"  CPU      {sum(cpu) / max(len(cpu), 1):7.2f} s/step (this process)")
    print(f"  trained  {sum(r.get('actor/trajectories', 0.0) for r in rows) / max(len(rows), 1):7.1f} "
          "trajectories/step")
    for key in ("memory/peak_allocated_gb", "memory/peak_rss_gb"):
        if rows and key in rows[-1]:
            print(f"  {key}: {max(r[key] for r in rows):.2f}")


if __name__ == "__main__":
    main()
