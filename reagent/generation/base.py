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

from dataclasses import dataclass, field


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

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        raise NotImplementedError


class ChatBackend:
    """Generates from chat messages (OpenAI format); returns text only."""

    supports_tokens = False

    def chat(self, conversations: list[list[dict]], params: SamplingParams,
             tools: list[dict] | None = None) -> list[Generation]:
        raise NotImplementedError
