"""Shared-prompt packing for the update: a group's prompt is run once, not G times.

Why: the G rollouts of a GRPO group start with the same prompt tokens, and in a
single-turn task the prompt is most of each row (issue 20's GSM8K-style benchmark:
~105 prompt tokens, ~63 response tokens, G = 8). Padded rows run every prompt G times
through the forward and the backward. Here a group is one packed row
``[prompt | response_1 | ... | response_G]`` with a block attention mask: prompt tokens
attend causally to the prompt, each response to the prompt and to its own earlier
tokens, never to another response; position ids restart after the prompt for each
response. Every response token therefore sees exactly the context, positions and
attention it has in its own padded row, so the log-probs are the same numbers (up to
float summation order) with ~2.3x fewer token-forwards on that benchmark, and the
prompt's hidden states receive the sum of the G responses' gradients, which is what the
padded batch adds up to. (This is the "shared prefix" trick of prefix-grouped policy
optimisation; TRL and verl run padded rows.)

The shared part of a trajectory is everything before its first trained token (the
prompt; for a multi-turn episode, the prompt up to the first assistant turn).
Trajectories with the same shared part form a cluster (a GRPO group; under Reagent-U a
revised episode's prompt carries its critique, so it forms its own cluster and runs
like a padded row). Logits are computed only at the packed positions that predict a
trained token (``logits_to_keep``); the position predicting a response's first token is
the prompt's last, shared by the cluster: its logits are computed once and read by
every member.

The mask is a dense additive ``(R, 1, T, T)`` float tensor (0 = attend, dtype-min =
not), which transformers passes through unchanged to the ``sdpa`` and ``eager``
attention kernels (a 4D mask is "already prepared"). Flash-attention kernels take no
such mask, so the trainer packs only under ``sdpa``/``eager`` (``share_prompt``) and
otherwise uses padded rows. Memory is T^2 per packed row (T = prompt + G responses):
fine for the CPU and short-sequence setups this targets; with long GPU sequences turn
``share_prompt`` off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reagent.records import Trajectory
from reagent.train.algos import target_logprobs

# attention kernels that accept a prepared 4D additive mask
PACKABLE_ATTENTION = ("sdpa", "eager")


@dataclass
class Packed:
    """Packed rows of one micro-batch and where each trajectory's tokens sit in them.

    ``input_ids``/``position_ids``/``segment``: (R, T); ``segment`` is 0 on a cluster's
    prompt, k >= 1 on its k-th response, -1 on padding. ``index``: (N, L) flat position
    (``row * T + column``) of token t of trajectory n in the packed rows, -1 past its end.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    segment: torch.Tensor
    index: torch.Tensor

    def attention_bias(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(R, 1, T, T) additive mask: 0 where query a may attend key b, dtype-min elsewhere."""
        seg = self.segment.to(device)
        t = seg.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=device).tril()
        same = seg[:, :, None] == seg[:, None, :]
        to_prompt = (seg[:, None, :] == 0) & (seg[:, :, None] >= 0)
        allowed = causal & (same | to_prompt) | torch.eye(t, dtype=torch.bool, device=device)
        bias = torch.zeros(allowed.shape, dtype=dtype, device=device)
        return bias.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def shared_length(t: Trajectory) -> int:
    """Tokens before the first trained one (all of them when nothing is trained)."""
    mask = t.loss_mask or []
    return next((k for k, m in enumerate(mask) if m), len(t.token_ids))


def clusters(trajs: list[Trajectory]) -> list[list[int]]:
    """Indices of trajectories with the same shared part, in first-seen order."""
    by_key: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(trajs):
        by_key.setdefault(tuple(t.token_ids[:shared_length(t)]), []).append(i)
    return list(by_key.values())


def packed_micro_batches(trajs: list[Trajectory], size: int,
                         max_tokens: int | None = None) -> list[list[list[int]]]:
    """Micro-batches of at most ``size`` trajectories, each a list of clusters (lists of
    indices); a cluster larger than ``size`` is split, and so is one whose packed row would
    be longer than ``max_tokens`` (the mask is T^2 per row; a single trajectory longer than
    that stays one piece, as long as its padded row). Packed rows of similar length share
    a micro-batch (sorted by packed length, then cut), as :func:`length_buckets` does."""
    def packed_len(piece: list[int]) -> int:
        shared = shared_length(trajs[piece[0]])
        return shared + sum(len(trajs[i].token_ids) - shared for i in piece)

    pieces = []
    for c in clusters(trajs):
        for k in range(0, len(c), size):
            piece: list[int] = []
            for i in c[k:k + size]:
                if piece and max_tokens is not None and packed_len(piece + [i]) > max_tokens:
                    pieces.append(piece)
                    piece = []
                piece.append(i)
            pieces.append(piece)

    pieces.sort(key=packed_len)
    out: list[list[list[int]]] = []
    count = size
    for piece in pieces:
        if count + len(piece) > size:
            out.append([])
            count = 0
        out[-1].append(piece)
        count += len(piece)
    return out


def pack(trajs: list[Trajectory], pieces: list[list[int]], pad_id: int, length: int) -> Packed:
    """Packed rows for ``pieces`` (clusters of indices into ``trajs``); ``index`` rows
    follow the order of ``trajs`` = the pieces' indices concatenated, ``length`` = L."""
    rows: list[tuple[list[int], list[int], list[int]]] = []
    where: list[list[int]] = []  # per trajectory: packed (row, column) of each of its tokens
    for r, piece in enumerate(pieces):
        shared = shared_length(trajs[piece[0]])
        ids, pos, seg = list(trajs[piece[0]].token_ids[:shared]), list(range(shared)), [0] * shared
        for k, i in enumerate(piece, start=1):
            tail = trajs[i].token_ids[shared:]
            start = len(ids)
            ids += tail
            pos += range(shared, shared + len(tail))
            seg += [k] * len(tail)
            where.append(list(range(shared)) + list(range(start, start + len(tail))))
        rows.append((ids, pos, seg))
    width = max(len(ids) for ids, _, _ in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    segment = torch.full((n, width), -1, dtype=torch.long)
    for r, (ids, pos, seg) in enumerate(rows):
        input_ids[r, :len(ids)] = torch.tensor(ids)
        position_ids[r, :len(ids)] = torch.tensor(pos)
        segment[r, :len(ids)] = torch.tensor(seg)
    index = torch.full((len(where), length), -1, dtype=torch.long)
    row_of = [r for r, piece in enumerate(pieces) for _ in piece]
    for n_, cols in enumerate(where):
        index[n_, :len(cols)] = row_of[n_] * width + torch.tensor(cols)
    return Packed(input_ids, position_ids, segment, index)


def packed_logprobs(model, packed: Packed, input_ids: torch.Tensor, loss_mask: torch.Tensor,
                    temperature: float = 1.0, entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-prob, entropy) of each trained token, both (N, L) aligned with ``input_ids``
    (the unpacked rows), 0 where ``loss_mask`` is off, from one forward of the packed rows."""
    param = next(model.parameters())
    device = param.device
    rows, cols = (loss_mask[:, 1:] > 0).nonzero(as_tuple=True)  # token cols+1 of row `rows`
    flat = packed.index[rows, cols]  # where its predecessor sits in the packed rows
    width = packed.input_ids.shape[1]
    prow, pcol = flat // width, flat % width
    keep = torch.unique(pcol) if pcol.numel() else torch.zeros(1, dtype=torch.long)
    logits = model(input_ids=packed.input_ids.to(device), position_ids=packed.position_ids.to(device),
                   attention_mask=packed.attention_bias(param.dtype, device),
                   logits_to_keep=keep.to(device), use_cache=False).logits
    if logits.shape[1] != keep.numel():  # a model that ignores logits_to_keep
        logits = logits[:, keep.to(device)]
    picked = logits[prow.to(device), torch.searchsorted(keep, pcol).to(device)]  # (M, V)
    logp_m, ent_m = target_logprobs(picked, input_ids[rows, cols + 1].to(device), temperature, entropy_grad)
    n, length = input_ids.shape
    logp = logp_m.new_zeros(n, length)
    entropy = ent_m.new_zeros(n, length)
    if rows.numel() == 0:  # nothing trained here: keep a (zero) graph for backward
        return logp + 0.0 * logits.sum(), entropy
    logp = logp.index_put((rows.to(device), (cols + 1).to(device)), logp_m)
    entropy = entropy.index_put((rows.to(device), (cols + 1).to(device)), ent_m)
    return logp, entropy
