"""HFBackend on CPU with a tiny random model: batching, sampling, stopping, logprobs."""

from __future__ import annotations

import re

import pytest
import torch

from reagent.generation.base import SamplingParams
from reagent.generation.hf import HFBackend, generate_tokens, sample_next

GREEDY = SamplingParams(max_new_tokens=12, temperature=0.0)
TEXTS = ["hello", "The balance of account alpha is", "calc 1 + 2",
         "What is the total of the ledger accounts after the transfer?", "x"]


@pytest.fixture(scope="module")
def prompts(hf_backend):
    ids = [hf_backend.tokenizer(t)["input_ids"] for t in TEXTS]
    assert len({len(p) for p in ids}) >= 4  # really different lengths
    return ids


def test_batched_left_padded_equals_one_at_a_time(hf_backend, prompts):
    singles = [hf_backend.generate([p], GREEDY)[0] for p in prompts]
    batched = hf_backend.generate(prompts, GREEDY)
    assert [g.token_ids for g in batched] == [g.token_ids for g in singles]
    # micro-batches of 2 (sorted by length inside the call) give the same, in order
    small = HFBackend(hf_backend.model, hf_backend.tokenizer, batch_size=2).generate(prompts, GREEDY)
    assert [g.token_ids for g in small] == [g.token_ids for g in singles]


def test_greedy_matches_transformers_generate(hf_backend, prompts):
    p = prompts[1]
    ours = hf_backend.generate([p], SamplingParams(max_new_tokens=10, temperature=0.0))[0]
    ref = hf_backend.model.generate(torch.tensor([p]), max_new_tokens=10, do_sample=False,
                                    eos_token_id=hf_backend.eos_token_ids)[0, len(p):].tolist()
    assert ours.token_ids == ref[:len(ours.token_ids)]


def test_early_finishing_rows_are_dropped_without_changing_others(hf_backend, prompts,
                                                                  monkeypatch):
    """Rows that stop early leave the batch (and KV cache); the others must not notice."""
    from transformers.cache_utils import Cache

    full = hf_backend.generate(prompts, GREEDY)
    eos = {full[0].token_ids[2], full[1].token_ids[5]}
    backend = HFBackend(hf_backend.model, hf_backend.tokenizer, eos_token_ids=eos)
    singles = [backend.generate([p], GREEDY)[0] for p in prompts]
    selected = []
    original = Cache.batch_select_indices

    def spy(self, indices):
        selected.append(indices.tolist())
        return original(self, indices)

    monkeypatch.setattr(Cache, "batch_select_indices", spy)
    batched = backend.generate(prompts, GREEDY)
    assert selected  # the pruning path ran
    assert [g.token_ids for g in batched] == [g.token_ids for g in singles]
    assert batched[0].finish_reason == "stop" and len(batched[0].token_ids) <= 3
    assert len({len(g.token_ids) for g in batched}) > 1  # rows really stopped at different steps


def test_eos_is_kept_at_the_end_and_not_in_text(hf_backend, prompts):
    full = hf_backend.generate([prompts[2]], GREEDY)[0].token_ids
    eos = full[4]
    first = full.index(eos)
    backend = HFBackend(hf_backend.model, hf_backend.tokenizer, eos_token_ids=[eos])
    out = backend.generate([prompts[2]], GREEDY)[0]
    assert out.token_ids == full[:first + 1]
    assert out.finish_reason == "stop"
    assert out.text == hf_backend.tokenizer.decode(full[:first], skip_special_tokens=False)


def test_stop_string_stops_and_stays_in_output(hf_backend, prompts):
    tok = hf_backend.tokenizer
    full = hf_backend.generate([prompts[3]], GREEDY)[0].token_ids
    words = re.findall(r"[A-Za-z]{3,}", tok.decode(full[4:]))
    assert words, tok.decode(full)
    stop = words[0][:3]
    # expected: the shortest prefix of the greedy ids whose text contains the stop string
    n = next(n for n in range(1, len(full) + 1) if stop in tok.decode(full[:n]))
    out = hf_backend.generate([prompts[3]], SamplingParams(max_new_tokens=12, temperature=0.0,
                                                           stop=[stop]))[0]
    assert out.token_ids == full[:n]
    assert out.finish_reason == "stop"
    assert stop in out.text


