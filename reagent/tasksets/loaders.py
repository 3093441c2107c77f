"""Benchmark loaders: each source file's fields mapped onto :class:`reagent.records.Task`.

Every benchmark file spells its fields differently (``Question``/``question``/
``problem``/``question_text``; ``Final answer``/``answer``/``answers_objects``; one
answer or a list of aliases), so each format has one small loader and the rest of
the project sees only Tasks:

* ``id`` is ``"<benchmark>-<source id>"`` (the record index when the file has no
  ids), so tasks from several benchmarks can share a file; ``meta["source_id"]``
  keeps the original.
* ``answer`` is a string, or a list of alias strings when the source gives several.
* ``tools`` are those the benchmark needs; ``meta["checker"]`` names the answer
  checker (a name ``eval.metrics`` knows; this module only records it).
* every source field a loader does not turn into one of the above is kept in
  ``meta`` under its own name; multi-hop QA paragraphs become
  ``meta["contexts"] = [{"title", "text"}]`` (and ``meta["supporting_contexts"]``,
  indices of the gold ones) so an environment can build a local search corpus with
  :func:`build_qa_corpus`.

A record missing a required field raises :class:`reagent.jsonl.RecordError` with
file, line (physical line for JSONL and CSV, record index + 1 for a JSON array) and
field, so a broken file is fixed, not silently shortened.

Where the data comes from: :func:`load_benchmark` looks in ``data_root`` when given;
otherwise in ``reagent/tasksets/data/`` (the copies shipped in the repo: GSM8K, MATH-500, AIME,
whose MIT licences allow it) and then in ``../shared/benchmarks`` beside the repo.
GAIA, HLE and xbench are never copied into the repo (their terms forbid resharing);
xbench is decrypted in memory only and its plaintext is never written anywhere.

This is one module on purpose: each loader is a dozen lines mapping one file format,
and the registry table at the bottom, read as a whole, says which benchmark uses which
loader, tools and checker. Splitting it per benchmark would scatter that table.
"""

from __future__ import annotations

import ast
import base64
import csv
import gzip
import hashlib
import io
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from reagent.jsonl import BadJSON, RecordError, non_finite_path, parse_json_line
from reagent.records import Task
from reagent.rewards.math import gsm8k_reference

logger = logging.getLogger(__name__)

SHIPPED_ROOT = Path(__file__).resolve().parent / "data"
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_ROOT = REPO_ROOT.parent / "shared" / "benchmarks"

MATH_TOOLS = ("python",)
QA_TOOLS = ("search",)
WEB_TOOLS = ("search", "browse", "python", "file_reader")

TWOWIKI_CORPUS = "2wikimultihopqa/2wiki_hipporag_corpus_6119_passages.json"
_SURROGATE = re.compile("[\ud800-\udfff]")


# ---------------------------------------------------------------- reading files


def _open_text(path: Path) -> io.TextIOBase:
    # Undecodable bytes come through as lone surrogates and are reported per record.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape", newline="")
    return open(path, encoding="utf-8", errors="surrogateescape", newline="")


