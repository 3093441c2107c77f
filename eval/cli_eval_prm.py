"""``reagent eval-prm``: a PRM on ProcessBench or PRMBench, metrics per split.

    reagent eval-prm --benchmark processbench --data gsm8k.json math.json --model runs/prm/final
    reagent eval-prm --benchmark prmbench --data prmbench_preview.jsonl --model runs/prm/final

Each solution is shown to the PRM as ``[user: problem, assistant: steps joined by a
blank line]`` and valued at the end of every step (:mod:`reagent.steps`); the
metrics are defined in :mod:`eval.prm_bench`. ``--out`` writes the report as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from reagent.config import add_config_args, cfg, config_hash, load_config
from reagent.records import Message, Trajectory
from reagent.steps import join_steps
from eval.prm_bench import (
    BENCHMARKS,
    load_prmbench,
    load_processbench,
    prmbench_metrics,
    processbench_metrics,
)


@dataclass
class EvalPRMConfig:
    benchmark: str = cfg(None, help="processbench | prmbench")
    data: list = cfg([], help="benchmark file(s); processbench: one per split (the file stem names it)")
    model: str = cfg(None, help="trained PRM directory")
    threshold: float = cfg(0.5, help="a step valued below this is called an error")
    batch_size: int = cfg(16, help="solutions per forward pass")
    max_seq_len: int = cfg(4096, help="longer solutions are not scored (count as wrong)")
    device: str = cfg("auto", help="auto | cpu | cuda")
    limit: int | None = cfg(None, help="first N items of each file")
    out: str | None = cfg(None, help="write the report as JSON here")

    def __post_init__(self):
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark={self.benchmark!r}: use one of {', '.join(BENCHMARKS)}")
        if not self.data or not self.model:
            raise ValueError("eval-prm needs --data FILE [FILE ...] and --model DIR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, EvalPRMConfig)


def _format(report: dict) -> str:
    lines = []
    for split, m in report.items():
        cells = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items())
        lines.append(f"  {split}: {cells}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from rrm.prm import PRMScorer

    c = load_config(EvalPRMConfig, args)
    items = []
    for path in c.data:
        loaded = load_processbench(path) if c.benchmark == "processbench" else load_prmbench(path)
        items += loaded[: c.limit] if c.limit is not None else loaded
    trajs = [Trajectory(id=it.id, task_id=it.id, messages=[Message(role="user", content=it.problem),
                                                           Message(role="assistant", content=join_steps(it.steps))])
             for it in items]
    scorer = PRMScorer(c.model, batch_size=c.batch_size, device=c.device, max_seq_len=c.max_seq_len)
    values = scorer.score_steps(trajs, [it.steps for it in items])
    metrics = processbench_metrics if c.benchmark == "processbench" else prmbench_metrics
    report = metrics(items, values, c.threshold)
    print(f"eval-prm {c.benchmark}: {len(items)} solutions, model {c.model}, threshold {c.threshold}\n"
          + _format(report))
    if scorer.skipped:
        print(f"eval-prm: not scored: {scorer.skipped}", file=sys.stderr)
    if c.out:
        Path(c.out).parent.mkdir(parents=True, exist_ok=True)
        Path(c.out).write_text(json.dumps({"benchmark": c.benchmark, "model": c.model, "data": c.data,
                                           "config_hash": config_hash(c), "metrics": report}, indent=2))
    return 0
