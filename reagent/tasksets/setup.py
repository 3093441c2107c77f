"""A benchmark by name -> its environment, its tasks and the name of its answer checker.

Used by ``reagent eval`` (:mod:`eval.harness` runs the attempts), ``reagent rollout
--benchmark`` and ``reagent train`` (``env: math|qa`` with ``benchmark: NAME``), so a
rollout, a training run and an evaluation of the same benchmark see the same prompts,
tools and corpus.

Which environment a benchmark gets:

* math sets (checker ``math``) -> :class:`~reagent.envs.math_env.MathEnv` with python;
* multi-hop QA (search-only tools) -> :class:`~reagent.envs.qa.QAEnv` over a local BM25
  index of the benchmark's own paragraphs (``meta["contexts"]`` of *all* its questions,
  so ``limit`` does not shrink the distractor pool); benchmarks without paragraphs
  (the QA-only lists, Bamboogle) search the 2Wiki HippoRAG passages unless ``corpus``
  names another file, and the notes say so;
* web benchmarks (GAIA, WebWalkerQA, HLE, xbench, FRAMES) -> QAEnv with search, browse and
  python, search going to an HTTP search API (``tools_config.search_url``) or a local
  ``corpus``;
* ``toy`` -> the toy ledger environment's ``split`` (``heldout`` by default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from reagent.envs.base import Environment
from reagent.records import Task

TOY = "toy"


@dataclass
class BenchmarkSetup:
    """One benchmark ready to run: environment, tasks, answer checker and notes for the report."""

    name: str
    env: Environment
    tasks: list[Task]
    checker: str  # "toy" (the env's own outcome) or an eval.metrics checker name
    notes: list[str] = field(default_factory=list)


def setup_benchmark(
    name: str,
    *,
    data: str | None = None,
    data_root: str | None = None,
    limit: int | None = None,
    split: str = "heldout",
    env_seed: int = 0,
    corpus: str | None = None,
    cache_dir: str | None = None,
    tools_config: Any = None,
    files_dir: str | None = None,
    use_python: bool = True,
    qa_metric: str = "em",
) -> BenchmarkSetup:
    """Tasks, environment and checker for ``name`` (see the module docstring for the mapping).

    ``tools_config`` is a :class:`reagent.tools.ToolsConfig` (python limits, search API URL,
    browse settings); ``files_dir`` holds GAIA attachments (also the file reader's root).
    """
    if name == TOY:
        from reagent.envs.toy import ToyEnv

        if data:
            raise ValueError(
                "--data does not apply to the toy benchmark: its tasks are generated "
                "(choose them with --split and --env-seed)"
            )
        env = ToyEnv(seed=env_seed)
        return BenchmarkSetup(
            TOY,
            env,
            env.tasks(split, limit),
            TOY,
            [f"toy ledger environment, split {split}, seed {env_seed}"],
        )
    from reagent.envs.math_env import MathEnv
    from reagent.envs.qa import QAEnv
    from reagent.tasksets.loaders import BENCHMARKS, QA_TOOLS, load_benchmark, load_gaia
    from reagent.tools.factory import ToolsConfig

    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join([TOY, *BENCHMARKS])}")
    spec = BENCHMARKS[name]
    options = {"files_dir": files_dir} if spec.loader is load_gaia and files_dir else {}
    all_tasks = load_benchmark(name, path=data, data_root=data_root, **options)
    tasks = all_tasks[:limit] if limit is not None else all_tasks
    notes = [f"data: {data}" if data else f"data: {name} default file"]
    tools_config = tools_config or ToolsConfig()
    if spec.checker == "math":
        env = MathEnv(
            task_list=tasks, use_python=use_python, python_config=tools_config.python_config()
        )
        notes.append("math environment, python tool " + ("on" if use_python else "off"))
    elif set(spec.tools) <= set(QA_TOOLS):
        docs, note = _qa_corpus(name, all_tasks, corpus, data_root)
        env = QAEnv(
            task_list=tasks,
            corpus=docs,
            cache_dir=cache_dir,
            metric=qa_metric,
            tools_config=tools_config,
        )
        notes.append(note)
    else:
        names = [t for t in spec.tools if t != "file_reader" or files_dir]
        if corpus:
            notes.append(f"web benchmark searching the local corpus {corpus} (--corpus)")
        elif tools_config.search_backend == "http" and tools_config.search_url:
            notes.append(f"web benchmark searching {tools_config.search_url}")
        else:
            raise ValueError(
                f"benchmark {name!r} needs web search: pass --search-url URL (a "
                "Serper-compatible search API) or --corpus FILE (a local JSONL corpus)"
            )
        if files_dir:
            tools_config = dataclasses.replace(tools_config, file_root=files_dir)
        env = QAEnv(
            task_list=tasks,
            corpus=corpus,
            cache_dir=cache_dir,
            metric=qa_metric,
            tool_names=tuple(names),
            tools_config=tools_config,
        )
        notes.append(f"tools: {', '.join(names)}")
    return BenchmarkSetup(name, env, tasks, spec.checker, notes)


def _qa_corpus(
    name: str, tasks: list[Task], corpus: str | None, data_root: str | None
) -> tuple[str | list[dict], str]:
    """The search corpus of a multi-hop QA benchmark and a note saying where it came from."""
    from reagent.tasksets.loaders import build_qa_corpus, load_passages

    if corpus:
        return corpus, f"corpus: {corpus} (--corpus)"
    docs = build_qa_corpus(tasks)
    if docs:
        return docs, (
            f"corpus: the benchmark's own paragraphs ({len(docs)} from {len(tasks)} questions)"
        )
    docs = load_passages(data_root=data_root)
    return docs, (
        f"corpus: {name} has no paragraphs of its own; searched the 2Wiki HippoRAG "
        f"passages ({len(docs)}) instead (pass --corpus FILE for another)"
    )
