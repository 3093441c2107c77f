"""Logits at loss positions only (reagent/train/logprobs.py) give the plain path's loss and
gradients on a real tiny model; the trainer's update at mu = 1 (old log-probs = current
detached, length-bucketed micro-batches) gives the plain full-batch update's gradients.

Tolerance: fp32 on CPU; the sliced LM head multiplies fewer rows, so sums may be reordered:
rtol 1e-4 and atol 1e-6 (observed differences are ~1e-7 or exactly 0).
"""

import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from reagent.train.algos import clipped_policy_loss, token_mean
from reagent.train.batch import collate, length_buckets
from reagent.train.logprobs import kept_positions, sequence_logprobs

RTOL, ATOL = 1e-4, 1e-6


def ragged_batch(vocab: int, seed: int = 0):
    """Rows of different lengths (right-padded), prompts of different lengths and a masked
    tool span in the middle of one response, as a multi-turn batch has."""
    g = torch.Generator().manual_seed(seed)
    lengths, prompts = [23, 17, 30, 9], [8, 5, 12, 4]
    length = max(lengths)
    ids = torch.randint(3, vocab, (4, length), generator=g)
    attn = torch.zeros(4, length, dtype=torch.long)
    mask = torch.zeros(4, length)
    for i, (n, p) in enumerate(zip(lengths, prompts)):
        attn[i, :n] = 1
        mask[i, p:n] = 1.0
        ids[i, n:] = 0
    mask[2, 18:22] = 0.0  # a tool result inside the response
    adv = torch.tensor([1.0, -0.5, 0.7, -1.2])
    return ids, attn, mask, adv


def loss_and_grads(model, ids, attn, mask, adv, sliced: bool, entropy_coef: float, temperature: float):
    model.zero_grad()
    logp, ent = sequence_logprobs(model, ids, attn, mask if sliced else None, temperature=temperature,
                                  entropy_grad=entropy_coef != 0)
    with torch.no_grad():
        old = sequence_logprobs(model, ids, attn, None, temperature=temperature)[0]
    old = old + 0.05 * torch.sin(torch.arange(ids.numel()).reshape(ids.shape).float())  # ratio != 1
    loss, _ = clipped_policy_loss(logp, old, adv, mask, 0.2, 0.28, "token-mean", float(mask.sum()))
    loss = loss - entropy_coef * token_mean(ent, mask, float(mask.sum()))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, logp.detach() * mask