def _format(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[-1].lower()


def iter_raw_records(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, record)`` from a .jsonl, .json (array) or .csv file, each maybe .gz.

    ``line`` is what an error should point at: the physical line for JSONL and CSV,
    the 1-based record index for a JSON array. A ``.json`` file that holds JSONL (as
    some upstream repos name theirs) is read as JSONL.
    """
    path = Path(path)
    fmt = _format(path)
    with _open_text(path) as f:
        if fmt == "csv":
            reader = csv.DictReader(f)
            start = 2
            try:
                for row in reader:
                    bad = next((v for v in row.values() if isinstance(v, str)
                                and _SURROGATE.search(v)), None)
                    if bad is not None:
                        raise RecordError(path, start, "invalid UTF-8 byte in a field")
                    yield start, row
                    start = reader.line_num + 1
            except csv.Error as e:
                raise RecordError(path, reader.line_num, f"malformed CSV: {e}") from None
            return
        if fmt == "json":
            text = f.read()
            if text.lstrip().startswith("["):
                try:
                    data = parse_json_line(text)
                except BadJSON as e:
                    line = _line_of(text, e)
                    raise RecordError(path, line, str(e)) from None
                for i, rec in enumerate(data):
                    yield i + 1, _object(path, i + 1, rec)
                return
            lines: Iterable[str] = io.StringIO(text)
        else:
            lines = f
        for lineno, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                rec = parse_json_line(text)
            except BadJSON as e:
                raise RecordError(path, lineno, str(e)) from None
            yield lineno, _object(path, lineno, rec)


def _line_of(text: str, error: BadJSON) -> int:
    """The line of a whole-file JSON error: where the parser stopped, else line 1."""
    cause = error.__context__
    if isinstance(cause, json.JSONDecodeError):
        return cause.lineno
    m = _SURROGATE.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def _object(path: Path, line: int, rec: Any) -> dict:
    if not isinstance(rec, dict):
        raise RecordError(path, line, f"expected a JSON object, got {type(rec).__name__}")
    bad = non_finite_path(rec)
    if bad is not None:
        raise RecordError(path, line, f"field {bad!r}: NaN/Infinity is not a JSON number",
                          field=bad)
    return rec


class _Row:
    """One source record with its location, for field access that reports errors properly."""

    def __init__(self, path: Path, line: int, data: dict, seen: dict | None = None,
                 ids: dict[str, int] | None = None):
        self.path, self.line, self.data = path, line, data
        # Task id -> line of the file's records so far, shared by its rows: a repeated id is
        # an error, since results are keyed by id and one would silently replace the other.
        self.ids = ids if ids is not None else {}
        self.used: set[str] = set()
        # Which of several accepted names this file uses, learnt from earlier records, so a
        # missing field is reported under the name the file's other records use.
        self.seen = seen if seen is not None else {}

    def error(self, name: str, reason: str) -> RecordError:
        return RecordError(self.path, self.line, f"field '{name}': {reason}", field=name)

    def _find(self, names: tuple[str, ...]) -> str:
        for name in names:
            if name in self.data:
                self.used.add(name)
                self.seen[names] = name
                return name
        expected = self.seen.get(names, names[0])
        others = [repr(n) for n in names if n != expected]
        also = f" (also looked for {', '.join(others)})" if others else ""
        raise self.error(expected, "required field is missing" + also)

    def text(self, *names: str) -> str:
        """A required, non-empty string field (numbers are accepted and converted)."""
        name = self._find(names)
        value = self.data[name]
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(name, f"expected a string, got the number {value}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {type(value).__name__}")
        if not value.strip():
            raise self.error(name, "is empty")
        return value

    def answers(self, *names: str) -> str | list[str]:
        """A required answer: a string, or a non-empty list of strings (aliases)."""
        name = self._find(names)
        value = self.data[name]
        if isinstance(value, list):
            if not value or not all(isinstance(v, (str, int, float)) for v in value):
                raise self.error(name, "expected a non-empty list of strings")
            return [str(v) for v in value]
        return self.text(name)

    def raw(self, *names: str) -> Any:
        """A required field of any type."""
        return self.data[self._find(names)]

    def optional(self, name: str, default: Any = None) -> Any:
        if name in self.data:
            self.used.add(name)
            return self.data[name]
        return default

    def rest(self) -> dict:
        """The fields no accessor consumed: they go to ``Task.meta`` unchanged."""
        return {k: v for k, v in self.data.items() if k not in self.used}


def _rows(path: Path) -> Iterator[_Row]:
    seen: dict = {}
    ids: dict[str, int] = {}
    for line, rec in iter_raw_records(path):
        yield _Row(path, line, rec, seen, ids)


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to find and read one benchmark."""

    name: str
    paths: tuple[str, ...]  # default file(s) relative to a data root, read in order
    loader: Callable[..., Iterator[Task]]  # (path, spec, **options) -> Tasks
    tools: tuple[str, ...]
    checker: str  # "math" | "short_answer" | "gaia" | "llm_judge"
    licence: str
    records: int | None = None  # count in the default file(s), from PROVENANCE.md
    shipped: bool = False  # a copy lives in reagent/tasksets/data/
    options: dict = field(default_factory=dict)  # default keyword options for the loader
    note: str = ""


def _task(
    spec: BenchmarkSpec,
    row: _Row,
    source_id: Any,
    question: str,
    answer: Any,
    meta: dict | None = None,
    files: list[str] | None = None,
) -> Task:
    task_id = f"{spec.name}-{source_id}"
    if task_id in row.ids:
        raise RecordError(row.path, row.line, f"duplicate task id {task_id!r} (first at line "
                          f"{row.ids[task_id]})"[:300])
    row.ids[task_id] = row.line
    full_meta = {"source_id": str(source_id), "checker": spec.checker}
    full_meta.update(row.rest())
    full_meta.update(meta or {})
    return Task(
        id=task_id,
        question=question,
        answer=answer,
        source=spec.name,
        tools=list(spec.tools),
        files=list(files or []),
        meta=full_meta,
    )


def _source_id(row: _Row, index: int, *names: str) -> str:
    for name in names:
        value = row.optional(name)
        if value not in (None, ""):
            return str(value)
    return str(index)


# ---------------------------------------------------------------- math


def load_gsm8k(path: Path, spec: BenchmarkSpec) -> Iterator[Task]:
    """GSM8K: ``question``, ``answer`` (rationale ending in ``#### N``) -> answer ``N``."""
    for i, row in enumerate(_rows(path)):
        question = row.text("question")
        solution = row.text("answer")
        try:
            answer = gsm8k_reference(solution)
        except ValueError as e:
            raise row.error("answer", str(e)) from None
        yield _task(spec, row, i, question, answer, {"solution": solution})


def load_math500(path: Path, spec: BenchmarkSpec) -> Iterator[Task]:
    """MATH-500: ``problem``, ``answer``; ``solution``, ``subject``, ``level`` go to meta."""
    for i, row in enumerate(_rows(path)):
        yield _task(
            spec, row, _source_id(row, i, "unique_id"), row.text("problem"), row.text("answer")
        )


def load_aime(path: Path, spec: BenchmarkSpec, year: int | None = None) -> Iterator[Task]:
    """AIME: ``problem`` (or ``question``), ``answer``. With ``year``, rows whose ``year``
    field says otherwise are skipped, so a combined multi-year file serves each year."""
    for i, row in enumerate(_rows(path)):
        row_year = row.data.get("year")
        if year is not None and row_year is not None:
            try:
                if int(row_year) != year:
                    continue
            except (TypeError, ValueError, OverflowError):
                raise row.error("year", f"expected a year, got {row_year!r}"[:200]) from None
        question = row.text("problem", "question")
        row.used.update({"problem", "question"})  # the Qwen copy repeats the problem as question
        yield _task(spec, row, _source_id(row, i, "id"), question, row.text("answer"))


# ---------------------------------------------------------------- agentic / web


def load_gaia(
    path: Path, spec: BenchmarkSpec, files_dir: str | os.PathLike | None = None
) -> Iterator[Task]:
    """GAIA: ``Question``, ``Final answer`` (or ``answer``), ``Level``, ``file_name``.

    An attachment is resolved against ``files_dir`` into ``Task.files`` (absolute
    path); a missing attachment there is an error, because the task cannot be solved
    without it. Without ``files_dir`` such tasks get no files and one warning.
    """
    warned = False
    for i, row in enumerate(_rows(path)):
        question = row.text("Question", "question")
        answer = row.text("Final answer", "answer")
        source_id = _source_id(row, i, "task_id")
        file_name = row.optional("file_name") or ""
        if not isinstance(file_name, str):
            raise row.error("file_name", f"expected a string, got {type(file_name).__name__}")
        files: list[str] = []
        if file_name and files_dir is not None:
            file = Path(files_dir) / file_name
            if not file.resolve().is_relative_to(Path(files_dir).resolve()):
                raise row.error("file_name", f"{file_name[:200]!r} leaves files_dir")
            if not file.is_file():
                raise FileNotFoundError(
                    f"{path}:{row.line}: attachment {file_name!r} of GAIA task {source_id} "
                    f"is not in files_dir {files_dir}"
                )
            files = [str(file.resolve())]
        elif file_name and not warned:
            logger.warning(
                "%s: GAIA tasks reference attachments but no files_dir was given; "
                "their Task.files are empty",
                path,
            )
            warned = True
        meta = {"level": row.optional("Level"), "file_name": file_name}
        annotator = row.optional("Annotator Metadata", row.optional("Annotator_Metadata"))
        if annotator is not None:
            meta["annotator_metadata"] = annotator
        row.used.add("id")  # the WebThinker copy's running number; task_id is the real id
        yield _task(spec, row, source_id, question, answer, meta, files)


def load_question_answer(path: Path, spec: BenchmarkSpec) -> Iterator[Task]:
    """Files with ``Question``/``question`` and ``answer`` (a string or alias list), maybe ``id``.

    Covers the QA-only dev lists, Bamboogle, WebWalkerQA, HLE, FRAMES and the
    SimpleDeepSearcher samples; every other field is kept in meta.
    """
    for i, row in enumerate(_rows(path)):
        question = row.text("Question", "question")
        answer = row.answers("answer", "Answer")
        yield _task(spec, row, _source_id(row, i, "id"), question, answer)


def xbench_decrypt(ciphertext: str, key: str) -> str:
    """xbench's published scheme: ``xor(base64decode(field), key=canary)``, in memory only."""
    data = base64.b64decode(ciphertext, validate=True)
    key_bytes = key.encode("utf-8")
    return bytes(b ^ key_bytes[i % len(key_bytes)] for i, b in enumerate(data)).decode("utf-8")


def load_xbench(path: Path, spec: BenchmarkSpec) -> Iterator[Task]:
    """xbench-DeepSearch CSV (``id``, ``prompt``, ``answer``, ``canary``, all but id encrypted).

    Question and answer are decrypted into the returned Tasks and nowhere else;
    ``reference_steps`` stays encrypted in meta. Do not write these Tasks to disk.
    """
    for i, row in enumerate(_rows(path)):
        canary = row.text("canary")
        plain = {}
        for name in ("prompt", "answer"):
            try:
                plain[name] = xbench_decrypt(row.text(name), canary)
            except (ValueError, UnicodeDecodeError) as e:
                raise row.error(name, f"does not decrypt with the row's canary: {e}") from None
            if not plain[name].strip():
                raise row.error(name, "decrypts to an empty string")
        meta = {"encrypted_fields": ["reference_steps"], "do_not_publish": True}
        yield _task(spec, row, _source_id(row, i, "id"), plain["prompt"], plain["answer"], meta)


# ---------------------------------------------------------------- multi-hop QA with contexts


def _contexts_from(
    row: _Row, name: str, items: Any, title_key: str, text_key: str
) -> tuple[list[dict], list[int]]:
    if not isinstance(items, list):
        raise row.error(name, f"expected a list of paragraphs, got {type(items).__name__}")
    contexts, supporting = [], []
    for j, p in enumerate(items):
        if (
            not isinstance(p, dict)
            or not isinstance(p.get(title_key), str)
            or not isinstance(p.get(text_key), str)
        ):
            raise row.error(
                f"{name}[{j}]", f"expected an object with '{title_key}' and '{text_key}'"
            )
        contexts.append({"title": p[title_key], "text": p[text_key]})
        if p.get("is_supporting"):
            supporting.append(j)
    return contexts, supporting


def load_hotpotqa_raw(path: Path, spec: BenchmarkSpec) -> Iterator[Task]:
    """HotpotQA official format: ``_id``, ``question``, ``answer``, ``context`` [[title, [sents]]].

    Sentences are joined as the official data intends (each carries its own leading space).
    """
    for i, row in enumerate(_rows(path)):
        question, answer = row.text("question"), row.text("answer")
        context = row.raw("context")
        if not isinstance(context, list) or not all(
            isinstance(c, list) and len(c) == 2 and isinstance(c[1], list) for c in context
        ):
            raise row.error("context", "expected [[title, [sentences]], ...]")
        contexts = [{"title": str(t), "text": "".join(map(str, s))} for t, s in context]
        facts = row.data.get("supporting_facts")
        gold_titles = {f[0] for f in facts if isinstance(f, list) and f and isinstance(f[0], str)
                       } if isinstance(facts, list) else set()
        supporting = [j for j, c in enumerate(contexts) if c["title"] in gold_titles]
        meta = {"contexts": contexts, "supporting_contexts": supporting}
        yield _task(spec, row, _source_id(row, i, "_id"), question, answer, meta)


def _ircot_answers(row: _Row) -> list[str]:
    value = row.raw("answers_objects")
    if isinstance(value, str):  # some copies store the list as its Python repr
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise row.error("answers_objects", "is a string that is not a list literal") from None
    answers: list[str] = []
    for obj in value if isinstance(value, list) else []:
        if not isinstance(obj, dict):
            continue
        spans = obj.get("spans") or []
        answers += [str(s) for s in spans if str(s).strip()] if isinstance(spans, list) else []
        if str(obj.get("number") or "").strip():
            answers.append(str(obj["number"]))
        date = obj.get("date") if isinstance(obj.get("date"), dict) else {}
        parts = [str(date.get(k) or "").strip() for k in ("day", "month", "year")]
        if any(parts):
            answers.append(" ".join(p for p in parts if p))
    if not answers:
        raise row.error("answers_objects", "has no answer span, number or date")
    return answers


def load_ircot(path: Path, spec: BenchmarkSpec) -> Iterator[Task]:
    """IRCoT format: ``question_id``, ``question_text``, ``answers_objects``, ``contexts``."""
    for i, row in enumerate(_rows(path)):
        question = row.text("question_text")
        answers = _ircot_answers(row)
        answer: str | list[str] = answers[0] if len(answers) == 1 else answers
        contexts, supporting = _contexts_from(
            row, "contexts", row.raw("contexts"), "title", "paragraph_text"
        )
        meta = {"contexts": contexts, "supporting_contexts": supporting}
        yield _task(spec, row, _source_id(row, i, "question_id"), question, answer, meta)


def load_musique_raw(path: Path, spec: BenchmarkSpec) -> Iterator[Task]:
    """MuSiQue format: ``id``, ``question``, ``answer`` + ``answer_aliases``, ``paragraphs``.

    The answer is always the list ``[answer, *aliases]`` so alias matching is uniform.
    """
    for i, row in enumerate(_rows(path)):
        question, answer = row.text("question"), row.text("answer")
        aliases = row.optional("answer_aliases") or []
        if not isinstance(aliases, list):
            raise row.error("answer_aliases", "expected a list of strings")
        answers = [answer] + [str(a) for a in aliases if str(a) != answer]
        contexts, supporting = _contexts_from(
            row, "paragraphs", row.raw("paragraphs"), "title", "paragraph_text"
        )
        meta = {"contexts": contexts, "supporting_contexts": supporting}
        yield _task(spec, row, _source_id(row, i, "id"), question, answers, meta)


def build_qa_corpus(tasks: Iterable[Task]) -> list[dict]:
    """The paragraphs of all tasks' ``meta["contexts"]`` as a search corpus, deduplicated.

    Two paragraphs are the same when title and text are; the ``id`` is a hash of both,
    so a paragraph keeps its id whichever subset of tasks the corpus is built from.
    """
    corpus: dict[str, dict] = {}
    for task in tasks:
        for c in task.meta.get("contexts") or []:
            title, text = str(c.get("title", "")), str(c.get("text", ""))
            pid = hashlib.sha1(f"{title}\x00{text}".encode()).hexdigest()[:16]
            corpus.setdefault(pid, {"id": pid, "title": title, "text": text})
    return list(corpus.values())


def load_passages(
    path: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None
) -> list[dict]:
    """A ``[{"title", "text"}]`` passage file as a corpus (default: the HippoRAG 2Wiki corpus).

    The 2Wiki passages cannot be linked to questions (see PROVENANCE.md); use them as a
    generic retrieval corpus.
    """
    if path is None:
        path = _resolve(TWOWIKI_CORPUS, data_root, shipped=False, name="2wiki corpus")
    out: dict[str, dict] = {}
    for row in _rows(Path(path)):
        title, text = row.text("title"), row.text("text")
        pid = hashlib.sha1(f"{title}\x00{text}".encode()).hexdigest()[:16]
        out.setdefault(pid, {"id": pid, "title": title, "text": text})
    return list(out.values())


# ---------------------------------------------------------------- registry and entry point

_AIME_LICENCE = "matharena / Qwen2.5-Math eval data MIT; problems are MAA competition problems"
_HOTPOT = "HotpotQA CC BY-SA 4.0"
_MUSIQUE = "MuSiQue CC BY 4.0"
_TWOWIKI = "2WikiMultihopQA Apache-2.0"
_GAIA = "GAIA terms: do not reshare in crawlable form; never copy into the repo"


def _spec(
    name: str,
    path: str | tuple[str, ...],
    loader: Callable,
    tools: tuple[str, ...],
    checker: str,
    licence: str,
    records: int | None,
    **kw: Any,
) -> BenchmarkSpec:
    paths = (path,) if isinstance(path, str) else path
    return BenchmarkSpec(name, paths, loader, tools, checker, licence, records, **kw)


# fmt: off
# One row per benchmark: name, default file(s) under a data root, loader, tools, checker,
# licence note, record count per PROVENANCE.md.
BENCHMARKS: dict[str, BenchmarkSpec] = {s.name: s for s in [
    _spec("gsm8k", "gsm8k/test.jsonl", load_gsm8k, MATH_TOOLS, "math",
          "MIT (openai/grade-school-math)", 1319, shipped=True),
    _spec("math500", "math500/test.jsonl", load_math500, MATH_TOOLS, "math",
          "MIT (PRM800K MATH-500 split, via simpleRL-reason)", 500, shipped=True),
    _spec("aime24", "aime/aime_2024.jsonl", load_aime, MATH_TOOLS, "math",
          _AIME_LICENCE, 30, shipped=True, options={"year": 2024}),
    _spec("aime24_qwen", "aime/aime24_qwen.jsonl", load_aime, MATH_TOOLS, "math",
          _AIME_LICENCE, 30, shipped=True),
    _spec("aime25", "aime/aime_2025.jsonl", load_aime, MATH_TOOLS, "math",
          _AIME_LICENCE, 30, shipped=True, options={"year": 2025},
          note="No AIME 2025 file is shipped or in ../shared/benchmarks; pass path= to a "
               "JSONL with 'problem' and 'answer' (a 'year' field, if present, is honoured)."),
    _spec("gaia", "gaia/validation_metadata_full.jsonl.gz", load_gaia, WEB_TOOLS, "gaia",
          _GAIA, 165),
    _spec("gaia_text", "gaia/validation_text_only.jsonl.gz", load_gaia, WEB_TOOLS, "gaia",
          _GAIA, 127),
    _spec("gaia_text103", "gaia/webthinker_gaia_dev_text103.json.gz", load_gaia, WEB_TOOLS,
          "gaia", _GAIA, 103),
    _spec("webwalkerqa", "webwalkerqa/webwalkerqa_test_680.json", load_question_answer,
          WEB_TOOLS, "llm_judge", "WebThinker copy MIT", 680),
    _spec("hle", "hle/hle_text_subset_500_webthinker.json", load_question_answer, WEB_TOOLS,
          "llm_judge", "MIT (HF card); canary: evaluation only, never train on it", 500),
    _spec("xbench", ("xbench/DeepSearch-2505.csv", "xbench/DeepSearch-2510.csv"), load_xbench,
          WEB_TOOLS, "llm_judge", "MIT; encrypted, decrypted in memory only, never publish", 200),
    _spec("hotpotqa", "hotpotqa/hotpotqa_dev_distractor_200_migres.jsonl", load_hotpotqa_raw,
          QA_TOOLS, "short_answer", f"{_HOTPOT}; MIGRES copy states no licence", 200),
    _spec("hotpotqa_ircot", "hotpotqa/hotpotqa_dev_500_ircot_format_contexts.jsonl", load_ircot,
          QA_TOOLS, "short_answer", f"{_HOTPOT}; copy Apache-2.0", 500),
    _spec("hotpotqa_full", "hotpotqa/hotpotqa_dev_qa_only_7405.json", load_question_answer,
          QA_TOOLS, "short_answer", f"{_HOTPOT}; Agentic-RAG copy states no licence", 7405),
    _spec("2wiki", "2wikimultihopqa/2wiki_dev_qa_only_12576.json", load_question_answer,
          QA_TOOLS, "short_answer", f"{_TWOWIKI}; Agentic-RAG copy states no licence", 12576),
    _spec("2wiki_sds500", "2wikimultihopqa/2wiki_dev_sample500_simpledeepsearcher.json",
          load_question_answer, QA_TOOLS, "short_answer", f"{_TWOWIKI}; copy MIT", 500),
    _spec("musique", "musique/musique_ans_dev_200_migres.jsonl", load_musique_raw, QA_TOOLS,
          "short_answer", f"{_MUSIQUE}; MIGRES copy states no licence", 200),
    _spec("musique_full", "musique/musique_ans_dev_qa_only_2417.json", load_question_answer,
          QA_TOOLS, "short_answer", f"{_MUSIQUE}; Agentic-RAG copy states no licence", 2417),
    _spec("musique_sds500", "musique/musique_dev_sample500_simpledeepsearcher.json",
          load_question_answer, QA_TOOLS, "short_answer", f"{_MUSIQUE}; copy MIT", 500),
    _spec("bamboogle", "bamboogle/bamboogle_test_125.json", load_question_answer, QA_TOOLS,
          "short_answer", "no licence stated", 125),
    _spec("frames", "frames/frames_824_simpledeepsearcher.json", load_question_answer,
          WEB_TOOLS, "llm_judge", "FRAMES licence not recorded; SimpleDeepSearcher copy MIT", 824),
]}
# fmt: on


def _resolve(
    rel: str, data_root: str | os.PathLike | None, shipped: bool, name: str, note: str = ""
) -> Path:
    """The first existing copy of ``rel``: in ``data_root`` if given, else the shipped copies, shared."""
    if data_root is not None:
        roots = [Path(data_root)]
    else:
        roots = ([SHIPPED_ROOT] if shipped else []) + [SHARED_ROOT]
    for root in roots:
        if (root / rel).is_file():
            return root / rel
    tried = ", ".join(str(r / rel) for r in roots)
    hint = note or "pass data_root= (a folder laid out like ../shared/benchmarks) or path="
    raise FileNotFoundError(f"{name}: no file at {tried}. {hint}")


def load_benchmark(
    name: str,
    path: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    **options: Any,
) -> list[Task]:
    """Load benchmark ``name`` as Tasks.

    Args:
        path: a file to read instead of the default one(s) (same format).
        data_root: a folder laid out like ``../shared/benchmarks`` to look in instead of
            ``reagent/tasksets/data`` and ``../shared/benchmarks``.
        limit: keep only the first ``limit`` records.
        options: loader options, e.g. ``files_dir=`` for GAIA attachments.
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    spec = BENCHMARKS[name]
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if path is not None:
        paths = [Path(path)]
        if not paths[0].is_file():
            raise FileNotFoundError(f"{name}: no file at {path}")
    else:
        paths = [_resolve(rel, data_root, spec.shipped, name, spec.note) for rel in spec.paths]
    kwargs = {**spec.options, **options}
    stream = (task for p in paths for task in spec.loader(p, spec, **kwargs))
    tasks = list(islice(stream, limit) if limit is not None else stream)
    logger.info("loaded %d %s tasks from %s", len(tasks), name, ", ".join(map(str, paths)))
    if path is None and limit is None and spec.records is not None and len(tasks) != spec.records:
        warnings.warn(
            f"{name}: loaded {len(tasks)} records from {', '.join(map(str, paths))}, "
            f"expected {spec.records} (PROVENANCE.md)",
            stacklevel=2,
        )
    return tasks
