"""Decode attention over a prompt prefix that every row shares, read once per step.

Why: a judge's prompts all start with the same system prompt (~3/4 of every prompt on
the quickstart's judge). :func:`reagent.generation.hf.generate_tokens` prefills that
prefix once, but with a plain KV cache each row still holds its own copy, and every
decode step reads the prefix's keys and values once per row: at batch 64 the decode
attention is memory-bound on 64 copies of the same tensors (issue 20: half the judge's
time). This is the two-level ("cascade") attention of FlashInfer and vLLM's cascade
attention, in plain PyTorch: each layer keeps the prefix's keys/values once, at batch 1;
the per-row cache holds only what follows the prefix; a step's scores against the prefix
are one batched matrix product over all rows' queries (the prefix read once), its scores
against the row's own keys are per row, and one softmax runs over both, so the result
is the same attention, up to float rounding.

How it plugs into transformers: the function is registered in transformers'
``AttentionInterface`` under :data:`NAME` (a new name; no existing implementation is
changed) and selected with :func:`shared_prefix_attention` around each decode forward of
a prefix-cached call, which restores the model's own implementation after. The switch is
a setting of the model's config, so the model must not run forwards on another thread
meanwhile: a judge's model is its own, and judging overlaps other work only over HTTP.
The prefix reaches the attention layers as the forward's ``shared_prefix`` keyword
(transformers passes unknown keywords down to the attention function). Since no mask
function is registered for the name, the caller passes the per-row mask as a 4-D
boolean tensor ``(B, 1, q, L)`` (True = attend), which transformers hands over as is.

:func:`supported` says whether a model can take this path (transformers' attention
interface, ``sdpa`` or ``eager`` attention, no sliding-window layers); the caller falls
back to per-row copies of the prefix otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

NAME = "reagent_shared_prefix"

try:  # transformers >= 4.48
    from transformers.modeling_utils import AttentionInterface
except ImportError:  # older: no attention interface, callers use per-row prefix copies
    AttentionInterface = None


@dataclass
class SharedPrefix:
    """Each layer's prefix keys and values, ``(1, kv_heads, P, head_dim)``, by layer index."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @classmethod
    def from_cache(cls, cache: Any) -> SharedPrefix:
        """The prefix of a batch-1 cache (e.g. :func:`~reagent.generation.hf.prefill_prefix`)."""
        layers = cache.layers
        return cls([layer.keys for layer in layers], [layer.values for layer in layers])


def supported(model: Any) -> bool:
    """Whether ``model`` can decode with :func:`attention` (see the module docstring)."""
    config = getattr(model, "config", None)
    if AttentionInterface is None or config is None or not getattr(model, "_supports_attention_backend", False):
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    layer_types = getattr(config, "layer_types", None) or []
    return not any(t != "full_attention" for t in layer_types) and not getattr(config, "use_sliding_window", False)


def attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, scaling: float | None = None,
              dropout: float = 0.0, shared_prefix: SharedPrefix | None = None,
              **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention of ``query`` (B, H, q, D) over the shared prefix and the row's own
    ``key``/``value`` (B, H_kv, L, D); ``attention_mask`` (B, 1, q, L) boolean covers the
    row's own keys only (the prefix is visible to every query). Returns (B, q, H, D), as
    transformers' attention functions do."""
    if shared_prefix is None:
        raise ValueError(f"attention implementation {NAME!r} needs the forward's shared_prefix=")
    if dropout:
        raise ValueError(f"{NAME!r} is for generation: attention dropout must be 0, got {dropout}")
    b, h, q, d = query.shape
    hkv = key.shape[1]
    rep = h // hkv
    scale = scaling if scaling is not None else d ** -0.5
    dtype = query.dtype
    # grouped query heads ride with their key/value head: (B, H_kv, rep*q, D), no copies
    # of the keys and values per query head
    grouped = query.reshape(b, hkv, rep * q, d)
    s_own = torch.matmul(grouped, key.transpose(-1, -2))  # (B, H_kv, rep*q, L)
    if attention_mask is not None:
        hidden = ~attention_mask.to(torch.bool)[:, :, None]  # (B, 1, 1, q, L)
        s_own = s_own.view(b, hkv, rep, q, -1).masked_fill(hidden, float("-inf")).view(b, hkv, rep * q, -1)
    pk, pv = shared_prefix.keys[module.layer_idx], shared_prefix.values[module.layer_idx]
    p = pk.shape[-2]
    # against the prefix: one (B*rep*q, D) x (D, P) product per kv head, the prefix read once
    by_head = grouped.transpose(0, 1).reshape(hkv, b * rep * q, d)
    s_prefix = torch.bmm(by_head, pk[0].transpose(-1, -2)).view(hkv, b, rep * q, p).transpose(0, 1)
    probs = (torch.cat([s_prefix, s_own], dim=-1).float() * scale).softmax(dim=-1).to(dtype)
    p_prefix, p_own = probs[..., :p], probs[..., p:]
    out_prefix = torch.bmm(p_prefix.transpose(0, 1).reshape(hkv, b * rep * q, p), pv[0])
    out = out_prefix.view(hkv, b, rep * q, d).transpose(0, 1) + torch.matmul(p_own, value)
    # (B, H_kv, rep*q, D) -> (B, H, q, D) -> (B, q, H, D)
    return out.reshape(b, h, q, d).transpose(1, 2).contiguous(), None


@contextlib.contextmanager
def shared_prefix_attention(model: Any) -> Iterator[None]:
    """Select :func:`attention` for ``model``'s forwards inside the block (the model's own
    implementation is restored after, also on error). Check :func:`supported` first."""
    AttentionInterface.register(NAME, attention)  # idempotent: the same function each time
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
