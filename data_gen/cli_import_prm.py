"""``reagent import-prm``: Math-Shepherd or PRM800K JSONL to step-label JSONL for ``train-prm``.

    reagent import-prm --format math-shepherd --input math-shepherd.jsonl --out labels.jsonl

See :mod:`data_gen.prm_import` for how each format maps to steps and Q targets. Bad
records are skipped and listed as ``FILE:LINE: reason`` (``--strict`` stops at the first).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from reagent.config import add_config_args, cfg, load_config
from reagent.jsonl import RecordWriter, SkipReport
from data_gen.prm_import import FORMATS, import_prm_file


@dataclass
class ImportPRMConfig:
    input: str = cfg(None, help="Math-Shepherd or PRM800K JSONL file")
    format: str = cfg(None, help="math-shepherd | prm800k")
    out: str = cfg(None, help="output step-label JSONL (overwritten)")
    neutral_q: float = cfg(1.0, help="prm800k: Q target of a step rated 0 (neutral)")
    strict: bool = cfg(False, help="stop at the first bad record instead of skipping it")
    limit: int | None = cfg(None, help="import only the first N good records")

    def __post_init__(self):
        if not self.input or not self.out:
            raise ValueError("import-prm needs --input FILE and --out FILE")
        if self.format not in FORMATS:
            raise ValueError(f"format={self.format!r}: use one of {', '.join(FORMATS)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, ImportPRMConfig)


def main(args: argparse.Namespace) -> int:
    c = load_config(ImportPRMConfig, args)
    report = SkipReport()
    n = 0
    with RecordWriter(c.out, "w") as writer:
        for label in import_prm_file(c.input, c.format, c.neutral_q, skip_bad=not c.strict, report=report):
            writer.write(label)
            n += 1
            if c.limit is not None and n >= c.limit:
                break
    print(f"import-prm: wrote {n} step-label records to {c.out}; {c.input}: {report.summary()}", file=sys.stderr)
    return 0
