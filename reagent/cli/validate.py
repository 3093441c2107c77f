"""``reagent validate FILE...``: report every bad record as ``FILE:LINE: reason``.

Stricter than the readers: besides each record type's schema, a NaN or Infinity
anywhere in a record is an error, since other tools cannot read it as JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reagent.jsonl import BadJSON, RecordError, iter_json_lines, non_finite_path, parse_json_line
from reagent.records import RECORD_TYPES, FieldError, guess_record_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="JSONL files to check")
    parser.add_argument("--type", choices=sorted(RECORD_TYPES), default=None,
                        help="record type of every line (default: guessed per line)")


def check_file(path: str, record_type: str | None = None) -> tuple[int, list[RecordError]]:
    """Return (number of good records, errors) for one file."""
    good, errors = 0, []
    if not Path(path).is_file():
        raise FileNotFoundError(f"no such file: {path}")
    for lineno, text in iter_json_lines(path):
        try:
            obj = parse_json_line(text)
        except BadJSON as e:
            errors.append(RecordError(path, lineno, str(e)))
            continue
        cls = RECORD_TYPES[record_type] if record_type else guess_record_type(obj)
        try:
            cls.from_dict(obj)
            where = non_finite_path(obj)  # in a field the schema does not type
            if where is not None:
                raise FieldError(where, "NaN/Infinity is not a JSON number")
            good += 1
        except FieldError as e:
            errors.append(RecordError(path, lineno, f"{cls.__name__.lower()}: {e}", field=e.field))
    return good, errors


def main(args: argparse.Namespace) -> int:
    total_good = total_bad = 0
    for path in args.files:
        good, errors = check_file(path, args.type)
        for err in errors:
            print(err)
        print(f"{path}: {good} valid, {len(errors)} invalid")
        total_good += good
        total_bad += len(errors)
    if len(args.files) > 1:
        print(f"total: {total_good} valid, {total_bad} invalid in {len(args.files)} files")
    return 1 if total_bad else 0
