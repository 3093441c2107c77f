"""``reagent import``: convert other tools' traces to the project's trajectory JSONL.

    reagent import --format openai runs.jsonl --out traces.jsonl
    reagent import --format sharegpt data.json --out traces.jsonl

Records that cannot be mapped are printed as ``FILE:LINE: reason`` and skipped; the
field mapping (where outcome, reference answer, ids came from) is printed with counts.
See :mod:`data_gen.importers` for the formats and rules.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from data_gen.importers import FORMATS, ImportReport, load_traces
from reagent.config import add_config_args, cfg, config_hash, load_config
from reagent.jsonl import write_records


@dataclass
class ImportConfig:
    file: str = cfg("", help="source traces file (JSONL, or JSON holding a list or an object "
                    "of records)")
    format: str = cfg("openai", help="openai ({'messages': [...]}) | sharegpt "
                      "({'conversations': [...]}) | trajectory (the project's, to re-check)")
    out: str = cfg("traces.jsonl", help="output trajectory JSONL (overwritten)")
    outcome_field: str | None = cfg(None, help="source field holding the outcome (default: "
                                    "first of outcome, reward, success, is_correct, correct)")

    def __post_init__(self):
        if not self.file:
            raise ValueError("a source FILE is required")
        if self.format not in FORMATS:
            raise ValueError(f"format='{self.format}' is not one of: {', '.join(FORMATS)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, ImportConfig, positional=("file",))


def main(args: argparse.Namespace) -> int:
    c = load_config(ImportConfig, args)
    report = ImportReport()
    trajectories = load_traces(c.file, c.format, c.outcome_field, report)
    made_by = {"command": "import", "format": c.format, "source": c.file,
               "config_hash": config_hash(c)}
    for t in trajectories:
        t.extra["made_by"] = made_by
    write_records(c.out, trajectories)
    print(f"import: {c.file} ({c.format}): {report.summary()}", file=sys.stderr)
    print(f"import: wrote {len(trajectories)} trajectories to {c.out}", file=sys.stderr)
    return 0 if trajectories or not report.read else 1
