"""TD errors, GAE and the AgentPRM losses on hand-worked trajectories."""

from __future__ import annotations

import pytest
import torch

from rrm.prm_losses import (
    agentprm_loss,
    gae_advantages,
    last_step_mask,
    progress_loss,
    promise_loss,
    sparse_rewards,
    td_errors,
    td_gae_targets,
)


def _loop_gae(rewards, values, gamma, lam):
    """Reference: the textbook backward recursion A_t = delta_t + gamma*lam*A_{t+1}, one trajectory."""
    n = len(rewards)
    adv, running = [0.0] * n, 0.0
    for t in reversed(range(n)):
        v_next = values[t + 1] if t + 1 < n else 0.0
        delta = rewards[t] + gamma * v_next - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv


def test_hand_worked_three_step_trajectory():
    # Three steps, outcome 1, values v = [0.5, 0.6, 0.8], gamma = 0.9, lam = 0.5.
    # rewards r = [0, 0, 1]
    # delta_0 = 0 + 0.9*0.6 - 0.5 = 0.04
    # delta_1 = 0 + 0.9*0.8 - 0.6 = 0.12
    # delta_2 = 1 + 0.9*0   - 0.8 = 0.2
    # A_2 = 0.2;  A_1 = 0.12 + 0.45*0.2 = 0.21;  A_0 = 0.04 + 0.45*0.21 = 0.1345
    # Q = A + v = [0.6345, 0.81, 1.0]  (the last target is the outcome)
    v = torch.tensor([[0.5, 0.6, 0.8]])
    mask = torch.ones(1, 3)
    q, a = td_gae_targets(torch.tensor([1.0]), v, mask, gamma=0.9, lam=0.5)
    assert td_errors(sparse_rewards(torch.tensor([1.0]), mask), v, mask, 0.9).tolist()[0] == pytest.approx(
        [0.04, 0.12, 0.2])
    assert a.tolist()[0] == pytest.approx([0.1345, 0.21, 0.2])
    assert q.tolist()[0] == pytest.approx([0.6345, 0.81, 1.0])


def test_bootstrap_without_a_prm_is_the_discounted_outcome():
    # v = 0, lam = 1: delta = r, A_t = gamma^(n-1-t) * outcome; Q = A.
    # gamma = 0.5, 3 steps, outcome 1: Q = [0.25, 0.5, 1.0]; outcome 0 gives zeros.
    mask = torch.ones(2, 3)
    q, _ = td_gae_targets(torch.tensor([1.0, 0.0]), torch.zeros(2, 3), mask, gamma=0.5, lam=1.0)
    assert q.tolist() == [[0.25, 0.5, 1.0], [0.0, 0.0, 0.0]]


def test_padded_rows_match_the_loop_and_padding_stays_zero():
    torch.manual_seed(0)
    lengths = [5, 2, 1, 4]
    mask = torch.tensor([[1.0] * n + [0.0] * (5 - n) for n in lengths])
    values = torch.rand(4, 5)
    outcomes = torch.tensor([1.0, 0.0, 1.0, 0.5])
    for gamma, lam in [(1.0, 1.0), (0.95, 0.9), (0.8, 0.0)]:
        rewards = sparse_rewards(outcomes, mask)
        adv = gae_advantages(rewards, values, mask, gamma, lam)
        for i, n in enumerate(lengths):
            ref = _loop_gae(rewards[i, :n].tolist(), values[i, :n].tolist(), gamma, lam)
            assert adv[i, :n].tolist() == pytest.approx(ref, abs=1e-9)
            assert adv[i, n:].abs().sum() == 0
        q, _ = td_gae_targets(outcomes, values, mask, gamma, lam)
        # The last real step's target is always the outcome.
        assert (q * last_step_mask(mask)).sum(1).tolist() == pytest.approx(outcomes.tolist())


def test_progress_and_promise_losses_on_hand_values():
    # pred q = [0.2, 0.5, 0.9], targets Q = [0.3, 0.5, 1.0], A = [9, 0.25, 0.5] (A_0 unused), gamma = 1.
    # promise = ((-0.1)^2 + 0 + (-0.1)^2) / 3 = 0.02/3
    # progress: t=1: (0.5-0.2) - 0.25 = 0.05; t=2: (0.9-0.5) - 0.5 = -0.1 -> (0.0025 + 0.01)/2 = 0.00625
    pred = torch.tensor([[0.2, 0.5, 0.9]])
    mask = torch.ones(1, 3)
    q_t = torch.tensor([[0.3, 0.5, 1.0]])
    a_t = torch.tensor([[9.0, 0.25, 0.5]])
    assert promise_loss(pred, q_t, mask).item() == pytest.approx(0.02 / 3)
    assert progress_loss(pred, a_t, mask, gamma=1.0).item() == pytest.approx(0.00625)
    # gamma = 0.5 doubles the previous value: t=1: 0.5 - 0.4 - 0.25 = -0.15; t=2: 0.9 - 1.0 - 0.5 = -0.6
    assert progress_loss(pred, a_t, mask, gamma=0.5).item() == pytest.approx((0.0225 + 0.36) / 2)
    total, parts = agentprm_loss(pred, q_t, a_t, mask, beta=2.0, gamma=1.0)
    assert total.item() == pytest.approx(0.02 / 3 + 2 * 0.00625)
    assert parts["loss/progress"] == pytest.approx(0.00625)
    # Padding is ignored: a padded step with a wild value changes nothing.
    pred_p = torch.tensor([[0.2, 0.5, 0.9, 50.0]])
    mask_p = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    pad = lambda t: torch.cat([t, torch.zeros(1, 1)], 1)  # noqa: E731
    assert progress_loss(pred_p, pad(a_t), mask_p, 1.0).item() == pytest.approx(0.00625)
    assert promise_loss(pred_p, pad(q_t), mask_p).item() == pytest.approx(0.02 / 3)
