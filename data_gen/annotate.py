"""Annotate trajectories with a teacher judge: one judge example per trajectory.

Each trajectory goes to the teacher with the one judge prompt (:mod:`rrm.prompt`), and
the answer is parsed by the one judge parser (:mod:`rrm.parse`), so teacher data, SFT
targets and the trained judge share a format. Teachers:

* ``openai``: any OpenAI-compatible endpoint (a hosted model, ``vllm serve`` of a large
  open model, ``reagent serve``) through :class:`rrm.judge.HTTPJudge`, which owns the
  bounded concurrency, timeouts, retries with exponential backoff and the one retry of a
  truncated verdict with a larger token budget;
* ``rules``: the toy environment's process checker
  (:func:`reagent.envs.toy_checker.rules_judgment`) writes the three blocks with
  :func:`rrm.prompt.format_judgment`, which are then parsed like a model's, so the whole
  pipeline runs offline and its output is checked by the same parser.

The output is :class:`~reagent.records.JudgeExample` JSONL: ``question``, ``trajectory``
(the exact user message the teacher saw, ``Question: ...`` plus the rendered episode),
``analysis``, ``critique``, ``score``, ``outcome``, ``teacher``, and in the extra fields
``trajectory_id``, ``task_id``, ``status`` (the parse status), ``reference`` (when known,
for the leakage filter) and ``made_by``. A verdict that does not parse is written with
its status and raw text: it is data about the teacher, and ``build-dataset`` drops it.

Resuming: the file is append-only with one flushed line per trajectory, written by the
main thread as each result arrives (not per batch, so a kill loses only requests in
flight), and a run skips the ``trajectory_id`` values already in it. A request that
fails for good (status ``failed``: no answer after the retries) is *not* written, so the
next run retries it; the final report counts it.

Why a thread pool here when the backend has one: :meth:`OpenAIChatBackend.chat` returns
only when its whole batch is done, which would hold every finished verdict back until
the slowest request of a chunk returns. Submitting one conversation per call from a pool
of the same size lets results be written as they come, while the backend still bounds the
requests in flight. Trajectories are held in memory (their rendered prompts are not:
each is built when its request starts).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from reagent.jsonl import RecordWriter
from reagent.records import JudgeExample, Judgment, Task, Trajectory
from rrm.parse import FAILED, failed_judgment, parse_judgment
from rrm.prompt import build_judge_messages, format_judgment, judge_system_prompt

KEY = "trajectory_id"
TEACHERS = ("openai", "rules")
# Judgment extras worth keeping in the output: why a verdict failed, and what it said.
_KEPT_EXTRAS = ("error", "raw", "raw_score", "retried", "flaws")


@dataclass
class Item:
    """One trajectory to annotate, with its task when known."""

    trajectory: Trajectory
    task: Task | None = None

    @property
    def reference(self) -> Any:
        """The reference answer: the task's, else one an importer found in the source."""
        if self.task is not None and self.task.answer is not None:
            return self.task.answer
        return self.trajectory.extra.get("reference")


# A teacher maps (item, judge chat messages) to a Judgment; it may raise on a bug.
Teacher = Callable[[Item, list[dict]], Judgment]


def rules_teacher(item: Item, messages: list[dict]) -> Judgment:
    """The toy process checker's verdict, written in the judge format and parsed back."""
    if item.task is None or "ledger" not in item.task.meta:
        raise ValueError(f"no toy task for trajectory {item.trajectory.id} "
                         f"(task {item.trajectory.task_id})")
    from reagent.envs.toy_checker import rules_judgment

    verdict = rules_judgment(item.task, item.trajectory)
    text = format_judgment(verdict.analysis, verdict.critique, verdict.score)
    judgment = parse_judgment(text, "stop", model="rules")
    judgment.extra["flaws"] = verdict.extra.get("flaws", [])
    return judgment


def http_teacher(judge: Any) -> Teacher:
    """A teacher over an :class:`rrm.judge.HTTPJudge` (one conversation per call)."""

    def teach(item: Item, messages: list[dict]) -> Judgment:
        return judge.score_messages([messages])[0]

    return teach


def prompt_hash() -> str:
    """Short hash of the judge system prompt, recorded so data can be traced to its prompt."""
    return hashlib.sha256(judge_system_prompt().encode()).hexdigest()[:12]


