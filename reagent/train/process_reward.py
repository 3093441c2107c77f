"""Step rewards from a PRM as token-level advantages (``process_reward: prm`` in ``reagent train``).

Variant (the outcome + process advantage sum of PRIME, Cui et al. 2025, with the
AgentPRM step values of Xi et al. 2025 / Choudhury 2025 as the process reward). For
trajectory i of prompt group g with agent steps k = 0..K_i-1 (one step = one assistant
turn = one run of policy tokens in the loss mask, :mod:`reagent.steps`) and PRM step
values Q_{i,k} (the head's estimate of the final outcome after step k):

* process reward, ``prm_reward: promise``: p_{i,k} = Q_{i,k};
  ``prm_reward: progress``: p_{i,k} = Q_{i,k} - Q_{i,k-1}, with Q_{i,-1} = the group's
  mean of Q_{j,0} (the value of the prompt, estimated by the group; gamma = 1);
* process advantage, normalised over every step of every scored trajectory of the
  group: P_{i,k} = (p_{i,k} - mean_g(p)) / (std_g(p) + 1e-6) (a group with one scored
  step, or all-equal p, gets P = 0);
* token advantage for every policy token t of step k:
  A_{i,t} = A^out_i + alpha * P_{i,k}, where A^out_i is the trainer's group-normalised
  outcome advantage ((R_i - mean_g R) / (std_g R + eps), or dr_grpo's) and alpha is
  ``process_reward_coef``. Tokens outside the loss mask get 0 (they are masked anyway).

A trajectory the PRM cannot score (too long, or its step count differs from its runs of
policy tokens) keeps A^out_i on every token and is counted
(``process/unscored``): a missing process reward is never a zero process reward.

Unlike PRIME we use each step's own process advantage, not a discounted sum of the
later ones: a promise value already estimates the final outcome (a return), and the
progress rewards of later steps telescope to Q_last - Q_k.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

PRM_REWARDS = ("promise", "progress")


def policy_runs(loss_mask: Sequence[int]) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of policy tokens (mask 1): one per assistant turn."""
    runs, start = [], None
    for i, m in enumerate(loss_mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(loss_mask)))
    return runs


def process_rewards(values: list[list[float] | None], groups: Sequence[int], kind: str) -> list[list[float] | None]:
    """p_{i,k} from the step values Q_{i,k} (see module doc); None stays None."""
    if kind not in PRM_REWARDS:
        raise ValueError(f"prm_reward={kind!r} is not one of {', '.join(PRM_REWARDS)}")
    if kind == "promise":
        return [None if v is None else list(v) for v in values]
    first: dict[int, list[float]] = {}
    for v, g in zip(values, groups):
        if v:
            first.setdefault(g, []).append(v[0])
    out: list[list[float] | None] = []
    for v, g in zip(values, groups):
        if not v:
            out.append(None)
            continue
        prev = [sum(first[g]) / len(first[g])] + list(v[:-1])
        out.append([q - p for q, p in zip(v, prev)])
    return out


def normalise_in_groups(rewards: list[list[float] | None], groups: Sequence[int],
                        eps: float = 1e-6) -> list[list[float] | None]:
    """P_{i,k}: process rewards standardised over all steps of the group's scored trajectories."""
    pooled: dict[int, list[float]] = {}
    for r, g in zip(rewards, groups):
        if r:
            pooled.setdefault(g, []).extend(r)
    stats = {}
    for g, xs in pooled.items():
        t = torch.tensor(xs, dtype=torch.float64)
        std = float(t.std(unbiased=False)) if len(xs) > 1 else 0.0
        stats[g] = (float(t.mean()), std)
    out: list[list[float] | None] = []
    for r, g in zip(rewards, groups):
        if not r:
            out.append(None)
            continue
        mean, std = stats[g]
        out.append([0.0 if std < eps else (x - mean) / (std + eps) for x in r])
    return out


def token_advantages(outcome_adv: torch.Tensor, step_adv: list[list[float] | None],
                     loss_masks: list[Sequence[int]], coef: float) -> tuple[torch.Tensor, dict]:
    """``(N, L)`` advantages, L = the longest mask: A^out_i + coef * P_{i,k} on step k's tokens.

    ``outcome_adv``: ``(N,)``; ``step_adv[i]``: one value per run of policy tokens of
    ``loss_masks[i]`` (else that row keeps A^out_i only, counted as unscored).
    """
    n, length = len(loss_masks), max((len(m) for m in loss_masks), default=0)
    adv = outcome_adv.detach().to(torch.float32).reshape(n, 1).repeat(1, length)
    unscored = 0
    for i, (mask, steps) in enumerate(zip(loss_masks, step_adv)):
        adv[i, len(mask):] = 0.0
        runs = policy_runs(mask)
        if steps is None or len(steps) != len(runs):
            unscored += 1
            continue
        for (start, end), p in zip(runs, steps):
            adv[i, start:end] += coef * p
    return adv, {"process/unscored": unscored, "process/scored": n - unscored}


def prm_advantages(scorer, trajs: list, outcome_adv: torch.Tensor, groups: Sequence[int], kind: str,
                   coef: float) -> tuple[torch.Tensor, dict]:
    """The whole path: PRM step values of ``trajs`` -> p -> P -> ``(N, L)`` token advantages.

    ``scorer`` has ``score_steps(trajs) -> list[list[float] | None]`` (``rrm.prm.PRMScorer``).
    """
    values = scorer.score_steps(trajs)
    rewards = process_rewards(values, groups, kind)
    adv, stats = token_advantages(outcome_adv, normalise_in_groups(rewards, groups),
                                  [t.loss_mask for t in trajs], coef)
    flat = [x for r in rewards if r for x in r]
    stats["process/reward_mean"] = sum(flat) / len(flat) if flat else float("nan")
    return adv, stats
