"""Shared-prefix (cascade) attention and the judge's decode path built on it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reagent.generation import hf, shared_prefix
from reagent.generation.base import SamplingParams
from reagent.generation.hf import HFBackend, generate_tokens


class _Layer:
    layer_idx = 0


@pytest.mark.parametrize("q_len", [1, 3])
def test_attention_equals_sdpa_over_the_concatenated_prefix(q_len):
    """GQA (4 query heads on 2 kv heads), a padded row, q = 1 (decode) and q = 3 (causal):
    the same output as torch's sdpa over [prefix | own keys] with the prefix repeated per row."""
    g = torch.Generator().manual_seed(0)
    b, h, hkv, p, n, d = 3, 4, 2, 7, 5, 8
    query = torch.randn(b, h, q_len, d, generator=g)
    pk, pv = torch.randn(1, hkv, p, d, generator=g), torch.randn(1, hkv, p, d, generator=g)
    key, value = torch.randn(b, hkv, n, d, generator=g), torch.randn(b, hkv, n, d, generator=g)
    own = torch.ones(b, n, dtype=torch.bool)
    own[1, :2] = False  # row 1 is left-padded by two positions
    causal = torch.ones(q_len, n, dtype=torch.bool).tril(n - q_len)
    mask = causal[None, None] & own[:, None, None, :]
    prefix = shared_prefix.SharedPrefix([pk], [pv])
    out, _ = shared_prefix.attention(_Layer, query, key, value, mask, scaling=d ** -0.5, shared_prefix=prefix)

    full_k = torch.cat([pk.expand(b, -1, -1, -1), key], dim=2).repeat_interleave(h // hkv, dim=1)
    full_v = torch.cat([pv.expand(b, -1, -1, -1), value], dim=2).repeat_interleave(h // hkv, dim=1)
    full_mask = torch.cat([torch.ones(b, 1, q_len, p, dtype=torch.bool), mask], dim=-1)
    ref = F.scaled_dot_product_attention(query, full_k, full_v, attn_mask=full_mask).transpose(1, 2)
    assert out.shape == (b, q_len, h, d)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_attention_needs_the_prefix_and_no_dropout():
    x = torch.zeros(1, 2, 1, 4)
    with pytest.raises(ValueError, match="shared_prefix"):
        shared_prefix.attention(_Layer, x, x, x, None)
    prefix = shared_prefix.SharedPrefix([x], [x])
    with pytest.raises(ValueError, match="dropout"):
        shared_prefix.attention(_Layer, x, x, x, None, dropout=0.1, shared_prefix=prefix)


def _llama_gqa(tokenizer):
    """A random tiny Llama with grouped-query attention (4 heads on 2 kv heads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0, 1.0 if "embed" in name else 0.3)
    return model


@pytest.mark.parametrize("family", ["qwen2", "llama-gqa"])
def test_judge_path_equals_the_plain_path_and_restores_the_model(hf_backend, family):
    """A judge-shaped call -- a long shared prefix, more rows than one prefill bucket,
    suffixes of many lengths, duplicate rows, one row with its own limit -- decodes with the
    shared-prefix attention (the prefix read once per step) and gives the tokens, finish
    reasons and (close) log-probs of the path that prefills every whole prompt; the model's
    own attention implementation is back after the call."""
    tok = hf_backend.tokenizer
    model = hf_backend.model if family == "qwen2" else _llama_gqa(tok)
    assert shared_prefix.supported(model)
    system = tok("You judge agent trajectories. Think, critique, then score from 0 to 1. " * 3)["input_ids"]
    words = ["the", "ledger", "shows", "alpha", "beta", "gamma", "transfer", "balance", "total", "after", "calc"]
    suffixes = [tok(" ".join(words[: 1 + i % len(words)]) + f" {i}")["input_ids"] for i in range(2 * hf.PREFILL_ROWS + 3)]
    prompts = [system + s for s in suffixes] + [system + suffixes[4]] * 2
    limits = [12] * len(prompts)
    limits[3] = 5
    params = SamplingParams(max_new_tokens=12, temperature=0.0, logprobs=True, row_max_new_tokens=limits)
    plain = HFBackend(model, tok).generate(prompts, params)
    before = model.config._attn_implementation
    seen = []
    hook = model.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append((kw["input_ids"].shape, "shared_prefix" in kw, model.config._attn_implementation)),
        with_kwargs=True)
    try:
        cached = HFBackend(model, tok, prefix_cache=True).generate(prompts, params)
    finally:
        hook.remove()
    assert [g.token_ids for g in cached] == [g.token_ids for g in plain]
    assert [g.finish_reason for g in cached] == [g.finish_reason for g in plain]
    assert len(cached[3].token_ids) <= 5
    for a, b in zip(cached, plain):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    decode = [s for s in seen if s[0][1] == 1]
    assert decode and all(has and impl == shared_prefix.NAME for _, has, impl in decode)
    prefills = [s for s in seen if s[0][1] > 1][1:]  # after the prefix's own prefill
    assert len(prefills) == 3 and max(s[0][0] for s in prefills) <= hf.PREFILL_ROWS  # length buckets
    assert model.config._attn_implementation == before


def test_unsupported_models_keep_per_row_prefix_copies(hf_backend, monkeypatch):
    """A model the shared-prefix attention cannot serve (here: flagged as sliding-window)
    takes the per-row copy path, with the same tokens."""
    tok = hf_backend.tokenizer
    system = tok("You judge agent trajectories. Think, critique, then score from 0 to 1. " * 3)["input_ids"]
    prompts = [system + tok(t)["input_ids"] for t in ("a b", "c", "d e f g")]
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    monkeypatch.setattr(hf_backend.model.config, "use_sliding_window", True, raising=False)
    assert not shared_prefix.supported(hf_backend.model)
    seen = []
    hook = hf_backend.model.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append("shared_prefix" in kw), with_kwargs=True)
    try:
        copied = HFBackend(hf_backend.model, tok, prefix_cache=True).generate(prompts, params)
    finally:
        hook.remove()
    monkeypatch.undo()
    assert not any(seen)
    assert [g.token_ids for g in copied] == [g.token_ids for g in HFBackend(hf_backend.model, tok).generate(prompts, params)]


def test_greedy_generates_each_distinct_prompt_once(hf_backend):
    """Greedy decoding of identical prompts with equal limits is one row, fanned out to
    independent results; a copy with another limit is its own row."""
    tok = hf_backend.tokenizer
    a, b = tok("the ledger shows")["input_ids"], tok("calc 2 + 2")["input_ids"]
    rows = []
    hook = hf_backend.model.register_forward_pre_hook(
        lambda _m, _a, kw: rows.append(kw["input_ids"].shape[0]), with_kwargs=True)
    try:
        out = generate_tokens(hf_backend.model, tok, [a, b, a, a, b], SamplingParams(
            max_new_tokens=6, temperature=0.0, row_max_new_tokens=[6, 6, 6, 3, 6]))
    finally:
        hook.remove()
    # the prefill holds each prompt once anyway; the first decode step runs three rows,
    # a (6 tokens), b, a (3 tokens), not five
    assert rows[:2] == [2, 3]
    assert out[0].token_ids == out[2].token_ids and out[0] is not out[2]
    assert out[3].token_ids == out[0].token_ids[:3]
    assert out[1].token_ids == out[4].token_ids
    out[0].token_ids.append(-1)
    assert out[2].token_ids[-1] != -1


def test_transposed_cache_layout_from_buckets_behaves_like_a_dynamic_layer():
    """The judge's decode cache, laid out from two prefill buckets (prefix dropped, rows
    left-padded with zeros, keys stored transposed), hands attention the same keys and
    values as a DynamicLayer holding the padded tensors, through appends past the
    reservation, row selection and cropping."""
    from transformers import DynamicCache

    from reagent.generation.hf import _ReservedLayer

    g = torch.Generator().manual_seed(0)
    plen, width = 3, 5
    pieces, full_k, full_v = [], torch.zeros(3, 2, width, 4), torch.zeros(3, 2, width, 4)
    for rows, w in (([2, 0], 5), ([1], 2)):
        cache = DynamicCache()
        k, v = torch.randn(len(rows), 2, plen + w, 4, generator=g), torch.randn(len(rows), 2, plen + w, 4, generator=g)
        cache.update(k, v, layer_idx=0)
        pieces.append((rows, cache.layers[0]))
        full_k[rows, :, width - w:], full_v[rows, :, width - w:] = k[:, :, plen:], v[:, :, plen:]
    reserved = object.__new__(_ReservedLayer)
    reserved.__dict__.update(pieces[0][1].__dict__)
    reserved.lay_out(pieces, plen, 3, width, width + 2)
    plain = DynamicCache()
    plain.update(full_k, full_v, layer_idx=0)
    plain = plain.layers[0]
    assert torch.equal(reserved.keys, plain.keys) and torch.equal(reserved.values, plain.values)
    for n in (1, 1, 2):  # past the reservation of 2 more positions
        step = (torch.randn(3, 2, n, 4, generator=g), torch.randn(3, 2, n, 4, generator=g))
        a, b = plain.update(*step), reserved.update(*step)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    idx = torch.tensor([2, 0])
    plain.batch_select_indices(idx)
    reserved.batch_select_indices(idx)
    assert torch.equal(reserved.keys, plain.keys) and torch.equal(reserved.values, plain.values)
    reserved.crop(-2)
    assert torch.equal(reserved.keys, plain.keys[:, :, :-2])
