"""Sizes and step counts of the quickstart's budgets.

``default`` is meant for 15 minutes on 2 CPU cores; one seed took 12.7-13.2 min on the
dev machine (issue 8). SFT gets the largest share and runs alone: a ~1M-parameter
policy learns to copy account names off the question after a few hundred steps, but
to copy balances out of tool results only after ~750-1,700 steps of 32, and where in
that range is chaotic (at 1,500 steps one seed in three was still before it, at 0.07
held-out accuracy; at 1,800 the three seeds reached 0.19, 0.46 and 0.21). 12,000
demonstrations seen ~5 times each got there sooner than 3,000 seen 16 times (the
model memorises a small set instead). A tenth of the demonstrations show a critiqued
first attempt and a clean revision, so Reagent-C and Reagent-U revise from a context
the policy has seen. The variants then get equal RL steps. ``smoke`` exercises every
stage in well under a minute and checks structure, not numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    policy_size: str
    judge_size: str
    demos: int  # demonstration episodes for SFT
    sft_steps: int
    sft_batch: int
    sft_lr: float
    judge_traces: int  # training tasks rolled out by the SFT policy for judge data
    judge_n: int  # rollouts per task for judge data
    judge_epochs: int
    judge_max_examples: int
    judge_eval_tasks: int  # held-out tasks for the judge-quality report
    rl_steps: int
    prompts_per_step: int
    group_size: int  # G for grpo and reagent-r; reagent-u uses G/2 initial + G/2 revised
    eval_tasks: int
    eval_k: int
    max_tokens: int = 160
    max_new_tokens: int = 64
    max_turns: int = 5
    judge_tokens: int = 192  # token limit of one judge verdict
    flaw_rate: float = 0.2  # share of demonstrations with one deliberate flaw
    revision_rate: float = 0.1  # share of demonstrations that revise a first attempt after its critique
    sft_val_fraction: float = 0.0125  # of demo tasks, for SFT's validation loss (150 of 12,000)
    judge_rl_steps: int = 0  # judge RL (train-rrm-rl) steps after judge SFT; 0: no RL stage
    judge_rl_lr: float = 1e-4  # learning rate of the judge RL stage
    revise_below: float = 0.9  # Reagent-C revises only attempts the judge scored below this (with a named flaw)


BUDGETS = {
    "smoke": Budget(policy_size="nano", judge_size="nano", demos=64, sft_steps=4, sft_batch=16, sft_lr=3e-3,
                    judge_traces=8, judge_n=2, judge_epochs=1, judge_max_examples=32, judge_eval_tasks=4,
                    rl_steps=2, prompts_per_step=2, group_size=2, eval_tasks=4, eval_k=2,
                    max_tokens=48, max_new_tokens=24, max_turns=3, judge_tokens=32),
    "default": Budget(policy_size="micro", judge_size="micro", demos=12000, sft_steps=1800, sft_batch=32, sft_lr=3e-3,
                      judge_traces=160, judge_n=4, judge_epochs=4, judge_max_examples=640,
                      judge_eval_tasks=48, rl_steps=8, prompts_per_step=8, group_size=8,
                      eval_tasks=80, eval_k=2, judge_tokens=192),
}
