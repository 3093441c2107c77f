"""Streaming JSONL reading and writing of records, and conversion to ``datasets``.

Long runs must never die on one bad line, and a user must be able to find it: a bad
line raises :class:`RecordError` naming file, line and field, or, with
``skip_bad=True``, is counted in a :class:`SkipReport` that the caller prints at the
end. Writers append and flush per record so a killed run loses at most one line,
and readers tolerate a torn last line left by such a kill.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import jsonlines

from reagent.records import FieldError, Record

R = TypeVar("R", bound=Record)
MAX_REASON = 300  # characters of an error reason kept in a message


class RecordError(ValueError):
    """A record in a file is invalid. The message reads ``FILE:LINE: field 'x': reason``."""

    def __init__(self, path: str | os.PathLike, line: int, reason: str, field: str | None = None):
        if len(reason) > MAX_REASON:  # a reason may quote a value; a bad value may be huge
            reason = reason[:MAX_REASON] + f"... ({len(reason) - MAX_REASON} more characters)"
        super().__init__(f"{path}:{line}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason
        self.field = field


@dataclass
class SkipReport:
    """Counts the records a reader skipped, with where and why, for the end-of-run summary."""

    read: int = 0
    errors: list[RecordError] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def summary(self, limit: int = 10) -> str:
        lines = [f"read {self.read} records, skipped {self.skipped} bad lines"]
        lines += [f"  {e}" for e in self.errors[:limit]]
        if self.skipped > limit:
            lines.append(f"  ... and {self.skipped - limit} more")
        return "\n".join(lines)


# Deeper than this is no record of ours and would overflow the recursion of later code.
MAX_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class BadJSON(ValueError):
    """One line of untrusted text is not a usable JSON value; the message is the reason."""


def iter_json_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for every non-blank line, streaming.

    Lines are decoded one at a time, so an invalid UTF-8 byte costs only its own line:
    its bytes come through as lone surrogates, which :func:`parse_json_line` reports
    with the column. Only ``\\n`` ends a line.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            text = raw.decode("utf-8", errors="surrogateescape")
            if text.strip():
                yield lineno, text


def parse_json_line(text: str) -> object:
    """``json.loads`` for untrusted text: every way it can fail is a :class:`BadJSON`.

    Covers what ``json.loads`` lets through or raises as something else: undecodable
    bytes (read with ``surrogateescape``), lone ``\\ud800`` escapes (they cannot be
    written back as UTF-8), nesting deeper than :data:`MAX_DEPTH` (``'[' * 100000`` is a
    RecursionError), and integers longer than Python's 4,300-digit conversion limit.
    """
    m = _SURROGATE.search(text)
    if m:
        raise BadJSON(f"invalid UTF-8 byte at column {m.start() + 1}")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadJSON(f"malformed JSON: {e.msg} at column {e.colno}") from None
    except RecursionError:
        raise BadJSON(f"malformed JSON: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # the int-digits limit, raised from inside the scanner
        raise BadJSON(f"malformed JSON: {str(e).split(':')[0]}") from None
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(obj)
    if _ESCAPED_SURROGATE.search(text):
        _check_strings(obj)
    return obj


def _walk(obj: object) -> Iterator[tuple[object, int]]:
    """Every value inside ``obj`` (dict keys included) with its depth, iteratively."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        yield value, depth
        if isinstance(value, dict):
            stack += [(k, depth + 1) for k in value]
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]


