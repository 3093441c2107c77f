"""Per-token log-probs of a batch under the policy, with logits only where the loss needs them.

A GRPO batch is mostly prompt: a single-turn GSM8K-style row is a few hundred prompt
tokens and ~60 response tokens, and the LM head plus the (N, L, V) log-softmax over
every prompt position cost more than the transformer layers on a small model. The
loss reads log-probs only where the loss mask is on, so the fast path asks the model
for logits at those positions alone, through transformers' ``logits_to_keep``
argument with a tensor of sequence positions: the hidden states are sliced *before*
the LM head inside the model's own forward. Going through the model's ``forward``
(not calling its inner decoder and head by hand) keeps it right for tied embeddings
and under every wrapper (DDP's reducer hooks, DeepSpeed ZeRO-3's parameter gathering).

The kept positions are the union over the rows of a micro-batch (one position tensor
for the whole batch), so rows of similar length in one micro-batch (length-bucketed
micro-batches, :func:`reagent.train.batch.length_buckets`) waste little. A model
whose forward does not take ``logits_to_keep`` (or ignores it) falls back to full
logits, sliced afterwards: same numbers, only slower.

The results are (N, L) tensors aligned with ``input_ids`` as
:func:`reagent.train.algos.token_logprobs` returns them (position t holds the
log-prob of token t); positions the loss never reads hold 0.
"""

from __future__ import annotations

import torch

from reagent.train.algos import token_logprobs


def kept_positions(loss_mask: torch.Tensor) -> torch.Tensor:
    """Positions ``p`` whose logits predict a loss token ``p + 1`` in any row. (N, L) -> (K,)."""
    return loss_mask[:, 1:].bool().any(0).nonzero().squeeze(-1)


def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      loss_mask: torch.Tensor | None = None, temperature: float = 1.0,
                      entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-prob, entropy) of each token, both (N, L); see the module docstring.

    ``loss_mask`` None computes every position (the plain path, kept for tests and for
    callers that need all of them); otherwise only positions where it is on are exact,
    the rest are 0.
    """
    if loss_mask is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return token_logprobs(logits, input_ids, temperature=temperature, entropy_grad=entropy_grad)
    pos = kept_positions(loss_mask.to(input_ids.device))
    if pos.numel() == 0:  # an all-masked (padding) micro-batch still needs a graph to backward
        pos = torch.zeros(1, dtype=torch.long, device=input_ids.device)
    n, length = input_ids.shape
    try:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=pos).logits
    except TypeError:  # a model without logits_to_keep: full logits
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    if logits.shape[1] != pos.numel():  # ignored the argument (or returned every position)
        logits = logits[:, pos]
    # token_logprobs predicts token t from position t-1 and drops the last position:
    # append one dummy column so the kept logits line up with the targets at pos + 1.
    targets = input_ids[:, pos + 1]
    padded = torch.cat([logits, logits[:, -1:].detach()], dim=1)
    ids = torch.cat([input_ids[:, :1], targets], dim=1)
    logp_k, ent_k = token_logprobs(padded, ids, temperature=temperature, entropy_grad=entropy_grad)
    logp = logp_k.new_zeros(n, length)
    entropy = ent_k.new_zeros(n, length)
    logp[:, pos + 1] = logp_k[:, 1:]
    entropy[:, pos + 1] = ent_k[:, 1:]
    return logp, entropy
