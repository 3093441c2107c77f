"""GRPO advantages and losses against hand-computed values (arithmetic in comments)."""

import math

import pytest
import torch

from reagent.train.algos import (
    aggregate,
    clipped_policy_loss,
    compute_advantages,
    degenerate_groups,
    kl_k3,
    token_logprobs,
)


def test_grpo_advantages_by_hand():
    # group 0: rewards 1, 0 -> mean 0.5, std 0.5 -> +1, -1
    # group 1: rewards 1, 1, 1 -> std 0 -> 0 (degenerate)
    # group 2: rewards 0.3, 1.3 -> mean 0.8, std 0.5 -> -1, +1
    r = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.3, 1.3])
    g = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    adv = compute_advantages("grpo", r, g)
    assert torch.allclose(adv, torch.tensor([1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 1.0]), atol=1e-4)
    dr = compute_advantages("dr_grpo", r, g)  # no std: r - mean
    assert torch.allclose(dr, torch.tensor([0.5, -0.5, 0.0, 0.0, 0.0, -0.5, 0.5]), atol=1e-6)
    assert degenerate_groups(r, g).tolist() == [False, False, True, True, True, False, False]
    with pytest.raises(ValueError, match="valid: grpo, dr_grpo"):
        compute_advantages("ppo", r, g)


def test_pooled_versus_per_stage_groups():
    # Reagent-U: prompt 0 has initial rollouts (0, 0) and revised rollouts (1, 1).
    r = torch.tensor([0.0, 0.0, 1.0, 1.0])
    pooled = compute_advantages("grpo", r, torch.tensor([0, 0, 0, 0]))
    # pooled: mean 0.5, std 0.5 -> -1, -1, +1, +1: revisions that fixed the answer are reinforced
    assert torch.allclose(pooled, torch.tensor([-1.0, -1.0, 1.0, 1.0]), atol=1e-4)
    per_stage = compute_advantages("grpo", r, torch.tensor([0, 0, 1, 1]))
    # per stage: each stage's group is constant -> all zero
    assert torch.allclose(per_stage, torch.zeros(4), atol=1e-6)


def test_vectorised_advantages_match_a_loop():
    torch.manual_seed(0)
    r = torch.rand(24)
    g = torch.randint(0, 5, (24,))
    adv = compute_advantages("grpo", r, g)
    for i in range(24):
        members = r[g == g[i]]
        expected = (r[i] - members.mean()) / (members.std(unbiased=False) + 1e-6)
        assert math.isclose(float(adv[i]), float(expected), rel_tol=1e-4, abs_tol=1e-5)


def test_clipped_loss_by_hand():
    # one sequence, two tokens; A = +1.
    # token 0: ratio e^0.5 = 1.6487 > 1.28 -> clipped term -1.28 is larger than -1.6487 -> -1.28
    # token 1: ratio e^-0.5 = 0.6065 -> unclipped -0.6065 vs clipped -0.8 -> max = -0.6065
    logp = torch.tensor([[0.5, -0.5]])
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    loss, stats = clipped_policy_loss(logp, old, torch.tensor([1.0]), mask, 0.2, 0.28)
    assert math.isclose(float(loss), (-1.28 - math.exp(-0.5)) / 2, rel_tol=1e-5)
    assert stats["clip_frac"] == 0.5
    # A = -1: token 0 -> max(1.6487, 1.28) = 1.6487; token 1 -> max(0.6065, 0.8) = 0.8
    loss, _ = clipped_policy_loss(logp, old, torch.tensor([-1.0]), mask, 0.2, 0.28)
    assert math.isclose(float(loss), (math.exp(0.5) + 0.8) / 2, rel_tol=1e-5)


def test_aggregations_by_hand():
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # token-mean: (1+2+3+4)/4 = 2.5 ; seq-mean-token-mean: (2 + 4)/2 = 3
    assert float(aggregate("token-mean", v, m)) == 2.5
    assert float(aggregate("seq-mean-token-mean", v, m)) == 3.0
    # with a batch-wide normalizer (micro-batching): sum / 8 tokens
    assert float(aggregate("token-mean", v, m, normalizer=8.0)) == 10 / 8
    with pytest.raises(ValueError, match="token-mean"):
        aggregate("sum", v, m)


def test_kl_k3_is_zero_at_equality_and_positive_elsewhere():
    lp = torch.tensor([[-1.0, -2.0]])
    assert torch.allclose(kl_k3(lp, lp), torch.zeros(1, 2))
    # delta = 0.5: e^0.5 - 0.5 - 1 = 0.1487
    assert math.isclose(float(kl_k3(torch.tensor([[0.0]]), torch.tensor([[0.5]]))), math.exp(0.5) - 1.5,
                        rel_tol=1e-5)


def test_token_logprobs_alignment():
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))
    ids = torch.tensor([[0, 1, 1]])
    logp, ent = token_logprobs(logits, ids)
    # position 1 is predicted from position 0: p(1) = 0.5; position 2 from position 1: p(1) = 0.1
    assert torch.allclose(logp, torch.log(torch.tensor([[1.0, 0.5, 0.1]])), atol=1e-6)
    assert math.isclose(float(ent[0, 1]), math.log(2), rel_tol=1e-5)


def test_token_logprobs_use_the_sampling_temperature():
    # logits (2, 0) at T=2 become (1, 0): p(0) = e/(e+1) = 0.7311, the distribution sampled from
    logits = torch.tensor([[[2.0, 0.0], [2.0, 0.0]]])
    ids = torch.tensor([[0, 0]])
    logp, _ = token_logprobs(logits, ids, temperature=2.0)
    assert math.isclose(float(logp[0, 1]), math.log(math.e / (math.e + 1)), rel_tol=1e-6)
    logp1, _ = token_logprobs(logits, ids)  # T=1: e^2/(e^2+1) = 0.8808
    assert math.isclose(float(logp1[0, 1]), math.log(math.e ** 2 / (math.e ** 2 + 1)), rel_tol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(logits, ids, temperature=0.0)


def test_entropy_has_no_graph_when_it_is_not_in_the_loss():
    logits = torch.randn(2, 5, 7, requires_grad=True)
    ids = torch.randint(0, 7, (2, 5))
    logp, ent = token_logprobs(logits, ids, entropy_grad=False)
    assert logp.requires_grad and not ent.requires_grad
    _, ent_grad = token_logprobs(logits, ids)
    assert ent_grad.requires_grad
