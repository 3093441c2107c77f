"""Step-value targets and PRM losses as pure tensor functions (AgentPRM, Xi et al. 2025).

All tensors are per *step*, right-padded to ``(B, T)`` with ``mask`` (1 = a real
step). A trajectory of ``n`` steps has sparse rewards: ``r_t = 0`` for ``t < n-1`` and
``r_{n-1}`` = the outcome (:func:`sparse_rewards`).

**TD + GAE targets** (the paper's Sec. 3.2), with ``v_t`` the current PRM's value at
step t (its estimate of Q(s_t, a_t), used as V(s_t) on-policy) and ``v_n := 0``
(terminal)::

    delta_t = r_t + gamma * v_{t+1} - v_t
    A_t     = sum_{l>=0} (gamma * lam)^l * delta_{t+l}
    Q_t     = A_t + v_t

so the last step's target is the outcome (``Q_{n-1} = r_{n-1}``). **Bootstrap**
without a PRM: ``v = 0`` gives ``Q_t = (gamma*lam)^(n-1-t) * outcome``; with
``lam = 1`` that is the discounted outcome of the trajectory itself, i.e. a
one-rollout Monte-Carlo target, which a first PRM is trained on; later rounds label
with that PRM (``reagent label-steps --value-model``).

**Losses** (the paper's Eq. for L_AgentPRM = L_Q + beta * L_A):

* promise ``L_Q = mean_t (q_t - Q_t)^2`` over real steps;
* progress ``L_A = mean_{t>=1} ((q_t - q_{t-1} / gamma) - A_t)^2``: the model's own
  advantage of step t is its value now minus the state value before the step, and
  with ``r_{t-1} = 0`` that state value is ``V(s_t) = q_{t-1} / gamma``. Step 0 has no
  earlier value and is left out.

``beta = 0`` is the promise-only value model (PVM). The outcome-only ORM is the
promise loss with ``last_step_mask`` as the mask and the outcome as the target.
"""

from __future__ import annotations

import torch


def sparse_rewards(outcomes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` rewards: 0 everywhere except the outcome at each row's last real step."""
    return last_step_mask(mask) * outcomes.to(torch.float64).unsqueeze(1)


def last_step_mask(mask: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` float with 1 at each row's last real step (rows are right-padded)."""
    mask = mask.to(torch.float64)
    shifted = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    return mask * (1 - shifted)


def td_errors(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(B, T)`` ``delta_t = r_t + gamma * v_{t+1} - v_t``; ``v`` past the last real step is 0."""
    mask = mask.to(torch.float64)
    v = values.to(torch.float64) * mask
    v_next = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)
    return (rewards.to(torch.float64) + gamma * v_next - v) * mask


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
                   lam: float) -> torch.Tensor:
    """``(B, T)`` ``A_t = sum_l (gamma*lam)^l delta_{t+l}``, vectorised as one matrix product.

    ``W[t, s] = (gamma*lam)^(s-t)`` for ``s >= t`` (upper triangle), so ``A = delta @ W^T``.
    Padded steps have ``delta = 0`` and so add nothing.
    """
    delta = td_errors(rewards, values, mask, gamma)
    steps = delta.shape[1]
    idx = torch.arange(steps, dtype=torch.float64)
    power = idx.unsqueeze(0) - idx.unsqueeze(1)  # [t, s] = s - t
    weights = torch.where(power >= 0, (gamma * lam) ** power.clamp(min=0), torch.zeros_like(power))
    return (delta @ weights.T) * mask.to(torch.float64)


def td_gae_targets(outcomes: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
                   lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Q_hat, A_hat)``, each ``(B, T)``, for sparse-reward trajectories (see the module doc)."""
    rewards = sparse_rewards(outcomes, mask)
    adv = gae_advantages(rewards, values, mask, gamma, lam)
    return (adv + values.to(torch.float64)) * mask.to(torch.float64), adv


def promise_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of step values ``(B, T)`` over real steps."""
    mask = mask.to(pred.dtype)
    return ((pred - target.to(pred.dtype)) ** 2 * mask).sum() / mask.sum().clamp(min=1)


def progress_loss(pred: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean over steps t >= 1 of ``((q_t - q_{t-1}/gamma) - A_t)^2`` (see the module doc)."""
    if pred.shape[1] < 2:
        return pred.sum() * 0.0
    mask = mask.to(pred.dtype)
    pair = mask[:, 1:] * mask[:, :-1]
    progress = pred[:, 1:] - pred[:, :-1] / gamma
    err = (progress - advantages[:, 1:].to(pred.dtype)) ** 2
    return (err * pair).sum() / pair.sum().clamp(min=1)


def agentprm_loss(pred: torch.Tensor, q_targets: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                  beta: float, gamma: float) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_Q + beta * L_A`` and its parts, for logging under ``loss/promise``, ``loss/progress``."""
    promise = promise_loss(pred, q_targets, mask)
    progress = progress_loss(pred, advantages, mask, gamma) if beta else pred.sum() * 0.0
    total = promise + beta * progress
    return total, {"loss/promise": promise.item(), "loss/progress": progress.item()}
