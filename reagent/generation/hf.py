"""Batched token-in/token-out generation with a transformers causal LM (CPU or GPU).

Why a hand-written decode loop instead of ``model.generate``:

* **RNG isolation.** Sampling draws from a ``torch.Generator`` owned by the call, so
  ``seed=s`` gives the same tokens every time *and* generation never advances the
  global torch RNG that the trainer uses for dropout and data order. ``generate``
  only samples from the global RNG.
* **Exact outputs.** We need the sampled ids, the log-prob of each under the raw
  model, where each row stopped and why; with ``generate`` that means
  ``output_logits`` (all ``(B, V)`` logits kept for every step) plus re-deriving
  stop positions from padded output.
* **Less work per token** (issue 20). The loop does one forward, one batched sample and
  one ``.tolist()`` a step, and drops finished rows from the batch and KV cache, so a
  long tail of one or two unfinished rows does not cost a full batch per step.
  Identical prompts in a micro-batch (a GRPO group) are prefilled once and their cache
  rows copied. The KV cache lives in buffers reserved for the whole call
  (:func:`_reserve`): transformers' dynamic cache ``torch.cat``-s every layer's whole
  cache at every step, which was most of the decode time at batch 64 (64 x 64 tokens
  after a ~105-token prompt: 5.3 s -> 1.8 s on one CPU thread). Sampling is one inverse-
  CDF call for the batch (:func:`sample_with_uniforms`) with each row's uniforms drawn
  from the row's own generator 64 steps at a time, instead of one ``multinomial`` call
  per row per step. At equal work ``model.generate`` was *not* slower than the earlier
  version of this loop (14.2k vs 14.0k tok/s at batch 64, ``micro`` model, transformers
  5.24); it has neither the prompt dedup nor the reserved cache.
* **Shared prefixes.** With ``prefix_cache`` the prompts' common start (a judge's system
  prompt) is prefilled once. Where the model allows (transformers' attention interface,
  full attention), the decode then keeps that prefix's keys/values once and each step's
  attention reads them once for the whole batch (:mod:`reagent.generation.shared_prefix`),
  the rows' caches holding only what follows; the suffixes are prefilled in length
  buckets. Otherwise the prefix cache is copied into each micro-batch.
* **Greedy duplicates once.** At temperature 0 identical prompts with equal limits give
  identical outputs, so each is generated once (a judge sees a GRPO group's identical
  trajectories).
* **Stable across transformers versions** (4.45 to 5.x): it uses only ``forward``
  with ``attention_mask``/``position_ids``/``past_key_values`` and
  ``Cache.batch_select_indices``.

The price is that beam search, speculative decoding, compiled static caches and
model-specific ``prepare_inputs_for_generation`` hooks are not used: this is for
decoder-only text models, which is what the policy and judges are. Models that need
more should go through vLLM.

Semantics shared with the vLLM backend:

* prompts are lists of token ids of any lengths; they are sorted by length into
  micro-batches of ``batch_size``, LEFT-padded with an attention mask and explicit
  position ids (so padding changes nothing: batched greedy == one-at-a-time greedy),
  and results come back in the caller's order;
* ``temperature == 0`` is greedy; otherwise temperature, then top-k, then top-p;
  ``row_seeds`` gives every row its own sampling stream (batch-independent draws);
* a row stops at an eos id (the eos token is **kept** as the last id, since the
  trainer trains on it) or when its generated text contains a stop string (the
  token completing it is kept, nothing after it is generated) -> ``"stop"``; or at
  ``max_new_tokens`` -> ``"length"``;
* ``text`` is the decode of ``token_ids`` without a final eos, special tokens kept,
  so text and ids always agree (the text may run a few characters past a stop string
  when the completing token does);
* ``logprobs`` (when ``params.logprobs``) are ``log_softmax`` of the *raw* logits at
  temperature 1 for each sampled token, before temperature/top-k/top-p, like vLLM's
  default; the trainer recomputes its own anyway.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from reagent.generation import shared_prefix
from reagent.generation.base import Generation, SamplingParams, TokenBackend

try:  # transformers >= 4.56: a cache is a list of layer objects (see _reserve)
    from transformers.cache_utils import DynamicLayer as _DynamicLayer
except ImportError:
    _DynamicLayer = None

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: the CUDA device when there is one, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"``: bf16 on CUDA (fp16 where bf16 is unsupported), float32 elsewhere.

    float32 on CPU because CPU bf16 matmuls are slow on most machines and tiny models
    gain nothing from half precision.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of 'auto', {', '.join(map(repr, _DTYPES))}")
    return _DTYPES[dtype]


def eos_ids_of(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a turn: the tokenizer's eos plus the model's generation config's."""
    ids: list[int] = []
    candidates: list[Any] = [getattr(tokenizer, "eos_token_id", None)]
    gen_config = getattr(model, "generation_config", None)
    candidates.append(getattr(gen_config, "eos_token_id", None))
    for c in candidates:
        for i in c if isinstance(c, (list, tuple)) else [c]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    return ids