def test_finish_reason_length(hf_backend, prompts):
    backend = HFBackend(hf_backend.model, hf_backend.tokenizer, eos_token_ids=[])
    outs = backend.generate(prompts, SamplingParams(max_new_tokens=5, temperature=1.0, seed=1))
    assert all(len(g.token_ids) == 5 and g.finish_reason == "length" for g in outs)
    zero = backend.generate(prompts[:2], SamplingParams(max_new_tokens=0))
    assert [(g.token_ids, g.finish_reason) for g in zero] == [([], "length")] * 2
    assert backend.generate([], GREEDY) == []
    with pytest.raises(ValueError, match="empty"):
        backend.generate([[]], GREEDY)


def test_seed_reproducible_and_global_rng_untouched(hf_backend, prompts):
    params = SamplingParams(max_new_tokens=10, temperature=1.0, top_p=0.95, top_k=50, seed=123)
    state = torch.get_rng_state()
    a = hf_backend.generate(prompts, params)
    assert torch.equal(state, torch.get_rng_state())
    b = hf_backend.generate(prompts, params)
    c = hf_backend.generate(prompts, SamplingParams(max_new_tokens=10, temperature=1.0, seed=7))
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.token_ids for g in a] != [g.token_ids for g in c]


def test_identical_prompts_in_one_call_sample_differently(hf_backend, prompts):
    """A GRPO group is one prompt repeated; its rollouts must not be copies."""
    outs = hf_backend.generate([prompts[0]] * 8, SamplingParams(max_new_tokens=8, seed=0))
    assert len({tuple(g.token_ids) for g in outs}) > 1


def test_top_k_one_is_greedy(hf_backend, prompts):
    greedy = hf_backend.generate(prompts, GREEDY)
    topk1 = hf_backend.generate(prompts, SamplingParams(max_new_tokens=12, temperature=1.3,
                                                        top_k=1, seed=5))
    assert [g.token_ids for g in topk1] == [g.token_ids for g in greedy]


def test_sample_next_top_p_and_top_k_on_hand_worked_logits():
    # probs 0.5, 0.3, 0.2: top_p=0.6 keeps {0, 1} (0.5 < 0.6, 0.5 + 0.3 reaches it)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).repeat(2000, 1)
    gen = torch.Generator().manual_seed(0)
    drawn = sample_next(logits, SamplingParams(temperature=1.0, top_p=0.6), gen)
    assert set(drawn.tolist()) == {0, 1}
    assert abs((drawn == 0).float().mean().item() - 0.5 / 0.8) < 0.05
    drawn = sample_next(logits, SamplingParams(temperature=1.0, top_k=2), gen)
    assert set(drawn.tolist()) == {0, 1}
    # top_p so small that only the argmax survives
    drawn = sample_next(logits, SamplingParams(temperature=1.0, top_p=0.01), gen)
    assert set(drawn.tolist()) == {0}


def test_logprobs_are_raw_log_softmax_of_sampled_tokens(hf_backend, prompts):
    p = prompts[1]
    out = hf_backend.generate([p], SamplingParams(max_new_tokens=6, temperature=0.7, seed=3,
                                                  logprobs=True))[0]
    assert len(out.logprobs) == len(out.token_ids) == 6
    # teacher-forced forward over prompt + completion gives the same numbers
    ids = torch.tensor([p + out.token_ids])
    with torch.no_grad():
        logits = hf_backend.model(ids).logits[0, len(p) - 1:-1].float()
    ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(out.token_ids)[:, None])[:, 0]
    assert torch.allclose(torch.tensor(out.logprobs), ref, atol=1e-4)
    assert hf_backend.generate([p], GREEDY)[0].logprobs is None


def test_in_memory_model_restores_train_mode(varied_model_dir, hf_backend, prompts):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(varied_model_dir, dtype=torch.float32).train()
    outs = generate_tokens(model, hf_backend.tokenizer, prompts, GREEDY)
    assert model.training
    assert [g.token_ids for g in outs] == [g.token_ids for g in hf_backend.generate(prompts, GREEDY)]
    with pytest.raises(ValueError, match="tokenizer"):
        HFBackend(model)


def test_loading_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HFBackend(tmp_path / "missing")
    with pytest.raises(ValueError, match="dtype"):
        from reagent.generation.hf import resolve_dtype

        resolve_dtype("float8", torch.device("cpu"))


