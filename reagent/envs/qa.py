"""The QA environment: multi-hop questions (HotpotQA, 2Wiki, MuSiQue) answered with search.

The agent searches a local BM25 index (:class:`reagent.tools.search.BM25Backend`) and
answers in ``\\boxed{}``; the outcome is exact match (default) or token F1, the best
over the task's answer aliases (:mod:`reagent.rewards.short_answer`).

The corpus is the caller's: a JSONL path, or a list of ``{"id", "title", "text"}``
documents (:func:`reagent.tasksets.setup_benchmark` builds one from a benchmark's own
paragraphs with :func:`reagent.tasksets.loaders.build_qa_corpus`). A list is
written once to ``cache_dir`` under a name derived from its content, so the BM25
index, cached beside it and keyed on the file's path, size and mtime, is built once
and reloaded by every later run over the same documents.

The same environment serves web benchmarks (GAIA, WebWalkerQA, ...): give
``tool_names=("search", "browse")`` and a ``tools_config`` whose search backend is an
HTTP search API. Tools are built on first use, so constructing the environment (to
list tasks or score answers) costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reagent.envs.base import last_boxed
from reagent.envs.math_env import given_tasks
from reagent.records import Task, Trajectory
from reagent.rewards.short_answer import best_over_references, exact_match, token_f1
from reagent.tools.base import Tool

METRICS = {"em": exact_match, "f1": token_f1}
TOOL_LINES = {
    "search": "search(query) returns the top documents for a query",
    "browse": "browse(url, goal) reads a web page",
    "python": "python(code) runs Python code and returns what it prints",
    "file_reader": "file_reader(path) reads a file attached to the question",
}
SYSTEM_PROMPT = (
    "Answer the question using the tools: {tools}. Questions may need several steps: find "
    "each fact you need with its own search, and search again with other words when the "
    "results do not answer it. Do not guess. When you know the answer, give it as a short "
    "phrase (a name, number, date or yes/no) in \\boxed{{answer}}."
)
TASKS_HINT = (
    "the qa environment has no built-in tasks: pass --tasks FILE (Task JSONL) or "
    "--benchmark NAME (hotpotqa, musique, 2wiki, bamboogle, ...)"
)


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reagent"


def write_corpus(docs: list[dict], cache_dir: str | Path) -> Path:
    """Write ``docs`` as JSONL named by a hash of the content; reuse the file if present.

    Never rewriting an existing file keeps its mtime, which is part of the BM25 cache key.
    """
    lines = []
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise TypeError(
                f"corpus document {i} must be an object with a string 'text', "
                f"got {str(doc)[:100]!r}"
            )
        lines.append(
            json.dumps(
                {
                    "id": str(doc.get("id", i)),
                    "title": str(doc.get("title") or ""),
                    "text": doc["text"],
                },
                ensure_ascii=False,
            )
        )
    if not lines:
        raise ValueError("the qa corpus is empty: the search tool would have nothing to find")
    blob = "\n".join(lines) + "\n"
    path = Path(cache_dir) / f"corpus-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.jsonl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(blob, encoding="utf-8")
        os.replace(tmp, path)
    return path


@dataclass
class QAEnv:
    """Short-answer questions answered with search (and optionally other tools).

    ``corpus``: JSONL path or list of ``{"id", "title", "text"}`` for a local BM25 search;
    None means ``tools_config`` says where search goes (e.g. an HTTP search API).
    ``cache_dir``: where a list corpus is written and the index cached
    (default ``$XDG_CACHE_HOME/reagent`` or ``~/.cache/reagent``).
    ``task_list`` / ``tasks_file``: the tasks :meth:`tasks` returns (see :class:`MathEnv`).
    ``metric``: ``em`` or ``f1``, each the best over answer aliases.
    ``tool_names``: tools offered; ``tools_config``: a :class:`reagent.tools.ToolsConfig`.
    """

    corpus: str | list[dict] | None = None
    cache_dir: str | None = None
    tasks_file: str | None = None
    task_list: list[Task] | None = None
    metric: str = "em"
    tool_names: tuple[str, ...] = ("search",)
    tools_config: Any = None
    name: str = "qa"
    tool_schemas_in_prompt: bool = True
    _tools: dict[str, Tool] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"QAEnv metric={self.metric!r} is not one of {', '.join(METRICS)}")
        self.tool_names = tuple(self.tool_names)

    def tasks(self, split: str, limit: int | None = None) -> list[Task]:
        return given_tasks(self.task_list, self.tasks_file, TASKS_HINT, limit)

    def system_prompt(self, task: Task) -> str:
        tools = "; ".join(TOOL_LINES.get(n, n) for n in self.tool_names) or "none"
        prompt = SYSTEM_PROMPT.format(tools=tools)
        if task.files:  # GAIA-style attachments, read with file_reader by their names
            prompt += (
                f" Files attached to this question: {', '.join(Path(f).name for f in task.files)}."
            )
        return prompt

    def tools_for(self, task: Task) -> dict[str, Tool]:
        with self._lock:
            if self._tools is None:
                self._tools = self._build_tools()
        return self._tools

    def _build_tools(self) -> dict[str, Tool]:
        """Tools from ``tools_config``, with search pointed at the local corpus when given."""
        from reagent.tools.factory import ToolsConfig, build_tools

        config = self.tools_config or ToolsConfig()
        if self.corpus is not None:
            cache = Path(self.cache_dir) if self.cache_dir else default_cache_dir()
            path = (
                write_corpus(self.corpus, cache)
                if isinstance(self.corpus, list)
                else Path(self.corpus)
            )
            config = replace(
                config,
                search_backend="bm25",
                search_corpus=str(path),
                search_cache_dir=str(cache / "bm25"),
            )
        return build_tools(list(self.tool_names), config)

    def extract_answer(self, text: str) -> str | None:
        return last_boxed(text)

    def outcome(
        self, task: Task, answer: str | None, trajectory: Trajectory | None = None
    ) -> float | None:
        """Best EM (or F1) over aliases; None when the task has no reference answer."""
        if task.answer is None:
            return None
        if answer is None:
            return 0.0
        return best_over_references(METRICS[self.metric], answer, task.answer)