def non_finite_path(obj: object) -> str | None:
    """Dotted path of the first NaN or Infinity anywhere in ``obj`` (not JSON), else None.

    Python's reader accepts them, so a strict checker or converter looks for them here;
    the project's own readers keep them in fields they do not type (see ``records``).
    """
    stack: list[tuple[object, str]] = [(obj, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path or "<record>"
        if isinstance(value, dict):
            stack += [(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return None


def _check_depth(obj: object) -> None:
    for _, depth in _walk(obj):
        if depth > MAX_DEPTH:
            raise BadJSON(f"malformed JSON: nested deeper than {MAX_DEPTH} levels")


def _check_strings(obj: object) -> None:
    for value, _ in _walk(obj):
        if isinstance(value, str) and _SURROGATE.search(value):
            raise BadJSON("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), "
                          "which is not text")


def read_records(
    path: str | os.PathLike,
    cls: type[R],
    skip_bad: bool = False,
    report: SkipReport | None = None,
) -> Iterator[R]:
    """Stream records of type ``cls`` from a JSONL file.

    With ``skip_bad`` a bad line is recorded in ``report`` and skipped; otherwise the
    first bad line raises :class:`RecordError`.
    """
    report = report if report is not None else SkipReport()
    for lineno, text in iter_json_lines(path):
        try:
            try:
                obj = parse_json_line(text)
            except BadJSON as e:
                raise RecordError(path, lineno, str(e)) from None
            try:
                record = cls.from_dict(obj)
            except FieldError as e:
                raise RecordError(path, lineno, str(e), field=e.field) from None
        except RecordError as err:
            if not skip_bad:
                raise
            report.errors.append(err)
            continue
        report.read += 1
        yield record


def load_records(path: str | os.PathLike, cls: type[R], skip_bad: bool = False) -> list[R]:
    """Read a whole file; with ``skip_bad`` a summary of skipped lines goes to stderr."""
    report = SkipReport()
    records = list(read_records(path, cls, skip_bad=skip_bad, report=report))
    if report.skipped:
        print(f"{path}: {report.summary()}", file=sys.stderr)
    return records


class RecordWriter:
    """Append-only JSONL writer that flushes each record (safe against kills)."""

    def __init__(self, path: str | os.PathLike, mode: str = "a"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        if mode == "a":
            repair_torn_tail(self.path)
        self._fh: IO[str] = open(path, mode, encoding="utf-8")
        self._writer = jsonlines.Writer(self._fh, compact=True, flush=True, dumps=_dumps)

    def write(self, record: Record | dict) -> None:
        self._writer.write(record.to_dict() if isinstance(record, Record) else record)

    def write_all(self, records: Iterable[Record | dict]) -> None:
        for r in records:
            self.write(r)

    def close(self) -> None:
        self._writer.close()
        self._fh.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def write_records(path: str | os.PathLike, records: Iterable[Record | dict], append: bool = False) -> int:
    n = 0
    with RecordWriter(path, "a" if append else "w") as w:
        for r in records:
            w.write(r)
            n += 1
    return n


def repair_torn_tail(path: Path) -> bool:
    """Drop a last line that a kill left half-written; return True if one was dropped."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return False
        # Find the start of the last line and cut it if it does not parse.
        block = min(size, 1 << 20)
        f.seek(size - block)
        data = f.read(block)
        start = data.rfind(b"\n") + 1
        tail = data[start:]
        try:
            json.loads(tail)
            f.write(b"\n")
            return False
        except ValueError:
            f.truncate(size - block + start)
            return True


def done_ids(path: str | os.PathLike, key: str = "id") -> set[str]:
    """The ``key`` values already in an output file: what a resumed run skips."""
    path = Path(path)
    if not path.exists():
        return set()
    repair_torn_tail(path)
    ids = set()
    for _, text in iter_json_lines(path):
        try:
            obj = parse_json_line(text)
        except BadJSON:
            continue
        if isinstance(obj, dict) and key in obj:
            ids.add(str(obj[key]))
    return ids


def to_dataset(records: Iterable[Record]):
    """Records as a ``datasets.Dataset``. Nested fields are kept as JSON-compatible columns.

    Messages differ in which optional keys they carry, which Arrow cannot type
    consistently, so list-of-object columns are stored as JSON strings and decoded
    again by :func:`from_dataset`.
    """
    from datasets import Dataset

    rows = [_arrow_safe(r.to_dict()) for r in records]
    return Dataset.from_list(rows)


_JSON_COLUMNS_KEY = "__json__"


def _arrow_safe(d: dict) -> dict:
    out = {}
    json_cols = []
    for k, v in d.items():
        if isinstance(v, (dict, list)) or v is None:
            out[k] = json.dumps(v, ensure_ascii=False)
            json_cols.append(k)
        else:
            out[k] = v
    out[_JSON_COLUMNS_KEY] = ",".join(json_cols)
    return out


def from_dataset(ds, cls: type[R]) -> list[R]:
    """Inverse of :func:`to_dataset`."""
    records = []
    for row in ds:
        row = dict(row)
        json_cols = [c for c in (row.pop(_JSON_COLUMNS_KEY, "") or "").split(",") if c]
        # Columns absent from this record but present in others come back as None: drop them.
        d = {k: json.loads(v) if k in json_cols else v for k, v in row.items()
             if k in json_cols or v is not None}
        records.append(cls.from_dict(d))
    return records
