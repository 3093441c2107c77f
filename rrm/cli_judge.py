"""``reagent judge``: score a trajectory file with a judge, resumably.

    reagent judge --model DIR --traces traces.jsonl --out judged.jsonl
    reagent judge --base-url http://127.0.0.1:8000/v1 --traces traces.jsonl --out judged.jsonl

Each output line is the input trajectory with its ``judge`` field set. A rerun skips
the ids already in ``--out``. Items the judge could not score follow ``on_failure``:
``drop`` leaves them out of the file (a rerun retries them), ``outcome_only`` writes
them with a failed judgment (``score: null``), ``stop`` writes the chunk's successes
and exits with status 1. Failures are counted and printed at the end; when every
judgment failed the exit status is 1 unless ``outcome_only`` was asked for. A judge
endpoint whose ``/v1/models`` cannot be read is an error message, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from reagent.config import add_config_args, cfg, config_hash, load_config
from reagent.jsonl import RecordWriter, SkipReport, done_ids, read_records
from reagent.records import Trajectory
from reagent.template_options import chat_template_kwargs_field, check_template_options


@dataclass
class JudgeOptions:
    """How to reach a judge; shared by ``reagent judge`` and ``reagent eval-rrm``."""

    model: str | None = cfg(None, help="local judge model directory (batched transformers)")
    base_url: str | None = cfg(None, help="OpenAI-compatible endpoint, e.g. "
                                          "http://127.0.0.1:8000/v1 (vllm serve, reagent serve)")
    served_model: str | None = cfg(None, help="model name at the endpoint (default: the "
                                              "server's first model); for --model, the name "
                                              "recorded in judgments")
    batch_size: int = cfg(16, help="items judged per batch (local: generation batch size)")
    max_new_tokens: int = cfg(512, help="token limit of one verdict; also what cuts a "
                                        "runaway verdict (see rrm.judge)")
    retry_max_new_tokens: int = cfg(0, help="token limit of the one retry of a verdict "
                                            "truncated after its analysis (never of a "
                                            "runaway); 0: twice max_new_tokens")
    max_chars: int = cfg(24000, help="character budget of the rendered trajectory")
    concurrency: int = cfg(8, help="HTTP: requests in flight")
    timeout: float = cfg(120.0, help="HTTP: seconds per request")
    max_retries: int = cfg(3, help="HTTP: retries of a failed request, with backoff")
    backoff_s: float = cfg(1.0, help="HTTP: first backoff in seconds (doubles per retry)")
    device: str = cfg("auto", help="local: cpu, cuda, cuda:1 or auto")
    dtype: str = cfg("auto", help="local: auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32")
    chat_template_kwargs: dict = chat_template_kwargs_field()  # the judge's own template

    def check(self, judge_required: bool = True) -> None:
        """Cross-field checks; called by the commands' ``__post_init__``."""
        check_template_options(self)
        if (self.model and self.base_url) or (judge_required and not (self.model or self.base_url)):
            raise ValueError("give exactly one of --model DIR and --base-url URL "
                             f"(got model={self.model!r}, base_url={self.base_url!r})")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError(f"batch_size={self.batch_size} and max_new_tokens="
                             f"{self.max_new_tokens} must be >= 1")

    def make(self):
        from rrm.judge import make_judge

        return make_judge(self.model, self.base_url, served_model=self.served_model,
                          batch_size=self.batch_size, device=self.device, dtype=self.dtype,
                          concurrency=self.concurrency, timeout=self.timeout,
                          max_retries=self.max_retries, backoff_s=self.backoff_s,
                          max_new_tokens=self.max_new_tokens,
                          retry_max_new_tokens=self.retry_max_new_tokens or None,
                          max_chars=self.max_chars, template_kwargs=self.chat_template_kwargs)


@dataclass
class JudgeConfig(JudgeOptions):
    traces: str = cfg(None, help="JSONL of trajectories to judge")
    out: str = cfg(None, help="JSONL to append judged trajectories to (resumable)")
    on_failure: str = cfg("drop", help="drop (leave out; a rerun retries), outcome_only "
                                       "(write with score null) or stop")
    limit: int | None = cfg(None, help="judge at most this many (new) trajectories")

    def __post_init__(self):
        self.check(judge_required=True)
        from rrm.judge import FailurePolicy

        if not self.traces or not self.out:
            raise ValueError("--traces and --out are required")
        FailurePolicy.parse(self.on_failure)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, JudgeConfig)


def main(args: argparse.Namespace) -> int:
    config = load_config(JudgeConfig, args)
    return run(config)


def run(config: JudgeConfig) -> int:
    """Judge every trajectory of ``traces`` not yet in ``out``; 1 if stopped on failure."""
    from tqdm.auto import tqdm

    from rrm.judge import FailureCounter, FailurePolicy, JudgeFailure, apply_failure_policy

    policy = FailurePolicy.parse(config.on_failure)
    done = done_ids(config.out)
    report = SkipReport()
    todo = [t for t in read_records(config.traces, Trajectory, skip_bad=True, report=report)
            if t.id not in done]
    if config.limit is not None:
        todo = todo[:config.limit]
    if report.skipped:
        print(f"{config.traces}: {report.summary()}", file=sys.stderr)
    print(f"{len(done)} already judged in {config.out}; {len(todo)} to judge", file=sys.stderr)
    if not todo:
        return 0
    judge = config.make()
    tag = config_hash(config)
    counter = FailureCounter()
    status = 0
    bar = tqdm(total=len(todo), desc="judge", unit="traj")
    with RecordWriter(config.out) as writer:
        for start in range(0, len(todo), config.batch_size):
            chunk = todo[start:start + config.batch_size]
            judgments = judge.score(chunk)
            for j in judgments:
                j.extra["config_hash"] = tag
            try:
                _, keep = apply_failure_policy(judgments, policy, counter)
            except JudgeFailure as e:
                keep = [j.score is not None for j in judgments]
                print(f"reagent judge: stopping: {e}", file=sys.stderr)
                status = 1
            for traj, j, k in zip(chunk, judgments, keep):
                if k:
                    traj.judge = j
                    writer.write(traj)
            bar.update(len(chunk))
            bar.set_postfix(failed=counter.failed, refresh=False)
            if status:
                break
    bar.close()
    print(f"reagent judge: {counter.summary()}; wrote to {config.out}"
          + (" (dropped failures are retried by a rerun)"
             if counter.failed and policy is FailurePolicy.DROP else ""), file=sys.stderr)
    if counter.judged and counter.failed == counter.judged:
        if policy is FailurePolicy.OUTCOME_ONLY:
            print("reagent judge: warning: every judgment failed; the file holds outcomes only",
                  file=sys.stderr)
        else:
            print(f"reagent judge: error: every one of {counter.judged} judgments failed; check "
                  "the judge (or pass --on-failure outcome_only to keep outcomes only)",
                  file=sys.stderr)
            status = 1
    return status
