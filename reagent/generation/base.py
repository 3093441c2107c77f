"""One interface over generation backends (transformers, vLLM, OpenAI-compatible HTTP).

Two shapes of backend exist because they keep different things:

* token backends (``hf``, ``vllm``) take prompt *token ids* and return the generated
  token ids exactly as sampled, which the trainer needs (token-in/token-out: no
  re-tokenisation drift between rollout and loss);
* chat backends (``openai``) take chat *messages* and return text only; they serve
  evaluation, teachers and remote judges.

``supports_tokens`` tells the agent loop which path to take.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass
class SamplingParams:
    """Sampling settings shared by every backend. ``temperature=0`` means greedy."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    stop: list[str] = field(default_factory=list)  # stop strings, kept in the output
    seed: int | None = None
    logprobs: bool = False  # also return the log-prob of each sampled token (token backends)
    # Per-row limits: row i of a call stops at ``min(max_new_tokens, row_max_new_tokens[i])``
    # ("length"). The agent loop gives each episode its own remaining budget this way, so
    # one long episode never shortens the others of its batch. ``None``: every row gets
    # ``max_new_tokens``. When set, its length must equal the number of prompts.
    row_max_new_tokens: list[int] | None = None
    # Per-row seeds: row i samples from its own stream seeded ``row_seeds[i]`` (instead of
    # ``seed`` shared by the call), so what a row samples does not depend on which other
    # rows share its batch. When set, its length must equal the number of prompts.
    row_seeds: list[int] | None = None

    def row_limits(self, n: int) -> list[int]:
        """The token limit of each of ``n`` rows; raises when the per-row list does not fit."""
        if self.row_max_new_tokens is None:
            return [self.max_new_tokens] * n
        if len(self.row_max_new_tokens) != n:
            raise ValueError(f"row_max_new_tokens has {len(self.row_max_new_tokens)} limits for "
                             f"{n} prompts; give one limit per prompt")
        return [min(self.max_new_tokens, int(m)) for m in self.row_max_new_tokens]

    def for_row(self, i: int, n: int) -> SamplingParams:
        """These settings for row ``i`` of ``n`` alone (one request per row: vLLM, HTTP)."""
        limit = self.max_new_tokens
        if self.row_max_new_tokens is not None:
            if len(self.row_max_new_tokens) != n:
                self.row_limits(n)  # raises with the message
            limit = min(limit, int(self.row_max_new_tokens[i]))
        seed = self.seed
        if self.row_seeds is not None:
            seed = self.row_seed_list(n)[i]
        return replace(self, max_new_tokens=limit, row_max_new_tokens=None, seed=seed, row_seeds=None)

    def row_seed_list(self, n: int) -> list[int]:
        """``row_seeds`` checked against ``n`` prompts."""
        if self.row_seeds is None or len(self.row_seeds) != n:
            raise ValueError(f"row_seeds has {None if self.row_seeds is None else len(self.row_seeds)} "
                             f"seeds for {n} prompts; give one seed per prompt")
        return [int(s) for s in self.row_seeds]


@dataclass
class Generation:
    """One completion. ``finish_reason`` is "stop" (eos or stop string), "length", or
    "error" when a remote request failed for good; ``error`` then says why, so a failed
    request is never mistaken for an empty answer."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str = "stop"
    logprobs: list[float] | None = None
    error: str | None = None


class TokenBackend:
    """Generates from token ids in one batch; returns ids as sampled."""

    supports_tokens = True
    tokenizer = None

    def any_rank_busy(self, local_busy: bool) -> bool:
        """Whether any process still has episodes to generate for.

        Single-process backends answer ``local_busy``. A backend that must run the same
        number of forward passes on every rank (ZeRO-3) all-reduces it; a rank with
        nothing left then keeps calling :meth:`generate` with no prompts until every rank
        is done.
        """
        return local_busy

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        raise NotImplementedError


class ChatBackend:
    """Generates from chat messages (OpenAI format); returns text only."""

    supports_tokens = False

    def chat(self, conversations: list[list[dict]], params: SamplingParams,
             tools: list[dict] | None = None) -> list[Generation]:
        raise NotImplementedError
