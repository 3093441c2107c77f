"""The ``file_reader`` tool: read text files under one root directory, and nothing else.

A task's attached files live under ``root``; the model names them by relative path.
Refused, each with error text: absolute paths, any ``..`` component, paths (symlinks
included) that resolve outside the root, extensions not in :data:`TEXT_EXTENSIONS`,
files that look binary (a NUL byte or invalid UTF-8 in the first 8 KiB), files over
``max_file_bytes``, and files with more than one hard link (the other name may be outside
the root, where a link check cannot see it). A symlink loop is a refused entry, not a
failed listing. Paths echoed in error text are cut to :data:`MAX_SHOWN` characters. A directory is listed instead of read, so the model can find its
files. Text is returned ``max_chars`` at a time; the marker at the cut says which
``offset`` reads on.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

# fmt: off
TEXT_EXTENSIONS = frozenset({
    ".txt", ".text", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".ndjson",
    ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".xml", ".html", ".htm", ".log", ".py",
    ".ipynb", ".js", ".ts", ".java", ".c", ".h", ".cpp", ".hpp", ".go", ".rs", ".rb", ".sh",
    ".sql", ".tex", ".bib", ".css", ".srt", ".vtt", ".r", ".m", ".jl", ".php",
})
# fmt: on
MAX_SHOWN = 200  # characters of a path quoted back in error text
MAX_PATH = 4096  # characters of a path at most (Linux PATH_MAX)


def _shown(path: Any) -> str:
    text = str(path)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text):,} characters)"


class FileReaderError(ValueError):
    """A path was refused or a file could not be read; the message is shown to the agent."""


class FileReaderTool:
    """Reads text files confined to ``root`` (see module docstring for what is refused)."""

    name = "file_reader"
    description = (
        "Read a text file attached to the task (txt, csv, tsv, json, jsonl, md, py, yaml, xml, "
        "html, log and similar), given its path relative to the task's file folder. Give a folder "
        "path (or '.') to list the files in it. Long files come back in pieces: the note at the "
        "end of a piece tells you the offset to read the next one."
    )
    parameters: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "description": "File or folder path relative to the task's file folder.",
            },
            "offset": {
                "type": "integer",
                "description": "Character offset to start reading at (default 0).",
                "minimum": 0,
            },
        },
        "required": ["path"],
    }

    def __init__(
        self,
        root: str | Path,
        max_chars: int = 20_000,
        max_file_bytes: int = 20_000_000,
        extensions: frozenset[str] = TEXT_EXTENSIONS,
        max_listing: int = 200,
    ):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"file_reader root is not a directory: {self.root}")
        self.max_chars = max_chars
        self.max_file_bytes = max_file_bytes
        self.extensions = frozenset(e.lower() for e in extensions)
        self.max_listing = max_listing

    def __call__(self, path: Any = "", offset: Any = 0, **_: Any) -> str:
        try:
            start = int(offset or 0)
            if start < 0:
                raise ValueError
        except (TypeError, ValueError):
            return f"Error: offset must be a non-negative integer, got {_shown(repr(offset))}"
        try:
            target = self.resolve(path)
            return self._list(target) if target.is_dir() else self._read(target, path, start)
        except FileReaderError as e:
            return f"Error: {e}"
        except Exception as e:  # noqa: BLE001 - the agent gets text, never an exception
            return f"Error: could not read '{_shown(path)}': {type(e).__name__}: {_shown(e)}"

    def resolve(self, path: Any) -> Path:
        """The real path of ``path`` under the root; raises :class:`FileReaderError` otherwise."""
        if not isinstance(path, str) or not path.strip():
            raise FileReaderError("file_reader needs a non-empty 'path' string")
        if len(path) > MAX_PATH:
            raise FileReaderError(f"the path is {len(path):,} characters long; the limit is "
                                  f"{MAX_PATH:,}")
        if "\x00" in path:
            raise FileReaderError("the path contains a NUL character")
        pure = PurePosixPath(path.strip())
        shown = _shown(path)
        if pure.is_absolute() or path.strip().startswith("~"):
            raise FileReaderError(
                f"'{shown}' is an absolute path; give a path relative to the task's file folder"
            )
        if ".." in pure.parts:
            raise FileReaderError(
                f"'{shown}' contains '..'; only files inside the task's file folder can be read"
            )
        try:
            target = (self.root / pure).resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
            raise FileReaderError(f"'{shown}' is a symlink loop") from None
        if target != self.root and self.root not in target.parents:
            raise FileReaderError(f"'{shown}' leads outside the task's file folder (through a link)")
        if not target.exists():
            raise FileReaderError(f"no such file or folder: '{shown}'")
        return target

    def _list(self, folder: Path) -> str:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
        rel = folder.relative_to(self.root).as_posix()
        lines = [f"Folder '{rel}': {len(entries)} entries"]
        for entry in entries[: self.max_listing]:
            try:
                inside = self.root in entry.resolve().parents
                kind = "folder" if entry.is_dir() else f"{entry.stat().st_size:,} bytes"
            except (OSError, RuntimeError):  # broken link, symlink loop: not listed
                continue
            if inside:
                name = entry.relative_to(self.root).as_posix() + ("/" if entry.is_dir() else "")
                lines.append(f"  {name}  ({kind})")
        if len(entries) > self.max_listing:
            lines.append(f"  ... and {len(entries) - self.max_listing} more")
        return "\n".join(lines)

    def _read(self, target: Path, asked: str, start: int) -> str:
        asked = _shown(asked)
        if not target.is_file():
            raise FileReaderError(f"'{asked}' is not a regular file")
        if target.suffix.lower() not in self.extensions:
            known = " ".join(sorted(self.extensions))
            raise FileReaderError(
                f"'{asked}' has type '{target.suffix or '(none)'}', which is not a known text "
                f"format; readable types: {known}"
            )
        # Checked on the open descriptor, so a swap after resolve() cannot slip past.
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise FileReaderError(f"'{asked}' is not a regular file")
            if info.st_nlink > 1:
                raise FileReaderError(
                    f"'{asked}' has {info.st_nlink} hard links; file_reader reads only files with "
                    "one (another link may be a file outside the task's file folder)"
                )
            size = info.st_size
            if size > self.max_file_bytes:
                raise FileReaderError(
                    f"'{asked}' is {size:,} bytes, more than the {self.max_file_bytes:,} bytes "
                    "file_reader reads"
                )
            data = f.read(self.max_file_bytes + 1)
        head = data[:8192]
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(head) - 3:  # not merely a character cut at the 8 KiB boundary
                raise FileReaderError(f"'{asked}' is not UTF-8 text (binary content?)") from None
        if b"\x00" in head:
            raise FileReaderError(f"'{asked}' looks like a binary file (it contains NUL bytes)")
        text = data.decode("utf-8", errors="replace")
        if not text:
            return f"['{asked}' is empty]"
        if start >= len(text):
            return f"[offset {start:,} is past the end: '{asked}' has {len(text):,} characters]"
        piece = text[start : start + self.max_chars]
        end = start + len(piece)
        if start == 0 and end == len(text):
            return text
        note = f"[characters {start:,}-{end:,} of {len(text):,} shown"
        note += (
            f"; call again with offset={end} to read on]" if end < len(text) else "; end of file]"
        )
        return f"{piece}\n{note}"