def test_row_limits_each_row_stops_at_its_own_limit(hf_backend, prompts):
    """One call with per-row limits gives each row what it gets alone with its limit."""
    backend = HFBackend(hf_backend.model, hf_backend.tokenizer, eos_token_ids=[])
    limits = [3, 12, 1, 7, 12]
    batched = backend.generate(prompts, SamplingParams(max_new_tokens=12, temperature=0.0,
                                                       row_max_new_tokens=limits))
    alone = [backend.generate([p], SamplingParams(max_new_tokens=m, temperature=0.0))[0]
             for p, m in zip(prompts, limits)]
    assert [len(g.token_ids) for g in batched] == limits
    assert [g.token_ids for g in batched] == [g.token_ids for g in alone]
    assert {g.finish_reason for g in batched} == {"length"}
    zero = backend.generate(prompts[:2], SamplingParams(max_new_tokens=4, row_max_new_tokens=[0, 2]))
    assert [len(g.token_ids) for g in zero] == [0, 2]
    with pytest.raises(ValueError, match="one limit per prompt"):
        backend.generate(prompts, SamplingParams(row_max_new_tokens=[1, 2]))


def test_shared_prefix_cache_equals_no_cache_path(hf_backend):
    """A long shared prefix (a judge's system prompt) prefilled once, its KV cache copied
    into micro-batches of mixed suffix lengths: greedy tokens and log-probs match the
    path that prefills every full prompt, and the prefix really is computed once."""
    from reagent.generation.hf import MIN_SHARED_PREFIX, common_prefix_length

    tok = hf_backend.tokenizer
    system = tok("You judge agent trajectories. Think, critique, then score from 0 to 1. " * 3)["input_ids"]
    assert len(system) >= MIN_SHARED_PREFIX
    prompts = [system + tok(t)["input_ids"] for t in TEXTS]
    assert common_prefix_length(prompts) == len(system)
    params = SamplingParams(max_new_tokens=12, temperature=0.0, logprobs=True)
    plain = HFBackend(hf_backend.model, tok, batch_size=2).generate(prompts, params)
    cached_backend = HFBackend(hf_backend.model, tok, batch_size=2, prefix_cache=True)
    widths = []
    hook = hf_backend.model.register_forward_pre_hook(
        lambda _m, _a, kw: widths.append(kw["input_ids"].shape), with_kwargs=True)
    try:
        cached = cached_backend.generate(prompts, params)
    finally:
        hook.remove()
    assert [g.token_ids for g in cached] == [g.token_ids for g in plain]
    assert [g.finish_reason for g in cached] == [g.finish_reason for g in plain]
    for a, b in zip(cached, plain):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    # one prefill of the prefix alone, then micro-batches whose first forward holds suffixes only
    assert widths[0] == (1, len(system))
    longest_suffix = max(len(p) - len(system) for p in prompts)
    assert max(w[1] for w in widths[1:]) == longest_suffix


def test_prefix_cache_is_skipped_without_a_long_shared_prefix(hf_backend, prompts):
    from reagent.generation.hf import common_prefix_length

    assert common_prefix_length(prompts) < 16
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # each row keeps one token
    cached = HFBackend(hf_backend.model, hf_backend.tokenizer, prefix_cache=True).generate(prompts, GREEDY)
    assert [g.token_ids for g in cached] == [g.token_ids for g in hf_backend.generate(prompts, GREEDY)]


def test_inverse_cdf_sampler_follows_the_distribution_and_never_takes_a_cut_token():
    """One uniform per row: the frequencies of 20k draws match the probabilities (a 5-sigma
    bound: sd = sqrt(p(1-p)/n) <= 0.0035), and tokens cut by top-k/top-p never appear."""
    from reagent.generation.hf import sample_with_uniforms

    probs = torch.tensor([0.1, 0.0, 0.45, 0.05, 0.4])
    n = 20000
    logits = torch.log(probs).repeat(n, 1)
    u = torch.rand(n, generator=torch.Generator().manual_seed(0))
    drawn = sample_with_uniforms(logits, SamplingParams(temperature=1.0), u)
    freq = torch.bincount(drawn, minlength=5).float() / n
    assert (freq - probs).abs().max() < 5 * 0.0035
    assert freq[1] == 0
    # top_k=2 keeps {2, 4}; renormalised 0.45/0.85
    drawn = sample_with_uniforms(logits, SamplingParams(temperature=1.0, top_k=2), u)
    assert set(drawn.tolist()) == {2, 4}
    assert abs((drawn == 2).float().mean().item() - 0.45 / 0.85) < 5 * 0.0036
    # u at the edges of [0, 1) still lands on a kept token
    edges = sample_with_uniforms(logits[:2], SamplingParams(temperature=1.0, top_p=0.5), torch.tensor([0.0, 1 - 1e-7]))
    assert edges.tolist() == [2, 4]