def sample_next(logits: torch.Tensor, params: SamplingParams,
                generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """One token per row from float32 logits ``(B, V)`` -> ``(B,)``.

    ``generator`` is one stream for the batch, or a list with one stream per row (the
    rows' draws then do not depend on each other). One uniform per row, see
    :func:`sample_with_uniforms`.
    """
    if params.temperature <= 0:
        return logits.argmax(dim=-1)
    if isinstance(generator, list):
        u = torch.cat([torch.rand(1, generator=g, device=logits.device) for g in generator])
    else:
        u = torch.rand(logits.shape[0], generator=generator, device=logits.device)
    return sample_with_uniforms(logits, params, u)


def sample_with_uniforms(logits: torch.Tensor, params: SamplingParams, u: torch.Tensor) -> torch.Tensor:
    """One token per row by inverse CDF: row b takes the first token whose cumulative
    probability exceeds ``u[b]`` (uniform in [0, 1)). (B, V), (B,) -> (B,).

    The whole batch samples in one call while each row's draw depends only on its own
    uniform (the decode loop draws a row's uniforms from the row's own generator), so a
    row's tokens do not depend on which rows share its batch. A token of probability 0
    (cut by top-k/top-p) is never taken. Order as in vLLM and transformers: temperature,
    then top-k, then top-p (keep the smallest set of tokens whose probability reaches
    ``top_p``, always at least one); each filter runs only when set.
    """
    if params.temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / params.temperature
    vocab = logits.shape[-1]
    if 0 < params.top_k < vocab:
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # mass strictly before each token; a token is dropped once that already reaches top_p
        before = probs.cumsum(dim=-1) - probs
        sorted_logits = sorted_logits.masked_fill(before >= params.top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    # float64 sums: no token's share of [0, 1) is lost to rounding, even with a large vocabulary
    cdf = logits.softmax(dim=-1).double().cumsum(dim=-1)
    picked = torch.searchsorted(cdf, (u.double() * cdf[:, -1])[:, None], right=True).squeeze(-1)
    return picked.clamp_(max=vocab - 1)


class _Uniforms:
    """The uniforms of the sampling steps of one micro-batch, ``block`` steps at a time.

    Row ``i``'s uniforms come from ``generator[i]`` alone (per-row streams), in order, so
    they are the same whatever else is in the batch; with one shared generator the
    batch's rows draw from it together. Drawing a block of steps at once replaces a
    sampling call per row per step with one call per row per ``block`` steps.
    """

    def __init__(self, generator: torch.Generator | list[torch.Generator], n: int, device: torch.device,
                 block: int = 64):
        self.generator, self.n, self.device, self.block = generator, n, device, block
        self.table = torch.empty(0)

    def at(self, step: int, rows: list[int]) -> torch.Tensor:
        """The uniforms of step ``step`` for the original rows ``rows`` -> (len(rows),)."""
        if step % self.block == 0:
            if isinstance(self.generator, list):
                self.table = torch.stack([torch.rand(self.block, generator=g, device=self.device)
                                          for g in self.generator])
            else:
                self.table = torch.rand((self.n, self.block), generator=self.generator, device=self.device)
        col = self.table[:, step % self.block]
        return col if len(rows) == self.n else col[torch.tensor(rows, device=self.device)]


def _make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()  # a fresh nondeterministic seed; the default seed would be fixed
    else:
        gen.manual_seed(seed)
    return gen


def _dist_all_done(local_done: bool, device: torch.device) -> bool:
    flag = torch.tensor([0.0 if local_done else 1.0], device=device)
    torch.distributed.all_reduce(flag)
    return flag.item() == 0.0


class _StopStrings:
    """Detects stop strings in the tail of each row's generated text.

    Only a window of the last tokens is decoded each step (enough to hold the longest
    stop string even at one byte per token), so the check costs one ``batch_decode``
    of short sequences a step whatever the generation length.
    """

    def __init__(self, stops: list[str], tokenizer: Any):
        self.stops = [s for s in stops if s]
        if self.stops and tokenizer is None:
            raise ValueError("stop strings need a tokenizer to decode the generated text")
        self.tokenizer = tokenizer
        self.window = max((len(s.encode("utf-8")) for s in self.stops), default=0) + 2

    def hits(self, rows: list[list[int]]) -> list[bool]:
        tails = [r[-self.window:] for r in rows]
        # a fast tokenizer's own decoder: transformers' batch_decode adds per-id Python
        # conversion that cost more than the decoding (9% of a judge call); its optional
        # clean-up of spaces before punctuation is not applied to this tail
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        texts = (backend.decode_batch(tails, skip_special_tokens=False) if backend is not None
                 else self.tokenizer.batch_decode(tails, skip_special_tokens=False))
        return [any(s in t for s in self.stops) for t in texts]


def common_prefix_length(prompts: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving each prompt at least one token of its own
    (the first forward needs a query per row to produce that row's next-token logits)."""
    if not prompts:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


@torch.no_grad()
def prefill_prefix(model: Any, prefix: list[int], device: torch.device) -> Any:
    """The KV cache of ``prefix`` (batch 1), computed once and copied into each micro-batch."""
    ids = torch.tensor([prefix], dtype=torch.long, device=device)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True,
                **({"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters
                   else {}))
    return out.past_key_values


def _expand_prefix(cache: Any, n: int) -> Any:
    """A batch-``n`` copy of a batch-1 prefix cache (the decode loop grows and prunes it)."""
    cache = copy.deepcopy(cache)
    cache.batch_repeat_interleave(n)
    return cache


def _left_padded(rows: list, plen: int, extra: int, *, pad_id: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``rows`` left-padded to the longest (``w``), after ``plen`` prefix positions:
    ids ``(R, w)``, the mask over ``[prefix | pad.. | row | extra positions]`` (0 at the
    pads only) ``(R, plen + w + extra)``, and position ids continuing from ``plen``
    without the pads ``(R, w)``."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.ones((len(rows), plen + width + extra), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, plen:plen + width - len(r)] = 0
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask[:, plen:plen + width].cumsum(-1) - 1).clamp(min=0) + plen
    return ids, mask, positions


@torch.no_grad()
def _generate_batch(model: Any, prompts: list[list[int]], params: SamplingParams,
                    limits: list[int], *, pad_id: int, eos_ids: set[int], stops: _StopStrings,
                    generator: torch.Generator | list[torch.Generator], device: torch.device,
                    keep_logits_kw: bool, sync_ranks: bool,
                    prefix: tuple[Any, int] | None = None) -> list[tuple[list[int], str, list[float] | None]]:
    """One left-padded micro-batch -> ``(token_ids, finish_reason, logprobs)`` per prompt.

    Row ``i`` stops at ``limits[i]`` new tokens. With ``sync_ranks`` the loop keeps
    running forwards (finished rows included) until every rank's rows are done.

    ``prefix=(cache, P)``: every prompt is the same ``P`` tokens, already in ``cache``
    (batch 1), followed by ``prompts[i]``; only these suffixes are prefilled, left-padded
    *after* the prefix: ``[prefix | pad.. | suffix]``. The mask hides the pads and the
    position ids continue from ``P`` without them, so each row sees exactly what the
    no-cache path sees.
    """
    n = len(prompts)
    # identical prompts (a GRPO group) are prefilled once; their cache rows are then copied
    unique: dict[tuple[int, ...], int] = {}
    first = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
    distinct = list(unique)
    steps = max(limits)
    plen = prefix[1] if prefix is not None else 0
    # With a shared prefix, attention reads it once per step (shared_prefix.py) where the
    # model allows: the rows' caches then hold only what follows the prefix.
    cascade = (shared_prefix.SharedPrefix.from_cache(prefix[0])
               if prefix is not None and shared_prefix.supported(model) and _reservable(prefix[0]) else None)
    if cascade is not None:
        cache, logits, full_mask, last_pos = _prefill_after_prefix(
            model, distinct, prefix, steps, pad_id=pad_id, device=device, keep_logits_kw=keep_logits_kw)
        width = full_mask.shape[1] - steps
    else:
        width = max(len(p) for p in distinct)
        # the mask for every step, preallocated: step k reads its first `prompt + k + 1` columns
        ids, full_mask, positions = _left_padded(distinct, plen, steps, pad_id=pad_id, device=device)
        past = _expand_prefix(prefix[0], len(distinct)) if prefix is not None else None
        extra = {"logits_to_keep": 1} if keep_logits_kw else {}
        out = model(input_ids=ids, attention_mask=full_mask[:, :plen + width], position_ids=positions,
                    use_cache=True, past_key_values=past, **extra)
        cache = _reserve(out.past_key_values, plen + width + steps)
        logits, last_pos = out.logits[:, -1, :], positions[:, -1:]
        width = plen + width
    if len(distinct) < n:
        copies = torch.tensor(first, device=device)
        cache.batch_select_indices(copies)
        logits, full_mask, last_pos = logits[copies], full_mask[copies], last_pos[copies]

    outs: list[list[int]] = [[] for _ in range(n)]
    logps: list[list[float]] | None = [[] for _ in range(n)] if params.logprobs else None
    reasons: list[str | None] = [None] * n
    rows = list(range(n))  # batch position -> original index, for rows still in the batch
    uniforms = _Uniforms(generator, n, device) if params.temperature > 0 else None
    next_pos = last_pos + 1
    step = 0
    while True:
        logits = logits.float()
        tokens = (logits.argmax(dim=-1) if uniforms is None
                  else sample_with_uniforms(logits, params, uniforms.at(step, rows)))
        tok_list = tokens.tolist()
        if logps is not None:
            lp = torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, None]).squeeze(-1).tolist()
        live = [b for b, r in enumerate(rows) if reasons[r] is None]
        for b in live:
            r = rows[b]
            outs[r].append(tok_list[b])
            if logps is not None:
                logps[r].append(lp[b])
            if tok_list[b] in eos_ids:
                reasons[r] = "stop"
        if stops.stops:
            check = [b for b in live if reasons[rows[b]] is None]
            for b, hit in zip(check, stops.hits([outs[rows[b]] for b in check])):
                if hit:
                    reasons[rows[b]] = "stop"
        for b in live:
            r = rows[b]
            if reasons[r] is None and len(outs[r]) >= limits[r]:
                reasons[r] = "length"
        keep = [b for b, r in enumerate(rows) if reasons[r] is None]
        local_done = not keep
        if sync_ranks:
            # under ZeRO-3 every rank must run the same number of forwards
            if _dist_all_done(local_done, device):
                break
        elif local_done:
            break
        if keep and len(keep) <= 3 * len(rows) // 4:
            # drop finished rows from the batch and the KV cache (a copy of the cache,
            # so only when it removes a quarter of the batch or more)
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            full_mask, next_pos, tokens = full_mask[index], next_pos[index], tokens[index]
            rows = [rows[b] for b in keep]
        step += 1
        if width + step > full_mask.shape[1]:  # only under sync_ranks: finished rows keep stepping
            full_mask = torch.cat([full_mask, full_mask.new_ones((full_mask.shape[0], max(steps, 64)))], dim=-1)
        mask = full_mask[:, :width + step]
        if cascade is None:
            out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos,
                        past_key_values=cache, use_cache=True)
        else:  # the row's own keys only, as a 4-D mask (shared_prefix.py)
            with shared_prefix.shared_prefix_attention(model):
                out = model(input_ids=tokens[:, None], attention_mask=mask[:, None, None, :].bool(),
                            position_ids=next_pos, past_key_values=cache, use_cache=True, shared_prefix=cascade)
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    return [(outs[r], reasons[r] or "length", logps[r] if logps is not None else None)
            for r in range(n)]


def _plain_layer(layer: Any) -> bool:
    """A filled transformers ``DynamicLayer`` of 4-D keys: what :func:`_reserve` takes over."""
    return type(layer) is _DynamicLayer and layer.is_initialized and layer.keys.dim() == 4


def _reservable(cache: Any) -> bool:
    """Whether every layer of ``cache`` is one :func:`_reserve` takes over."""
    layers = getattr(cache, "layers", None)
    return _DynamicLayer is not None and layers is not None and all(map(_plain_layer, layers))


def _reserve(cache: Any, capacity: int) -> Any:
    """Give each plain dynamic layer of ``cache`` key/value buffers of ``capacity`` positions.

    transformers' ``DynamicLayer`` appends a decode step's key and value with
    ``torch.cat``, copying the whole cache of every layer at every step: on the
    issue-20 benchmark (batch 64, ~170 positions) that copying was most of the decode
    loop's time (5.3 s -> 1.8 s for 64 x 64 tokens without it). A :class:`_ReservedLayer`
    writes the step into its buffer in place and hands attention a view. Layers of other
    kinds (sliding window, ...) and caches of transformers versions without per-layer
    objects are left as they are.
    """
    layers = getattr(cache, "layers", None)
    if _DynamicLayer is None or layers is None:
        return cache
    for i, layer in enumerate(layers):
        if _plain_layer(layer):
            reserved = object.__new__(_ReservedLayer)
            reserved.__dict__.update(layer.__dict__)
            reserved.adopt(capacity)
            layers[i] = reserved
    return cache


# Prefill after a shared prefix: at most this many rows per forward.
PREFILL_ROWS = 8


def _prefill_after_prefix(model: Any, suffixes: list[tuple[int, ...]], prefix: tuple[Any, int],
                          steps: int, *, pad_id: int, device: torch.device,
                          keep_logits_kw: bool) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prefill ``suffixes``, each after the shared prefix ``prefix=(cache, P)``, for a
    decode with shared-prefix attention.

    The rows go through the model in length buckets (longest first, at most
    :data:`PREFILL_ROWS` rows per forward), each padded only to its own longest row,
    instead of one batch padded to the longest of all (on the quickstart's judge that
    halved the prefilled positions), with the model's own attention over a per-bucket
    copy of the prefix cache (torch's fused attention is the fastest prefill). The
    suffixes' keys and values are then laid side by side, left-padded to the longest
    suffix ``W``, in one reserved cache without the prefix, with room for ``steps`` more
    positions and keys transposed for :func:`shared_prefix.attention`.

    Returns ``(cache, logits (R, V), mask (R, W + steps), last positions (R, 1))``, rows
    in the order of ``suffixes``; the mask marks each row's own real positions and every
    decode step (the prefix is visible to all and not in the mask).
    """
    prefix_cache, plen = prefix
    rows = len(suffixes)
    lengths = [len(p) for p in suffixes]
    width = max(lengths)
    order = sorted(range(rows), key=lambda i: -lengths[i])
    buckets = [order[k:k + PREFILL_ROWS] for k in range(0, rows, PREFILL_ROWS)]
    full_mask = torch.ones((rows, width + steps), dtype=torch.bool)
    for i, length in enumerate(lengths):
        full_mask[i, :width - length] = False
    full_mask = full_mask.to(device)
    extra = {"logits_to_keep": 1} if keep_logits_kw else {}
    logits: torch.Tensor | None = None
    container, pieces = None, []
    for bucket in buckets:
        ids, mask, positions = _left_padded([suffixes[i] for i in bucket], plen, 0, pad_id=pad_id, device=device)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    past_key_values=_expand_prefix(prefix_cache, len(bucket)), **extra)
        if logits is None:
            logits = out.logits.new_empty((rows, out.logits.shape[-1]))
        logits[torch.tensor(bucket, device=device)] = out.logits[:, -1, :]
        if container is None:
            container = out.past_key_values
        pieces.append((bucket, out.past_key_values))
    for layer_idx, layer in enumerate(container.layers):
        reserved = object.__new__(_ReservedLayer)
        reserved.__dict__.update(layer.__dict__)
        reserved.lay_out([(bucket, cache.layers[layer_idx]) for bucket, cache in pieces],
                         plen, rows, width, width + steps)
        container.layers[layer_idx] = reserved
    last = torch.tensor([[plen + length - 1] for length in lengths], dtype=torch.long, device=device)
    return container, logits, full_mask, last


class _ReservedLayer(_DynamicLayer or object):  # type: ignore[misc]
    """A dynamic cache layer whose keys/values live in buffers reserved up front; the
    decode loop's row dropping (``batch_select_indices``) selects from the buffers.

    ``transposed``: the key buffer is laid out (B, H, head_dim, capacity), so that a matmul
    attention's ``q @ k^T`` reads it contiguously (:func:`shared_prefix.attention`: 2.4x
    faster at batch 64 on CPU); torch's sdpa is faster on the usual (B, H, capacity,
    head_dim). ``keys`` is a (B, H, n, head_dim) view either way.
    """

    _transposed = False

    def adopt(self, capacity: int) -> None:
        """Take over this layer's keys and values into buffers of ``capacity`` positions."""
        k, v = self.keys, self.values
        self._n = k.shape[-2]
        cap = max(capacity, self._n)
        if self._transposed:
            self._kbuf = k.new_empty((*k.shape[:2], k.shape[3], cap))
        else:
            self._kbuf = k.new_empty((*k.shape[:2], cap, k.shape[3]))
        self._v = v.new_empty((*v.shape[:2], cap, v.shape[3]))
        self._keys_at(0, k)
        self._v[:, :, :self._n] = v
        self._view()

    def lay_out(self, pieces: list[tuple[list[int], Any]], skip: int, rows: int, width: int,
                capacity: int) -> None:
        """Build transposed buffers of ``rows`` rows from per-bucket layers: bucket rows
        ``idx`` get that layer's keys/values after its first ``skip`` positions (the
        prefix), right-aligned at ``width`` (zeros before)."""
        k0 = pieces[0][1].keys
        self._transposed, self._n = True, width
        self._kbuf = k0.new_zeros((rows, k0.shape[1], k0.shape[3], capacity))
        self._v = k0.new_zeros((rows, k0.shape[1], capacity, k0.shape[3]))
        for idx, layer in pieces:
            index = torch.tensor(idx, device=k0.device)
            w = layer.keys.shape[-2] - skip
            self._kbuf[index, :, :, width - w:width] = layer.keys[:, :, skip:].transpose(-1, -2)
            self._v[index, :, width - w:width] = layer.values[:, :, skip:]
        self._view()

    def _keys_at(self, start: int, keys: torch.Tensor) -> None:
        end = start + keys.shape[-2]
        if self._transposed:
            self._kbuf[..., start:end] = keys.transpose(-1, -2)
        else:
            self._kbuf[:, :, start:end] = keys

    def _view(self) -> None:
        self.keys = (self._kbuf[..., :self._n].transpose(-1, -2) if self._transposed
                     else self._kbuf[:, :, :self._n])
        self.values = self._v[:, :, :self._n]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        m = key_states.shape[-2]
        if self._n + m > self._v.shape[2]:  # past the reservation (sync_ranks): twice as large
            self.adopt(2 * (self._n + m))
        self._keys_at(self._n, key_states)
        self._v[:, :, self._n:self._n + m] = value_states
        self._n += m
        self._view()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._kbuf, self._v = self._kbuf[indices], self._v[indices]
        self._view()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._kbuf = self._kbuf.repeat_interleave(repeats, dim=0)
        self._v = self._v.repeat_interleave(repeats, dim=0)
        self._view()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop({tokens_to_remove}): give the number of tokens to remove as a negative int")
        self._n = max(self._n + tokens_to_remove, 0)
        self._view()