def to_example(item: Item, messages: list[dict], judgment: Judgment, made_by: dict) -> JudgeExample:
    """The output record for one verdict (see the module docstring for the fields)."""
    traj = item.trajectory
    extra: dict[str, Any] = {KEY: traj.id, "task_id": traj.task_id, "status": judgment.status}
    if item.reference is not None:
        extra["reference"] = item.reference
    extra.update({k: judgment.extra[k] for k in _KEPT_EXTRAS if k in judgment.extra})
    extra["made_by"] = made_by
    return JudgeExample(question=traj.question, trajectory=messages[-1]["content"],
                        analysis=judgment.analysis, critique=judgment.critique,
                        score=judgment.score, outcome=traj.outcome, teacher=judgment.model,
                        extra=extra)


class RateLimiter:
    """Starts at most ``rate`` requests per second, across threads (None: no limit).

    Request starts are spaced ``1/rate`` seconds apart; the backend's own retries are not
    counted, which a server's 429 with ``Retry-After`` covers.
    """

    def __init__(self, rate: float | None):
        if rate is not None and rate <= 0:
            raise ValueError(f"rate_limit must be > 0 requests per second, got {rate}")
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


@dataclass
class AnnotationReport:
    """Counts by parse status of what was written, and what failed and was not."""

    todo: int = 0
    already_done: int = 0
    by_status: Counter = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (trajectory id, error)
    elapsed_s: float = 0.0

    @property
    def written(self) -> int:
        return sum(self.by_status.values())

    def summary(self, limit: int = 5) -> str:
        rate = self.written / self.elapsed_s if self.elapsed_s > 0 else 0.0
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items())) or "none"
        lines = [(f"wrote {self.written} of {self.todo} in {self.elapsed_s:.1f} s "
                  f"({rate:.2f} traj/s; {self.already_done} were already done)"),
                 f"by status: {statuses}",
                 f"failed, not written (re-run to retry): {len(self.failures)}"]
        lines += [f"  {tid}: {err[:300]}" for tid, err in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"  ... and {len(self.failures) - limit} more")
        return "\n".join(lines)


def annotate(items: Iterable[Item], teacher: Teacher, writer: RecordWriter, *, total: int,
             made_by: dict, concurrency: int = 8, rate_limit: float | None = None,
             max_chars: int | None = 24000, progress: bool = True,
             report: AnnotationReport | None = None) -> AnnotationReport:
    """Judge ``items`` with ``teacher``, writing each verdict as soon as it arrives.

    At most ``concurrency`` teacher calls run at once and twice that many items are
    queued, so memory does not grow with the input.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    report = report if report is not None else AnnotationReport(todo=total)
    limiter = RateLimiter(rate_limit)
    model = made_by.get("model") or made_by.get("teacher", "")

    def work(item: Item) -> tuple[Item, list[dict], Judgment]:
        messages = build_judge_messages(item.trajectory, max_chars=max_chars)
        limiter.wait()
        try:
            return item, messages, teacher(item, messages)
        except Exception as e:  # noqa: BLE001 - one bad item must not end a long run
            return item, messages, failed_judgment(f"{type(e).__name__}: {e}", model)

    start = time.monotonic()
    queue = iter(items)
    pending: set[Future] = set()
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="annotate")
    bar = tqdm(total=total, unit="traj", desc="annotate", disable=not progress, smoothing=0.1)
    try:
        while True:
            for item in queue:
                pending.add(pool.submit(work, item))
                if len(pending) >= 2 * concurrency:
                    break
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item, messages, judgment = future.result()
                if judgment.status == FAILED:
                    report.failures.append((item.trajectory.id, judgment.extra.get("error", "")))
                else:
                    writer.write(to_example(item, messages, judgment, made_by))
                    report.by_status[judgment.status] += 1
                bar.update(1)
            bar.set_postfix(ok=report.by_status.get("ok", 0),
                            unparsed=report.written - report.by_status.get("ok", 0),
                            failed=len(report.failures), refresh=False)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
        report.elapsed_s += time.monotonic() - start
    return report


def existing_teacher(path: str | Path) -> str | None:
    """The teacher named by the first record of an output file, if it has one."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and "teacher" in obj:
                return str(obj["teacher"])
    return None
