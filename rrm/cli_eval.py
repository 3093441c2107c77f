"""``reagent eval-rrm``: the judge-quality report for any judge on any labelled file.

    reagent eval-rrm --model DIR --data heldout_judge.jsonl --out report.json
    reagent eval-rrm --base-url http://127.0.0.1:8000/v1 --data judged_or_labelled.jsonl
    reagent eval-rrm --data judged.jsonl          # verdicts already in the file

The file holds judge examples (teacher score and outcome) or trajectories (outcome,
and a ``judge`` field when no judge is given). The report is the one ``train-rrm``
logs after every epoch: format-valid rate, coverage, score MAE and Pearson against the
teacher, AUROC against the outcome and pairwise accuracy within a question.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from reagent.config import add_config_args, cfg, config_hash, load_config
from reagent.jsonl import write_records
from rrm.cli_judge import JudgeOptions


@dataclass
class EvalRRMConfig(JudgeOptions):
    data: str = cfg(None, help="labelled JSONL: judge examples or trajectories with outcomes")
    out: str | None = cfg(None, help="write the report JSON here (it is printed either way)")
    judgments_out: str | None = cfg(None, help="also write one judgment per item as JSONL")
    limit: int | None = cfg(None, help="evaluate the first N items only")
    threshold: float = cfg(0.5, help="an outcome >= threshold counts as a correct trajectory")

    def __post_init__(self):
        self.check(judge_required=False)
        if not self.data:
            raise ValueError("--data is required")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, EvalRRMConfig)


def main(args: argparse.Namespace) -> int:
    return run(load_config(EvalRRMConfig, args))


def run(config: EvalRRMConfig) -> int:
    from rrm.evaluate import evaluate_judge, load_labelled, report

    items = load_labelled(config.data, config.limit)
    if not items:
        raise ValueError(f"{config.data} holds no items")
    if config.model or config.base_url:
        judge = config.make()
        result, judgments = evaluate_judge(judge, items, config.batch_size, config.threshold,
                                           progress=True)
        source = judge.model
    else:
        judgments = [it.judgment for it in items]
        if all(j is None for j in judgments):
            raise ValueError(f"{config.data} has no stored judgments; pass --model or --base-url")
        result, source = report(items, judgments, config.threshold), "stored judgments"
    result = {"judge": source, "data": config.data, "config_hash": config_hash(config), **result}
    text = json.dumps(result, indent=2)
    print(text)
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(text + "\n")
    if config.judgments_out:
        write_records(config.judgments_out, [j if j is not None else {"status": "missing"}
                                             for j in judgments])
        print(f"judgments written to {config.judgments_out}", file=sys.stderr)
    return 0
