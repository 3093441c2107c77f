"""GRPO advantages and policy losses as pure tensor functions.

Shapes: ``N`` trajectories (``B`` prompts x ``G`` rollouts, or ``2G`` for Reagent-U),
``L`` tokens. Token tensors are ``(N, L)`` aligned with a ``(N, L)`` float mask that
is 1 on the policy's own tokens. Chosen by name through plain dicts, so a config
typo gets an error that lists the valid names.

* Advantage (GRPO, Shao et al. 2024): A_i = (R_i - mean_g R) / (std_g R + eps) over
  the rollouts of one group g; ``dr_grpo`` (Liu et al. 2025) drops the division by
  the std. Groups whose rewards are all equal carry no signal and are reported so
  the trainer can drop them (rejection sampling, as in DAPO).
* Policy loss: PPO-clip with decoupled bounds (DAPO "clip-higher"):
  l_t = max(-A r_t, -A clip(r_t, 1 - eps_low, 1 + eps_high)), r_t = exp(logp - logp_old).
* Aggregation: ``token-mean`` averages over all tokens of the batch (DAPO);
  ``seq-mean-token-mean`` averages tokens within each sequence, then sequences
  (the original GRPO).
* KL: the k3 estimator exp(ref - logp) - (ref - logp) - 1 (Schulman 2020), >= 0.
"""

from __future__ import annotations

import torch


def group_stats(rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-trajectory group mean, group std (unbiased=False) and group size. Shapes (N,)."""
    _, inverse = torch.unique(group_ids, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if inverse.numel() else 0
    count = torch.zeros(n_groups, dtype=rewards.dtype).scatter_add_(0, inverse, torch.ones_like(rewards))
    total = torch.zeros(n_groups, dtype=rewards.dtype).scatter_add_(0, inverse, rewards)
    mean = total / count
    sq = torch.zeros(n_groups, dtype=rewards.dtype).scatter_add_(0, inverse, (rewards - mean[inverse]) ** 2)
    std = (sq / count).sqrt()
    return mean[inverse], std[inverse], count[inverse]


def grpo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(R - group mean) / (group std + eps). rewards, group_ids: (N,) -> (N,)."""
    mean, std, _ = group_stats(rewards, group_ids)
    return (rewards - mean) / (std + eps)


def dr_grpo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """R - group mean (Dr. GRPO: no std normalisation). (N,) -> (N,)."""
    mean, _, _ = group_stats(rewards, group_ids)
    return rewards - mean


ADVANTAGES = {"grpo": grpo_advantages, "dr_grpo": dr_grpo_advantages}


def degenerate_groups(rewards: torch.Tensor, group_ids: torch.Tensor, tol: float = 1e-8) -> torch.Tensor:
    """(N,) bool: True where the trajectory's group has all-equal rewards (no learning signal)."""
    _, std, _ = group_stats(rewards, group_ids)
    return std <= tol


def compute_advantages(name: str, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    if name not in ADVANTAGES:
        raise ValueError(f"unknown advantage estimator '{name}'; valid: {', '.join(ADVANTAGES)}")
    return ADVANTAGES[name](rewards, group_ids)


def token_mean(values: torch.Tensor, mask: torch.Tensor, normalizer: float | None = None) -> torch.Tensor:
    """Sum over masked tokens / number of masked tokens (or ``normalizer``, the whole batch's
    token count when the batch is split into micro-batches). (N, L) -> scalar."""
    denom = normalizer if normalizer is not None else mask.sum().clamp(min=1.0)
    return (values * mask).sum() / denom


def seq_mean_token_mean(values: torch.Tensor, mask: torch.Tensor, normalizer: float | None = None) -> torch.Tensor:
    """Mean over sequences of each sequence's token mean (``normalizer``: total sequences). -> scalar."""
    per_seq = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    has_tokens = (mask.sum(-1) > 0).float()
    denom = normalizer if normalizer is not None else has_tokens.sum().clamp(min=1.0)
    return (per_seq * has_tokens).sum() / denom


AGGREGATIONS = {"token-mean": token_mean, "seq-mean-token-mean": seq_mean_token_mean}


def aggregate(name: str, values: torch.Tensor, mask: torch.Tensor, normalizer: float | None = None) -> torch.Tensor:
    if name not in AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation '{name}'; valid: {', '.join(AGGREGATIONS)}")
    return AGGREGATIONS[name](values, mask, normalizer)


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    agg: str = "token-mean",
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip loss. logp, old_logp, mask: (N, L); advantages: (N,) or (N, L).

    Returns the aggregated loss and stats (clip fraction over masked tokens, mean ratio).
    """
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    ratio = torch.exp(logp - old_logp)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    loss = aggregate(agg, per_token, mask, normalizer)
    with torch.no_grad():
        n = mask.sum().clamp(min=1.0)
        stats = {
            "clip_frac": float(((clipped > unclipped).float() * mask).sum() / n),
            "ratio_mean": float((ratio * mask).sum() / n),
        }
    return loss, stats


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference), >= 0. (N, L) -> (N, L)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0,
                   entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each next token and the entropy of each next-token distribution.

    logits: (N, L, V) for inputs (N, L). Returns (N, L) tensors aligned with
    ``input_ids`` (position t holds the prediction of token t; position 0 is 0).
    Both are of ``softmax(logits / temperature)``, the distribution the rollout sampled
    from, so the PPO ratio and the KL compare like with like (as verl and TRL do).
    ``entropy_grad=False`` computes the entropy under ``no_grad`` (a metric only, when
    its coefficient is 0: the full-vocabulary product is then never kept for backward).
    """
    logp, entropy = target_logprobs(logits[:, :-1], input_ids[:, 1:], temperature, entropy_grad)
    pad = torch.zeros_like(logp[:, :1])
    return torch.cat([pad, logp], dim=1), torch.cat([pad, entropy], dim=1)


def target_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                    entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of ``targets`` and entropy under ``softmax(logits / temperature)``.

    logits: (..., V), targets: (...) -> two (...) tensors (no shifting: row k of the
    logits predicts ``targets[k]``). See :func:`token_logprobs` for ``entropy_grad``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}: log-probs need a temperature > 0")
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy
