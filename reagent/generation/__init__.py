"""Generation backends: transformers (``hf``), vLLM (``vllm``), OpenAI-compatible HTTP
(``openai``). See :mod:`reagent.generation.base` for the two interfaces.

Backends are not imported here, so ``import reagent.generation`` stays cheap and never
touches vLLM; import them from their modules or build one with :func:`make_backend`.
"""

from reagent.generation.base import ChatBackend, Generation, SamplingParams, TokenBackend
from reagent.generation.factory import BACKEND_KINDS, make_backend

__all__ = ["BACKEND_KINDS", "ChatBackend", "Generation", "SamplingParams", "TokenBackend",
           "make_backend"]