@pytest.mark.parametrize("entropy_coef,temperature", [(0.0, 1.0), (0.01, 0.7)])
def test_sliced_logits_give_the_plain_loss_and_gradients(tiny_model_dir, entropy_coef, temperature):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ids, attn, mask, adv = ragged_batch(model.config.vocab_size)
    plain = loss_and_grads(model, ids, attn, mask, adv, False, entropy_coef, temperature)
    fast = loss_and_grads(model, ids, attn, mask, adv, True, entropy_coef, temperature)
    torch.testing.assert_close(fast[0], plain[0], rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(fast[2], plain[2], rtol=RTOL, atol=ATOL)
    for name, g in plain[1].items():
        assert g.abs().sum() > 0 or "bias" in name
        torch.testing.assert_close(fast[1][name], g, rtol=RTOL, atol=ATOL, msg=name)


def test_tied_embeddings_and_a_model_without_logits_to_keep():
    torch.manual_seed(1)
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(cfg)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    ids, attn, mask, adv = ragged_batch(64, seed=3)
    plain = loss_and_grads(model, ids, attn, mask, adv, False, 0.0, 1.0)
    fast = loss_and_grads(model, ids, attn, mask, adv, True, 0.0, 1.0)
    torch.testing.assert_close(fast[1]["model.embed_tokens.weight"], plain[1]["model.embed_tokens.weight"],
                               rtol=RTOL, atol=ATOL)

    class NoKeep(torch.nn.Module):  # a forward that rejects logits_to_keep: the fallback path
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    fallback = loss_and_grads(NoKeep(model), ids, attn, mask, adv, True, 0.0, 1.0)
    torch.testing.assert_close(fallback[0], plain[0], rtol=RTOL, atol=ATOL)


def test_an_all_masked_micro_batch_still_backwards_with_zero_gradient(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ids = torch.zeros((1, 2), dtype=torch.long)
    mask = torch.zeros((1, 2))
    assert kept_positions(mask).numel() == 0
    logp, _ = sequence_logprobs(model, ids, torch.ones_like(ids), mask)
    loss, _ = clipped_policy_loss(logp, logp.detach(), torch.zeros(1), mask)
    loss.backward()  # a graph exists (ZeRO-3/DDP need every rank to backward)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_length_buckets_group_similar_lengths_and_cover_every_row():
    buckets = length_buckets([5, 40, 7, 38, 6, 41], 2)
    assert sorted(i for b in buckets for i in b) == list(range(6))
    assert buckets == [[0, 4], [2, 3], [1, 5]]


def test_update_at_mu_1_matches_the_plain_full_batch_gradient(tmp_path, tiny_model_dir):
    """The trainer's fast update (no old-log-prob pass, sliced logits, buckets of 3 rows) takes
    the same SGD step as the plain path: one full-batch forward, old log-probs recomputed."""
    from reagent.train.config import TrainConfig
    from reagent.train.trainer import GRPOTrainer
    from tests.scripted import ScriptedBackend
    from tests.test_agent import solver

    policy = shutil.copytree(tiny_model_dir, tmp_path / "policy")
    trainer = GRPOTrainer(TrainConfig(model=str(policy), output_dir=str(tmp_path / "run"), prompts_per_step=2,
                                      group_size=4, max_turns=3, max_tokens=96, max_new_tokens=32,
                                      micro_batch_size=3, train_tasks=8, device="cpu", max_grad_norm=1e9))
    trainer.loop.backend = ScriptedBackend(trainer.tokenizer, solver)
    trajs = trainer.rollout([s for s in _specs(trainer)])
    assert len({len(t.token_ids) for t in trajs}) > 1  # ragged: buckets and padding matter
    adv = torch.linspace(-1.0, 1.0, len(trajs))
    reference = AutoModelForCausalLM.from_pretrained(policy, dtype=torch.float32)
    batch = collate(trajs, adv, trainer.tokenizer.pad_token_id)
    with torch.no_grad():
        old = sequence_logprobs(reference, batch.input_ids, batch.attention_mask, None)[0]
    logp = sequence_logprobs(reference, batch.input_ids, batch.attention_mask, None)[0]
    loss, _ = clipped_policy_loss(logp, old, adv, batch.loss_mask, normalizer=float(batch.loss_mask.sum()))
    loss.backward()
    lr = 0.5
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=lr)
    trainer._fill_old_logprobs = lambda *a, **k: pytest.fail("mu=1 must not recompute old log-probs")
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    stats = trainer.update(trajs, adv)
    assert stats["actor/micro_batches"] == 3 and stats["memory/peak_rss_gb"] > 0
    for (name, p), (_, q) in zip(trainer.model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close((before[name] - p.detach()) / lr, q.grad, rtol=RTOL, atol=ATOL, msg=name)


def _specs(trainer):
    from reagent.agent import EpisodeSpec
    from reagent.envs.base import initial_messages

    tasks = trainer.next_prompts()
    return [EpisodeSpec(task=t, messages=initial_messages(trainer.env, t), id=f"{t.id}#{k}")
            for t in tasks for k in range(trainer.c.group_size)]


def test_mu_2_and_kl_fill_old_and_reference_log_probs_once(tmp_path, tiny_model_dir):
    """mu > 1 recomputes old log-probs before the first step (so step 2 has ratios != 1); a
    KL term gets the reference's; both are computed once per batch, not per step."""
    from reagent.train.config import TrainConfig
    from reagent.train.trainer import GRPOTrainer
    from tests.scripted import ScriptedBackend
    from tests.test_agent import solver

    policy = shutil.copytree(tiny_model_dir, tmp_path / "policy")
    trainer = GRPOTrainer(TrainConfig(model=str(policy), output_dir=str(tmp_path / "run"), prompts_per_step=2,
                                      group_size=2, max_turns=3, max_tokens=96, max_new_tokens=32, lr=1e-2,
                                      micro_batch_size=2, train_tasks=8, device="cpu", updates_per_batch=2,
                                      kl_coef=0.1))
    trainer.loop.backend = ScriptedBackend(trainer.tokenizer, solver)
    trajs = trainer.rollout(_specs(trainer))
    fills = []
    fill = trainer._fill_old_logprobs
    trainer._fill_old_logprobs = lambda micro, old: fills.append((len(micro), old)) or fill(micro, old)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    stats = trainer.update(trajs, torch.tensor([1.0, -1.0, 0.5, -0.5]))
    assert fills == [(2, True)]
    assert stats["actor/kl"] > 0  # averaged over the two steps: the second is off the reference
    assert all(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())
