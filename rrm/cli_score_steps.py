"""``reagent score-steps``: batched step values of trajectories from a trained PRM.

    reagent score-steps --model runs/prm/final --data traces.jsonl --out scored.jsonl

Each output line is the input trajectory with ``rewards.prm_steps`` (one value per
agent step, :mod:`reagent.steps`) and ``rewards.prm`` (the last step's value, the
trajectory-level score Best-of-N ranks by). A trajectory that cannot be encoded
(too long, no assistant turn) gets ``null`` for both, counted in the summary.
Step-label files (``reagent label-steps`` output, Math-Shepherd imports) are read
too: their embedded trajectories are scored, with the per-step texts of
single-response solutions.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from reagent.config import add_config_args, cfg, config_hash, load_config
from reagent.jsonl import load_records, write_records
from reagent.records import StepLabel, Trajectory
from rrm.prm_data import step_texts_of


@dataclass
class ScoreStepsConfig:
    model: str = cfg(None, help="trained PRM directory (reagent train-prm's out/final)")
    data: str = cfg(None, help="trajectory JSONL, or step-label JSONL (its trajectories are scored)")
    out: str = cfg(None, help="output JSONL: the trajectories with rewards.prm_steps and rewards.prm")
    batch_size: int = cfg(16, help="trajectories per forward pass")
    max_seq_len: int = cfg(4096, help="longer trajectories are not scored (null, counted)")
    device: str = cfg("auto", help="auto | cpu | cuda")

    def __post_init__(self):
        missing = [k for k in ("model", "data", "out") if not getattr(self, k)]
        if missing:
            raise ValueError(f"score-steps needs {', '.join('--' + k for k in missing)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, ScoreStepsConfig)


def _read(path: str) -> tuple[list[Trajectory], list[list[str] | None]]:
    with open(path, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "{}")
    head = json.loads(first) if first.strip() else {}
    if isinstance(head, dict) and "steps" in head and "method" in head:
        labels = load_records(path, StepLabel, skip_bad=True)
        labels = [x for x in labels if x.trajectory is not None]
        return ([Trajectory.from_dict(x.trajectory, "trajectory.") for x in labels],
                [step_texts_of(x.steps) for x in labels])
    trajs = load_records(path, Trajectory, skip_bad=True)
    return trajs, [None] * len(trajs)


def main(args: argparse.Namespace) -> int:
    from rrm.prm import PRMScorer

    c = load_config(ScoreStepsConfig, args)
    trajs, texts = _read(c.data)
    scorer = PRMScorer(c.model, batch_size=c.batch_size, device=c.device, max_seq_len=c.max_seq_len)
    values = scorer.score_steps(trajs, texts)
    made_by = {"command": "score-steps", "model": c.model, "config_hash": config_hash(c)}
    for traj, v in zip(trajs, values):
        traj.rewards = {**traj.rewards, "prm_steps": v, "prm": v[-1] if v else None}
        traj.extra["prm_scored_by"] = made_by
    write_records(c.out, trajs)
    failed = sum(v is None for v in values)
    print(f"score-steps: scored {len(trajs) - failed} of {len(trajs)} trajectories into {c.out}"
          + (f"; not scored: {scorer.skipped}" if failed else ""), file=sys.stderr)
    return 0
