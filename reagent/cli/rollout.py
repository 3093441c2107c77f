"""``reagent rollout``: run a policy on an environment's tasks and write trajectories.

Resumable: episode ids are ``{task_id}#{k}``, the output is append-only with one
flushed line per trajectory, and a re-run skips ids already written, so a killed
run neither duplicates nor loses a trajectory. Episodes run in batches of
``batch_size`` through the batched agent loop.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from tqdm import tqdm

from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.config import add_config_args, cfg, config_hash, load_config
from reagent.envs import make_env
from reagent.jsonl import RecordWriter, done_ids, load_records
from reagent.records import Task


@dataclass
class RolloutConfig:
    model: str | None = cfg(None, help="local model directory (hf or vllm backend)")
    base_url: str | None = cfg(None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    served_model: str = cfg("default", help="model name to request from --base-url")
    backend: str | None = cfg(None, help="hf | vllm | openai (default: hf with --model, openai with --base-url)")
    env: str = cfg("toy", help="environment: toy | math | qa")
    env_seed: int = cfg(0, help="seed of the toy environment's task generator")
    benchmark: str | None = cfg(None, help="benchmark the math/qa environment draws tasks from")
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

    def __post_init__(self):
        if (self.model is None) == (self.base_url is None):
            raise ValueError("give exactly one of --model DIR or --base-url URL")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")

    def agent_config(self) -> AgentConfig:
        return AgentConfig(max_turns=self.max_turns, max_tokens=self.max_tokens,
                           max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                           top_p=self.top_p, top_k=self.top_k, seed=self.seed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, RolloutConfig)


def make_rollout_backend(c: RolloutConfig):
    from reagent.generation.factory import make_backend

    kind = c.backend or ("openai" if c.base_url else "hf")
    if kind == "openai":
        return make_backend("openai", model=c.served_model, base_url=c.base_url, concurrency=c.concurrency)
    return make_backend(kind, model=c.model, device=c.device)


def env_kwargs(c: RolloutConfig) -> dict:
    if c.env == "toy":
        return {"seed": c.env_seed}
    return {"benchmark": c.benchmark} if c.benchmark else {}


def load_tasks(c: RolloutConfig, env) -> list[Task]:
    tasks = load_records(c.tasks, Task) if c.tasks else env.tasks(c.split, c.limit)
    return tasks[: c.limit] if c.limit is not None else tasks


def main(args: argparse.Namespace) -> int:
    c = load_config(RolloutConfig, args)
    env = make_env(c.env, **env_kwargs(c))
    tasks = load_tasks(c, env)
    specs = specs_for(env, tasks, c.n)
    done = done_ids(c.out)
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
