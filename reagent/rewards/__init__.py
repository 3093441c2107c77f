"""Outcome rewards: did the agent's final answer match the reference?

* :mod:`.math` — last ``\\boxed{}`` answer, symbolic equivalence via math-verify.
* :mod:`.short_answer` — SQuAD/HotpotQA exact match and token F1 over answer aliases.
* :mod:`.llm_judge` — an LLM over an OpenAI-compatible endpoint decides; failures are
  ``could_not_judge`` with score None, never a silent 0.

Benchmark-specific scorers (GAIA's normaliser) live in ``eval``, which builds on these.
"""

from reagent.rewards.llm_judge import AnswerCheck, LLMAnswerChecker, parse_verdict
from reagent.rewards.math import extract_boxed, gsm8k_reference, math_equal, math_reward
from reagent.rewards.short_answer import (
    best_over_references,
    exact_match,
    normalize_answer,
    token_f1,
)

__all__ = [
    "AnswerCheck",
    "LLMAnswerChecker",
    "best_over_references",
    "exact_match",
    "extract_boxed",
    "gsm8k_reference",
    "math_equal",
    "math_reward",
    "normalize_answer",
    "parse_verdict",
    "token_f1",
]