def test_a_rows_tokens_do_not_depend_on_its_batch(hf_backend, prompts):
    """Per-row streams: a row sampled (top-p, temperature 1) over more than one uniform
    block (> 64 steps) gives the same tokens alone, in a batch of other prompts, after
    copies of its own prompt (prefilled once) and when the other rows stop early."""
    backend = HFBackend(hf_backend.model, hf_backend.tokenizer, eos_token_ids=[])
    target, seed = prompts[1], 4242

    def params(seeds, **kw):
        return SamplingParams(max_new_tokens=70, temperature=1.0, top_p=0.9, seed=1, row_seeds=seeds, **kw)

    alone = backend.generate([target], params([seed]))[0].token_ids
    assert len(alone) == 70
    mixed = backend.generate(prompts + [target], params([1, 2, 3, 4, 5, seed]))
    assert mixed[-1].token_ids == alone
    group = backend.generate([target] * 4, params([7, seed, 8, 9]))
    assert group[1].token_ids == alone
    assert len({tuple(g.token_ids) for g in group}) == 4  # copies of one prompt still differ
    short = backend.generate([target] * 3, params([7, seed, 8], row_max_new_tokens=[3, 70, 10]))
    assert short[1].token_ids == alone


def test_reserved_cache_layers_equal_concatenation():
    """The decode loop's reserved KV buffers hold what transformers' DynamicLayer would,
    through appends past the reservation, row selection and cropping."""
    from transformers import DynamicCache

    from reagent.generation.hf import _ReservedLayer, _reserve

    g = torch.Generator().manual_seed(0)
    kv = lambda n: (torch.randn(3, 2, n, 4, generator=g), torch.randn(3, 2, n, 4, generator=g))  # noqa: E731
    plain, reserved = DynamicCache(), DynamicCache()
    first = kv(5)
    plain.update(*first, layer_idx=0)
    reserved.update(*first, layer_idx=0)
    _reserve(reserved, 7)
    assert isinstance(reserved.layers[0], _ReservedLayer)
    for n in (1, 1, 3, 1):  # 5 + 6 positions: past the reservation of 7
        step = kv(n)
        a, b = plain.update(*step, layer_idx=0), reserved.update(*step, layer_idx=0)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    idx = torch.tensor([2, 0])
    plain.batch_select_indices(idx)
    reserved.batch_select_indices(idx)
    step = (torch.ones(2, 2, 1, 4), torch.zeros(2, 2, 1, 4))
    a, b = plain.update(*step, layer_idx=0), reserved.update(*step, layer_idx=0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert reserved.get_seq_length() == plain.get_seq_length() == 12
    plain.crop(-2)
    reserved.crop(-2)
    assert torch.equal(plain.layers[0].keys, reserved.layers[0].keys)


def test_sync_ranks_keeps_stepping_past_every_limit(hf_backend, prompts, monkeypatch, tmp_path):
    """Under ZeRO-3 a rank whose rows are done keeps running forwards until every rank is:
    here another rank is 'busy' for 80 forwards, past the 3-token limit, the reserved mask
    and KV buffers; the tokens equal the unsynchronised call's."""
    import torch.distributed as dist

    from reagent.generation import hf

    params = SamplingParams(max_new_tokens=3, temperature=0.0)
    plain = generate_tokens(hf_backend.model, hf_backend.tokenizer, prompts[:2], params)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        calls = []
        monkeypatch.setattr(hf, "_dist_all_done", lambda done, device: calls.append(done) or len(calls) >= 80)
        synced = generate_tokens(hf_backend.model, hf_backend.tokenizer, prompts[:2], params, sync_ranks=True)
    finally:
        dist.destroy_process_group()
    assert len(calls) == 80 and all(calls[2:])
    assert [g.token_ids for g in synced] == [g.token_ids for g in plain]
