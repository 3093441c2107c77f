"""``reagent rollout``: run a policy on an environment's tasks and write trajectories.

Resumable: episode ids are ``{task_id}#{k}``, the output is append-only with one
flushed line per trajectory, and a re-run skips ids already written, so a killed
run neither duplicates nor loses a trajectory. Episodes run in batches of
``batch_size`` through the batched agent loop.

Tasks come from the environment (toy), a Task file (``--tasks``) or a benchmark
(``--benchmark NAME [--data PATH]``, loaded through ``eval``, which also picks the
environment and, for multi-hop QA, the search corpus).

``--critique`` runs Reagent-C: each first attempt (``{task_id}#{k}``) is judged
(``--judge-model DIR`` or ``--judge-base-url URL``) and written with its judgment; then
a second attempt with the first one and the critique in context
(:func:`reagent.critique.revision_messages`) is written as ``{task_id}#{k}/rev``,
stage ``revised``, ``parent_id`` the first. Each is resumable by id: a first attempt
already written is read back (with its judgment) rather than redone. Which first
attempts are revised is :func:`reagent.critique.revise_decision`'s choice: never one
whose judgment failed, and with ``--revise-below T`` only one the judge scored below
``T`` with a critique that names a flaw; the others have no ``/rev`` episode (skips are
counted by reason in the summary, and a re-run does not redo them).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from tqdm import tqdm

from reagent.agent import AgentConfig, AgentLoop, EpisodeSpec, specs_for
from reagent.config import add_config_args, cfg, config_hash, load_config
from reagent.envs import Environment, make_env, with_tools
from reagent.jsonl import RecordWriter, done_ids, load_records
from reagent.records import Task, Trajectory
from reagent.template_options import (
    chat_template_kwargs_field,
    check_template_options,
    judge_chat_template_kwargs_field,
    server_extra_body,
    tool_format_field,
)


@dataclass
class RolloutConfig:
    model: str | None = cfg(None, help="local model directory (hf or vllm backend)")
    base_url: str | None = cfg(None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    served_model: str = cfg("default", help="model name to request from --base-url")
    backend: str | None = cfg(None, help="hf | vllm | openai (default: hf with --model, openai with --base-url)")
    env: str | None = cfg(None, help="environment: toy | math | qa "
                                     "(default: the benchmark's, else toy)")
    env_seed: int = cfg(0, help="seed of the toy environment's task generator")
    tools: list[str] | None = cfg(None, help="tools the environment offers (default: its own; [] none: "
                                  "single-turn, no tool schema in the prompt)")
    benchmark: str | None = cfg(None, help="benchmark to draw tasks from (gsm8k, hotpotqa, ...; "
                                           "picks the math/qa environment)")
    data: str | None = cfg(None, help="with --benchmark: read this file (same format) instead")
    corpus: str | None = cfg(None, help="qa: JSONL search corpus instead of the benchmark's "
                                        "paragraphs")
    cache_dir: str | None = cfg(None, help="qa: where corpora and BM25 indexes are cached")
    tasks: str | None = cfg(None, help="Task JSONL file (overrides --split)")
    split: str = cfg("train", help="environment split when no --tasks file is given")
    limit: int | None = cfg(None, help="use only the first N tasks")
    n: int = cfg(1, help="trajectories per task")
    out: str = cfg("traces.jsonl", help="output trajectory JSONL (appended; resumable)")
    batch_size: int = cfg(64, help="episodes generated together in one batch")
    max_turns: int = cfg(6, help="assistant turns per episode")
    max_tokens: int = cfg(1024, help="response token budget per episode (generated + tool tokens)")
    max_new_tokens: int = cfg(256, help="tokens per assistant turn")
    temperature: float = cfg(1.0, help="sampling temperature; 0 = greedy")
    top_p: float = cfg(1.0, help="nucleus sampling mass")
    top_k: int = cfg(0, help="top-k sampling; 0 = off")
    seed: int = cfg(0, help="sampling seed")
    device: str = cfg("auto", help="device for the hf backend: auto | cpu | cuda")
    concurrency: int = cfg(8, help="parallel requests for the openai backend")
    critique: bool = cfg(False, help="Reagent-C: judge each attempt, then answer again with "
                                     "the critique")
    judge_model: str | None = cfg(None, help="--critique: local judge model directory; 'rules' = the "
                                  "toy task's rules checker as an oracle judge")
    revise_below: float | None = cfg(None, help="--critique: revise only attempts the judge scored below "
                                     "this (in (0, 1]) with a critique naming a flaw; None = every "
                                     "scored attempt (a failed judgment is never revised)")
    judge_base_url: str | None = cfg(None, help="--critique: judge OpenAI-compatible endpoint")
    judge_served_model: str | None = cfg(None, help="--critique: judge model name at the endpoint")
    judge_max_new_tokens: int = cfg(1024, help="--critique: token limit of one verdict")
    judge_device: str = cfg("auto", help="--critique: local judge device")
    judge_chat_template_kwargs: dict = judge_chat_template_kwargs_field()
    chat_template_kwargs: dict = chat_template_kwargs_field()
    tool_format: str = tool_format_field()

    def __post_init__(self):
        check_template_options(self, "chat_template_kwargs", "judge_chat_template_kwargs")
        if (self.model is None) == (self.base_url is None):
            raise ValueError("give exactly one of --model DIR or --base-url URL")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.critique and (self.judge_model is None) == (self.judge_base_url is None):
            raise ValueError("--critique needs exactly one of --judge-model DIR or --judge-base-url "
                             f"URL (got judge_model={self.judge_model!r}, "
                             f"judge_base_url={self.judge_base_url!r})")
        if self.revise_below is not None and not (self.critique and 0 < self.revise_below <= 1):
            raise ValueError(f"revise_below={self.revise_below} needs --critique and a value in (0, 1]")
        if self.benchmark and self.tasks:
            raise ValueError("give --benchmark NAME or --tasks FILE, not both")
        if self.data and not self.benchmark:
            raise ValueError("--data PATH goes with --benchmark NAME (it replaces the benchmark's "
                             "file)")

    def agent_config(self) -> AgentConfig:
        return AgentConfig(max_turns=self.max_turns, max_tokens=self.max_tokens,
                           max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                           top_p=self.top_p, top_k=self.top_k, seed=self.seed,
                           chat_template_kwargs=self.chat_template_kwargs,
                           tool_format=self.tool_format)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, RolloutConfig)


def make_rollout_backend(c: RolloutConfig):
    from reagent.generation.factory import make_backend

    kind = c.backend or ("openai" if c.base_url else "hf")
    if kind == "openai":
        return make_backend("openai", model=c.served_model, base_url=c.base_url, concurrency=c.concurrency,
                            extra_body=server_extra_body(c.chat_template_kwargs))
    return make_backend(kind, model=c.model, device=c.device)


def env_kwargs(c: RolloutConfig) -> dict:
    if (c.env or "toy") == "toy":
        return {"seed": c.env_seed}
    if c.env == "qa":
        return {"corpus": c.corpus, "cache_dir": c.cache_dir}
    return {}


def load_tasks(c: RolloutConfig, env) -> list[Task]:
    tasks = load_records(c.tasks, Task) if c.tasks else env.tasks(c.split, c.limit)
    return tasks[: c.limit] if c.limit is not None else tasks


def env_and_tasks(c: RolloutConfig) -> tuple[Environment, list[Task]]:
    """The environment and tasks: from a benchmark (:mod:`reagent.tasksets`), a Task file or
    the env."""
    if not c.benchmark:
        if c.env == "qa" and not c.corpus:
            raise ValueError("--env qa searches a corpus: pass --corpus FILE (JSONL of {id, title, "
                             "text}) or --benchmark NAME, whose paragraphs become the corpus")
        env = make_env(c.env or "toy", **env_kwargs(c))
        return env, load_tasks(c, env)
    from reagent.tasksets import setup_benchmark

    setup = setup_benchmark(c.benchmark, data=c.data, limit=c.limit, split=c.split,
                            env_seed=c.env_seed, corpus=c.corpus, cache_dir=c.cache_dir)
    if c.env and c.env != setup.env.name:
        raise ValueError(f"benchmark {c.benchmark!r} runs in the {setup.env.name!r} environment, "
                         f"not --env {c.env!r}; drop --env or pass --env {setup.env.name}")
    print(f"rollout: {c.benchmark}: " + "; ".join(setup.notes), file=sys.stderr)
    return setup.env, setup.tasks


def main(args: argparse.Namespace) -> int:
    c = load_config(RolloutConfig, args)
    env, tasks = env_and_tasks(c)
    env = with_tools(env, c.tools)
    specs = specs_for(env, tasks, c.n)
    done = done_ids(c.out)
    if c.critique:
        return run_critique(c, env, tasks, specs, done)
    todo = [s for s in specs if s.id not in done]
    print(f"rollout: {len(tasks)} tasks x {c.n} = {len(specs)} episodes; {len(specs) - len(todo)} already "
          f"in {c.out}, {len(todo)} to run", file=sys.stderr)
    if not todo:
        return 0
    backend = make_rollout_backend(c)
    loop = AgentLoop(backend, env, c.agent_config(), policy_name=c.model or f"{c.base_url}:{c.served_model}")
    made_by = {"command": "rollout", "model": c.model or c.served_model, "config_hash": config_hash(c)}
    stats = {"answered": 0, "correct": 0}
    with RecordWriter(c.out) as writer, tqdm(total=len(todo), desc="rollout", unit="traj") as bar:
        for start in range(0, len(todo), c.batch_size):
            for traj in loop.run(todo[start:start + c.batch_size]):
                traj.extra["made_by"] = made_by
                writer.write(traj)
                stats["answered"] += traj.stop_reason == "answered"
                stats["correct"] += (traj.outcome or 0.0) >= 1.0
            bar.update(min(c.batch_size, len(todo) - start))
            bar.set_postfix(acc=f"{stats['correct'] / max(bar.n, 1):.2f}")
    print(f"rollout: wrote {len(todo)} trajectories to {c.out}: {stats['answered']} answered, "
          f"{stats['correct']} correct", file=sys.stderr)
    return 0


def run_critique(c: RolloutConfig, env: Environment, tasks: list[Task], specs: list[EpisodeSpec],
                 done: set[str]) -> int:
    """Reagent-C rollouts: first attempt + judgment, then the critique-conditioned revision."""
    from collections import Counter

    from reagent.critique import REVISED_SUFFIX, critique_of, judge_critiques, revise_decision, revision_specs
    from rrm.judge import make_judge

    written = {t.id: t for t in load_records(c.out, Trajectory, skip_bad=True)
               if t.id in done} if done else {}

    def finished(s: EpisodeSpec) -> bool:  # revised, or judged and not to be revised
        first = written.get(s.id)
        return s.id + REVISED_SUFFIX in done or (
            first is not None and first.judge is not None
            and revise_decision(first.judge, c.revise_below) is not None)

    todo = [s for s in specs if not finished(s)]
    n_first = sum(s.id not in done for s in todo)
    print(f"rollout --critique: {len(specs)} episodes; {len(specs) - len(todo)} already done in "
          f"{c.out}, {len(todo)} to judge and revise ({n_first} first attempts to run)", file=sys.stderr)
    if not todo:
        return 0
    backend = make_rollout_backend(c)
    judge = make_judge(c.judge_model, c.judge_base_url, served_model=c.judge_served_model,
                       device=c.judge_device, concurrency=c.concurrency,
                       max_new_tokens=c.judge_max_new_tokens, tasks=tasks,
                       template_kwargs=c.judge_chat_template_kwargs)
    policy = c.model or f"{c.base_url}:{c.served_model}"
    loop = AgentLoop(backend, env, c.agent_config(), policy_name=policy)
    made_by = {"command": "rollout", "model": c.model or c.served_model,
               "config_hash": config_hash(c), "judge": judge.model}
    tasks_by_id = {t.id: t for t in tasks}
    failed: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    correct = Counter()
    bar = tqdm(total=len(todo), desc="rollout+critique", unit="ep")
    with RecordWriter(c.out) as writer, bar:
        for start in range(0, len(todo), c.batch_size):
            chunk = todo[start:start + c.batch_size]
            new = loop.run([s for s in chunk if s.id not in written])
            judge_critiques(judge, new)
            for traj in new:
                traj.extra["made_by"] = made_by
                writer.write(traj)
                written[traj.id] = traj
            firsts = [written[s.id] for s in chunk]
            unjudged = [t for t in firsts if t.judge is None]  # written by a run without --critique
            if unjudged:
                judge_critiques(judge, unjudged)
            failed.update(t.judge.status for t in firsts if t.judge.score is None)
            reasons = [revise_decision(t.judge, c.revise_below) for t in firsts]
            skipped.update(r for r in reasons if r)
            kept = [t for t, r in zip(firsts, reasons) if r]
            firsts = [t for t, r in zip(firsts, reasons) if r is None]
            for traj in loop.run(revision_specs(firsts, [critique_of(t.judge) for t in firsts], tasks_by_id)):
                traj.extra["made_by"] = made_by
                writer.write(traj)
                correct["revised"] += (traj.outcome or 0.0) >= 1.0
            correct["revised"] += sum((t.outcome or 0.0) >= 1.0 for t in kept)  # final = first
            correct["initial"] += sum((t.outcome or 0.0) >= 1.0 for t in firsts + kept)
            bar.update(len(chunk))
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
    skips = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()))
    print(f"rollout --critique: {len(todo) - sum(skipped.values())} revised, {sum(skipped.values())} kept "
          f"their first attempt ({skips or 'none'}); correct {correct['initial']} first -> "
          f"{correct['revised']} final; judge gave no usable verdict for {sum(failed.values())} "
          f"({detail or 'none'}): those were not revised", file=sys.stderr)
    return 0
