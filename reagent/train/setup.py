"""Building what the trainer needs: accelerator, policy, optimizer, schedule, backend, judge.

Kept apart from the loop so the loop reads as the algorithm. A policy or judge path
that does not exist is created as an untrained tiny model when
``create_missing_model`` is on, so the shipped toy configs run on a fresh checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reagent.train.config import TrainConfig
from reagent.train.runtime import Ranks


@dataclass
class Models:
    accelerator: Any
    ranks: Ranks
    model: Any
    ref_model: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    backend: Any


def ensure_model(path: str, config: TrainConfig, seed: int) -> None:
    if Path(path).exists():
        return
    if not config.create_missing_model:
        raise FileNotFoundError(f"model directory {path} does not exist (create_missing_model is false)")
    from reagent.tiny_model import make_tiny_model

    make_tiny_model(path, size=config.tiny_model_size, seed=seed)


def build_models(c: TrainConfig) -> Models:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler

    cuda = torch.cuda.is_available() and c.device != "cpu"
    acc = Accelerator(mixed_precision="bf16" if (cuda and c.bf16) else "no", cpu=not cuda and not _deepspeed_env())
    ranks = Ranks(acc)
    world = ranks.world
    plugin = getattr(acc.state, "deepspeed_plugin", None)
    if plugin is not None:
        # The trainer feeds DeepSpeed its own micro-batches (no dataloader to infer sizes from);
        # accumulation boundaries are set per update, so DeepSpeed's own count stays 1.
        plugin.deepspeed_config.update({"train_micro_batch_size_per_gpu": c.micro_batch_size,
                                        "gradient_accumulation_steps": 1,
                                        "train_batch_size": c.micro_batch_size * world})
    set_seed(c.seed)
    if ranks.main:
        ensure_model(c.model, c, c.seed)
    acc.wait_for_everyone()
    tokenizer = AutoTokenizer.from_pretrained(c.model)
    model = AutoModelForCausalLM.from_pretrained(c.model, dtype=torch.float32)
    if c.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    ref_model = None
    if c.kl_coef > 0:
        ref_model = AutoModelForCausalLM.from_pretrained(c.model, dtype=torch.float32).eval()
        ref_model.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    total = c.max_steps * c.updates_per_batch
    name = "cosine" if c.schedule == "cosine" else "constant_with_warmup"
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=c.warmup_steps, num_training_steps=total)
    model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)
    if ref_model is not None:
        ref_model = ref_model.to(acc.device)
    zero3 = plugin is not None and plugin.zero_stage == 3
    backend = build_backend(c, acc.unwrap_model(model), tokenizer, sync_ranks=zero3 and world > 1)
    return Models(acc, ranks, model, ref_model, tokenizer, optimizer, scheduler, backend)


def _deepspeed_env() -> bool:
    """``accelerate launch`` with a DeepSpeed config says so through its launcher environment."""
    import os

    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def build_backend(c: TrainConfig, policy, tokenizer, sync_ranks: bool):
    if c.rollout_backend == "vllm":
        from reagent.generation.vllm_backend import VLLMBackend

        return VLLMBackend(c.model)
    from reagent.generation.hf import HFBackend

    # Holds the unwrapped policy by reference: each update is seen by the next rollout.
    # Under ZeRO-3 every rank must run the same number of forward passes (gathered weights).
    return HFBackend(policy, tokenizer=tokenizer, sync_ranks=sync_ranks)


def build_judge(c: TrainConfig):
    """The run's judge (None for grpo) and its failure counter."""
    if not c.uses_judge:
        return None, None
    from rrm.judge import RULES, FailureCounter, HTTPJudge, LocalJudge, RulesJudge

    if c.judge_model == RULES:  # the oracle: the toy rules checker, in process
        judge = RulesJudge(build_env_and_tasks(c)[1])
    elif c.judge_base_url:
        judge = HTTPJudge(c.judge_base_url, model=c.judge_served_model, max_new_tokens=c.judge_max_new_tokens,
                          timeout=c.judge_timeout_s, max_retries=c.judge_max_retries,
                          concurrency=c.judge_concurrency, template_kwargs=c.judge_chat_template_kwargs)
    else:
        ensure_model(c.judge_model, c, c.seed + 1)
        judge = LocalJudge(c.judge_model, batch_size=c.judge_batch_size, max_new_tokens=c.judge_max_new_tokens,
                           device=c.device, template_kwargs=c.judge_chat_template_kwargs)
    return judge, FailureCounter()


def build_prm(c: TrainConfig):
    """The PRM whose step values become process rewards (None unless process_reward=prm)."""
    if c.process_reward != "prm":
        return None
    from rrm.prm import PRMScorer

    return PRMScorer(c.prm_model, batch_size=c.micro_batch_size, device=c.device,
                     max_seq_len=c.max_tokens + 4096)


def build_env_and_tasks(c: TrainConfig):
    """The environment, offering ``c.tools`` (:func:`reagent.envs.with_tools`), and its
    training tasks."""
    from reagent.envs import with_tools

    env, tasks = _env_and_tasks(c)
    return with_tools(env, c.tools), tasks


def _env_and_tasks(c: TrainConfig):
    """Benchmarks (math, qa) load through :func:`reagent.tasksets.setup_benchmark`, which
    maps each benchmark to its environment, tools and corpus (as ``reagent eval`` does)."""
    if c.env == "toy":
        from reagent.envs.toy import ToyEnv

        env = ToyEnv(seed=c.env_seed)
        return env, env.tasks("train", c.train_tasks)
    if not c.benchmark:
        raise ValueError(f"env={c.env} trains on a benchmark's tasks: set benchmark=NAME "
                         "(and train_data=FILE for your own training file of that format)")
    from reagent.tasksets import setup_benchmark

    setup = setup_benchmark(c.benchmark, data=c.train_data, limit=c.train_tasks, split="train",
                            env_seed=c.env_seed)
    return setup.env, setup.tasks
