"""``reagent annotate``: judge trajectories with a teacher and write judge examples.

    reagent annotate --traces traces.jsonl --teacher openai --base-url http://HOST:8000/v1 \\
        --model NAME --out judge.jsonl --concurrency 16 [--rate-limit 5]
    reagent annotate --traces traces.jsonl --teacher rules --env-seed 0 --out judge.jsonl

``--format openai|sharegpt`` reads those formats directly (as ``reagent import`` does).
The output is append-only and resumable: re-running the same command after a kill
continues where it stopped, with no duplicate and no lost record (keyed by trajectory
id). See :mod:`data_gen.annotate` for the record fields and the failure policy.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from data_gen.annotate import (
    KEY,
    TEACHERS,
    AnnotationReport,
    Item,
    annotate,
    existing_teacher,
    http_teacher,
    prompt_hash,
    rules_teacher,
)
from data_gen.importers import FORMATS, ImportReport, load_traces
from data_gen.tasks import resolve_tasks
from reagent.config import add_config_args, cfg, config_hash, load_config
from reagent.jsonl import RecordWriter, done_ids


@dataclass
class AnnotateConfig:
    traces: str = cfg("", help="input traces file (JSONL, or JSON for openai/sharegpt)")
    format: str = cfg("trajectory", help="format of --traces: trajectory (the project's) | "
                      "openai ({'messages': [...]}) | sharegpt ({'conversations': [...]})")
    outcome_field: str | None = cfg(None, help="source field holding the outcome, for openai/"
                                    "sharegpt input (default: first of outcome, reward, "
                                    "success, is_correct, correct)")
    teacher: str = cfg("openai", help="openai: an OpenAI-compatible endpoint (--base-url); "
                       "rules: the toy environment's process checker, offline")
    base_url: str | None = cfg(None, help="teacher endpoint, e.g. http://127.0.0.1:8000/v1")
    model: str | None = cfg(None, help="teacher model name to request (default: the server's "
                            "first model from /v1/models)")
    api_key_env: str = cfg("OPENAI_API_KEY", help="environment variable holding the API key "
                           "(unset: the placeholder local servers accept)")
    out: str = cfg("judge.jsonl", help="output judge-example JSONL (appended; resumable)")
    concurrency: int = cfg(8, help="teacher requests in flight at once")
    rate_limit: float | None = cfg(None, help="at most this many requests started per second "
                                   "(none: unlimited)")
    max_retries: int = cfg(3, help="retries of a failed request (connection errors, timeouts, "
                           "429, 5xx), with exponential backoff")
    backoff_s: float = cfg(1.0, help="first retry delay in seconds; doubles per retry")
    timeout_s: float = cfg(300.0, help="seconds per teacher request")
    max_new_tokens: int = cfg(2048, help="teacher token budget per verdict; a truncated "
                              "verdict is retried once with twice as many")
    max_chars: int = cfg(24000, help="character budget of the rendered trajectory (long tool "
                         "outputs are elided in the middle)")
    tasks: str | None = cfg(None, help="Task JSONL giving each task_id its reference answer "
                            "(and, for --teacher rules, its toy ledger)")
    env_seed: int = cfg(0, help="seed of the toy environment that made toy-* task ids; used to "
                        "rebuild those tasks when --tasks does not hold them")
    limit: int | None = cfg(None, help="annotate only the first N trajectories")
    progress: bool = cfg(True, help="show a progress bar with throughput")

    def __post_init__(self):
        if not self.traces:
            raise ValueError("traces is required: --traces FILE")
        if self.format not in FORMATS:
            raise ValueError(f"format='{self.format}' is not one of: {', '.join(FORMATS)}")
        if self.teacher not in TEACHERS:
            raise ValueError(f"teacher='{self.teacher}' is not one of: {', '.join(TEACHERS)}")
        if self.teacher == "openai" and not self.base_url:
            raise ValueError("teacher='openai' needs base_url (--base-url http://HOST:PORT/v1)")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"rate_limit must be > 0 requests per second, got {self.rate_limit}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, AnnotateConfig)


def log(msg: str) -> None:
    print(f"annotate: {msg}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    c = load_config(AnnotateConfig, args)
    imported = ImportReport()
    trajectories = load_traces(c.traces, c.format, c.outcome_field, imported)
    log(f"{c.traces} ({c.format}): {imported.summary()}")
    if c.limit is not None:
        trajectories = trajectories[: c.limit]
    tasks = resolve_tasks(trajectories, c.tasks, c.env_seed)
    items = [Item(t, tasks.get(t.task_id)) for t in trajectories]
    if c.teacher == "rules":
        no_task = [it.trajectory.task_id for it in items
                   if it.task is None or "ledger" not in it.task.meta]
        if no_task:
            raise ValueError(f"the rules teacher needs the toy task of every trajectory; "
                             f"{len(no_task)} have none (e.g. {no_task[0]!r}): pass --tasks FILE "
                             "or trajectories with toy-{split}-{i} task ids and their --env-seed")
    done = done_ids(c.out, KEY)
    todo = [it for it in items if it.trajectory.id not in done]
    log(f"{len(items)} trajectories ({len(tasks)} with a known task); {len(items) - len(todo)} "
        f"already in {c.out}, {len(todo)} to annotate")
    if not todo:
        return 0

    judge = None
    if c.teacher == "rules":
        teacher, model = rules_teacher, "rules"
    else:
        import openai

        from rrm.judge import HTTPJudge

        try:
            judge = HTTPJudge(c.base_url, c.model, api_key_env=c.api_key_env,
                              concurrency=c.concurrency, timeout=c.timeout_s,
                              max_retries=c.max_retries, backoff_s=c.backoff_s,
                              max_new_tokens=c.max_new_tokens, max_chars=c.max_chars)
        except (openai.OpenAIError, ValueError) as e:  # no --model; /v1/models unreadable
            raise ValueError(f"cannot ask {c.base_url} for its model ({type(e).__name__}: {e}); "
                             "check --base-url or pass --model") from None
        teacher, model = http_teacher(judge), judge.model
    before = existing_teacher(c.out)
    if before is not None and before != model:
        raise ValueError(f"{c.out} already holds verdicts by teacher {before!r}, not {model!r}; "
                         "write to another --out")
    made_by = {"command": "annotate", "teacher": c.teacher, "model": model,
               "base_url": c.base_url, "config_hash": config_hash(c),
               "prompt_hash": prompt_hash(), "traces": c.traces}
    report = AnnotationReport(todo=len(todo), already_done=len(items) - len(todo))
    try:
        with RecordWriter(c.out) as writer:
            annotate(todo, teacher, writer, total=len(todo), made_by=made_by,
                     concurrency=c.concurrency, rate_limit=c.rate_limit,
                     max_chars=c.max_chars, progress=c.progress, report=report)
    finally:
        if judge is not None:
            judge.close()
        log(report.summary())
    return 1 if report.failures else 0
