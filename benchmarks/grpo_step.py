"""Time split of a GRPO step (rollout / judge / update) for a toy config (run by hand).

    python benchmarks/grpo_step.py [--config configs/toy_reagent_r.yaml] [--steps 5] [key=value ...]
    python benchmarks/grpo_step.py --config configs/toy_reagent_r.yaml --against grpo --steps 8 [key=value ...]

Runs a few training steps (no checkpoints) and prints, over the steps after the first,
the median wall seconds per phase from the step's metrics, the median CPU seconds of this
process per step (steadier than wall time on a shared machine), and the update's peak
memory. Untrained tiny models are created when the config's model paths do not exist
(generation then runs to the token limits, and an untrained judge writes runaway
verdicts to its limit: an upper bound).

``--against VARIANT`` builds a second trainer from the same config and overrides with
only ``variant`` changed, and alternates the two step by step in this process (so load
drifts hit both alike), then prints both sides and the ratio. Reagent-R against GRPO at
equal trajectories (issue 20: at most 1.5x), every group kept in the update on both
sides, with the quickstart's trained SFT policy and judge (``reagent quickstart`` or
``benchmarks/efficacy.py`` seed 0; settings as the quickstart's RL stage)::

    python benchmarks/grpo_step.py --config configs/toy_reagent_r.yaml --against grpo --steps 13 \\
        keep_degenerate_groups=true model=RUN/sft/final judge_model=RUN/judge/final \\
        create_missing_model=false max_turns=5 max_tokens=160 judge_max_new_tokens=192 \\
        judge_batch_size=64 lr=0

Both trainers start from the same weights and seed, so their first rollouts are the same;
with learning on, each then follows its own updates and their rollouts drift apart.
``lr=0`` keeps both policies at the start, so every step's trajectories are the same on
both sides and the difference is the judge alone (the update still runs in full).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from reagent.config import load_config
from reagent.train.config import TrainConfig
from reagent.train.trainer import GRPOTrainer

PHASES = ("rollout", "judge", "update", "step")


def run_steps(trainers: list[GRPOTrainer], steps: int) -> list[tuple[list[dict], list[float]]]:
    """``steps`` steps of each trainer, alternating; (metrics rows, CPU seconds) per trainer."""
    out: list[tuple[list[dict], list[float]]] = [([], []) for _ in trainers]
    for _ in range(steps):
        for trainer, (rows, cpu) in zip(trainers, out):
            start = time.process_time()
            rows.append(trainer.train_step())
            cpu.append(time.process_time() - start)
            trainer.step += 1
    return [(rows[1:], cpu[1:]) for rows, cpu in out]  # the first step is warm-up


def summary(rows: list[dict], cpu: list[float]) -> dict[str, float]:
    """Medians per phase (wall), CPU per step, trajectories trained per step."""
    out = {ph: statistics.median(r.get(f"timing_s/{ph}", 0.0) for r in rows) for ph in PHASES}
    out["CPU"] = statistics.median(cpu)
    out["trained"] = statistics.mean(r.get("actor/trajectories", 0.0) for r in rows)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/toy_grpo.yaml")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--against", default=None, help="a second variant to alternate with (e.g. grpo)")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    configs = []
    for extra in ([], [f"variant={args.against}"]) if args.against else ([],):
        out = Path(tempfile.mkdtemp())
        overrides = [f"output_dir={out}", f"max_steps={args.steps}", f"save_every={args.steps}",
                     *args.overrides, *extra]
        configs.append(load_config(TrainConfig, yaml_path=args.config, overrides=overrides))
    load_before = os.getloadavg()[0]
    results = run_steps([GRPOTrainer(c) for c in configs], args.steps)
    sums = [summary(rows, cpu) for rows, cpu in results]
    c = configs[0]
    print(f"{args.config}: medians of {args.steps - 1} steps after the first, {c.prompts_per_step} prompts x "
          f"{c.group_size} rollouts; load {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    names = [cfg.variant for cfg in configs]
    print("  " + " " * 8 + "".join(f"{n:>12}" for n in names) + ("       ratio" if len(sums) == 2 else ""))
    for key in (*PHASES, "CPU", "trained"):
        vals = [s[key] for s in sums]
        ratio = f"{vals[0] / vals[1]:12.2f}" if len(vals) == 2 and vals[1] > 0 and key != "trained" else ""
        unit = "" if key == "trained" else " s"
        print(f"  {key:<8}" + "".join(f"{v:10.2f}{unit}" for v in vals) + ratio)
    for key in ("memory/peak_allocated_gb", "memory/peak_rss_gb"):
        for name, (rows, _) in zip(names, results):
            if rows and key in rows[-1]:
                print(f"  {key} ({name}): {max(r[key] for r in rows):.2f}")


if __name__ == "__main__":
    main()