# Below this many shared tokens a separate prefill costs more than it saves.
MIN_SHARED_PREFIX = 16


def _dist_max(value: int, device: torch.device) -> int:
    t = torch.tensor([value], dtype=torch.long, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return int(t.item())


def generate_tokens(model: Any, tokenizer: Any, prompts: list[list[int]],
                    params: SamplingParams, *, batch_size: int = 64,
                    eos_token_ids: Iterable[int] | None = None,
                    sync_ranks: bool = False, prefix_cache: bool = False) -> list[Generation]:
    """Generate with any in-memory causal LM (e.g. the policy being trained).

    The model is put in eval mode for the call and its train/eval mode restored after.
    ``tokenizer`` decodes the text and checks stop strings. ``params.row_max_new_tokens``
    gives each prompt its own limit. With ``sync_ranks`` every process of an initialised
    ``torch.distributed`` group runs the same number of forward passes, which ZeRO-3
    needs (each forward all-gathers the parameters): ranks agree on the number of
    micro-batches (a rank with fewer runs one-token stand-ins, also when it has no
    prompts at all) and each micro-batch keeps stepping until every rank's rows are
    done. Every rank must then call this the same number of times (the agent loop
    does, through :meth:`TokenBackend.any_rank_busy`). Under ZeRO-3, call this inside DeepSpeed's
    gathered-parameters context (TRL's ``unwrap_model_for_generation``) or each step
    re-gathers every weight.

    With ``prefix_cache`` the tokens all prompts share at the start (a judge's system
    prompt: ~3/4 of every judge prompt) are prefilled once and their KV cache copied
    into every micro-batch instead of being recomputed per row; used only when that
    prefix is at least ``MIN_SHARED_PREFIX`` tokens and ranks are not synchronised.
    Outputs equal the no-cache path (same positions, same masked keys); at temperature
    0 they agree up to float rounding of the attention sums.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sync = sync_ranks and torch.distributed.is_available() and torch.distributed.is_initialized()
    if not prompts and not sync:
        return []
    empty = [i for i, p in enumerate(prompts) if len(p) == 0]
    if empty:
        raise ValueError(f"prompts {empty[:5]} are empty; every prompt needs at least one token")
    limits = [max(m, 0) for m in params.row_limits(len(prompts))]
    if params.temperature <= 0 and not sync:
        # greedy: identical prompts with equal limits give identical outputs, so each is
        # generated once (a judge sees the same trajectory several times in a GRPO group)
        slot: dict[tuple, int] = {}
        which = [slot.setdefault((tuple(p), m), len(slot)) for p, m in zip(prompts, limits)]
        if len(slot) < len(prompts):
            keys = list(slot)
            once = generate_tokens(model, tokenizer, [list(k[0]) for k in keys],
                                   replace(params, row_max_new_tokens=[k[1] for k in keys], row_seeds=None),
                                   batch_size=batch_size, eos_token_ids=eos_token_ids, prefix_cache=prefix_cache)
            return [replace(once[w], token_ids=list(once[w].token_ids),
                            logprobs=None if once[w].logprobs is None else list(once[w].logprobs)) for w in which]
    if not sync and all(m == 0 for m in limits):
        return [Generation(text="", token_ids=[], finish_reason="length",
                           logprobs=[] if params.logprobs else None) for _ in prompts]

    eos = set(eos_token_ids) if eos_token_ids is not None else set(eos_ids_of(model, tokenizer))
    pad_id = getattr(tokenizer, "pad_token_id", None)
    if pad_id is None:
        pad_id = min(eos) if eos else 0
    device = next(model.parameters()).device
    stops = _StopStrings(params.stop, tokenizer)
    generator = _make_generator(params.seed, device)
    row_gens = ([_make_generator(seed, device) for seed in params.row_seed_list(len(prompts))]
                if params.row_seeds is not None else None)
    keep_logits_kw = "logits_to_keep" in inspect.signature(model.forward).parameters

    results: list[Generation | None] = [None] * len(prompts)
    for i, m in enumerate(limits):
        if m == 0:
            results[i] = Generation(text="", token_ids=[], finish_reason="length",
                                    logprobs=[] if params.logprobs else None)
    # longest first: similar lengths share a micro-batch, and an OOM shows up at once
    order = sorted((i for i in range(len(prompts)) if limits[i] > 0), key=lambda i: -len(prompts[i]))
    chunks = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    n_chunks = _dist_max(len(chunks), device) if sync else len(chunks)
    was_training = model.training
    model.eval()
    # one prompt has nothing to share; a prefix prefilled apart would only cost a forward
    shared = (common_prefix_length([prompts[i] for i in order])
              if prefix_cache and not sync and len(order) > 1 else 0)
    try:
        prefix = (prefill_prefix(model, list(prompts[order[0]][:shared]), device), shared) \
            if shared >= MIN_SHARED_PREFIX else None
        shared = shared if prefix is not None else 0
        for k in range(n_chunks):
            if k >= len(chunks):  # this rank is out of prompts: a one-token stand-in keeps
                _generate_batch(model, [[pad_id]], params, [0], pad_id=pad_id,  # the forwards
                                eos_ids=eos, stops=stops, generator=generator,  # in step
                                device=device, keep_logits_kw=keep_logits_kw, sync_ranks=sync)
                continue
            chunk = chunks[k]
            outs = _generate_batch(model, [list(prompts[i][shared:]) for i in chunk], params,
                                   [limits[i] for i in chunk], pad_id=pad_id, eos_ids=eos,
                                   stops=stops, device=device,
                                   generator=[row_gens[i] for i in chunk] if row_gens else generator,
                                   keep_logits_kw=keep_logits_kw, sync_ranks=sync, prefix=prefix)
            texts = _decode(tokenizer, [ids for ids, _, _ in outs], eos)
            for i, (ids, reason, lps), text in zip(chunk, outs, texts):
                results[i] = Generation(text=text, token_ids=ids, finish_reason=reason,
                                        logprobs=lps)
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def _decode(tokenizer: Any, rows: list[list[int]], eos: set[int]) -> list[str]:
    if tokenizer is None:
        return [""] * len(rows)
    trimmed = [r[:-1] if r and r[-1] in eos else r for r in rows]
    return tokenizer.batch_decode(trimmed, skip_special_tokens=False)


class HFBackend(TokenBackend):
    """A transformers model as a :class:`TokenBackend`.

    ``model_dir_or_model`` is a local model directory (loaded with
    ``AutoModelForCausalLM``/``AutoTokenizer``; nothing is fetched from a hub) or an
    in-memory model, e.g. the policy a GRPO trainer is updating: the backend holds a
    reference, so in-place weight updates are seen by the next ``generate`` call
    without copying. For an in-memory model pass ``tokenizer`` (object or directory);
    ``device`` and ``dtype`` are then left as the model has them. ``prefix_cache``:
    prefill the prompts' shared leading tokens once per call (see :func:`generate_tokens`);
    judges turn it on, since every judge prompt starts with the same system prompt.
    (vLLM does the same across requests with ``--enable-prefix-caching``, on by default
    in its V1 engine; pass it to ``vllm serve`` for an HTTP judge.)
    """

    def __init__(self, model_dir_or_model: str | Path | Any, tokenizer: Any = None,
                 device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
                 batch_size: int = 64, eos_token_ids: Iterable[int] | None = None,
                 sync_ranks: bool = False, prefix_cache: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(tokenizer, (str, Path)):
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        if isinstance(model_dir_or_model, (str, Path)):
            path = Path(model_dir_or_model)
            if not path.is_dir():
                raise FileNotFoundError(f"model directory {str(path)!r} does not exist "
                                        "(HFBackend loads local directories only)")
            self.device = resolve_device(device)
            self.dtype = resolve_dtype(dtype, self.device)
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=self.dtype)
            model.to(self.device).eval()
        else:
            model = model_dir_or_model
            if tokenizer is None:
                raise ValueError("HFBackend got an in-memory model but no tokenizer; pass "
                                 "tokenizer= (a tokenizer object or a directory)")
            param = next(model.parameters())
            self.device, self.dtype = param.device, param.dtype
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eos_token_ids = (list(eos_token_ids) if eos_token_ids is not None
                              else eos_ids_of(model, tokenizer))
        self.sync_ranks = sync_ranks
        self.prefix_cache = prefix_cache

    def any_rank_busy(self, local_busy: bool) -> bool:
        if not (self.sync_ranks and torch.distributed.is_available()
                and torch.distributed.is_initialized()):
            return local_busy
        return _dist_max(int(local_busy), next(self.model.parameters()).device) > 0

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        return generate_tokens(self.model, self.tokenizer, prompts, params,
                               batch_size=self.batch_size, eos_token_ids=self.eos_token_ids,
                               sync_ranks=self.sync_ranks, prefix_cache=self.prefix_cache)

    @contextlib.contextmanager
    def using(self, model: Any):
        """Temporarily generate with another model object (same tokenizer), e.g. an
        unwrapped or parameter-gathered copy of the policy."""
        previous, self.model = self.model, model
        try:
            yield self
        finally:
            self.model = previous
