"""Short-answer QA scoring: SQuAD normalisation, exact match and token F1.

This follows the SQuAD v1.1 evaluation script (lowercase, drop punctuation, drop the
articles a/an/the, collapse whitespace) with the HotpotQA official rule for
yes/no-style answers: when either side normalises to one of ``yes``, ``no``,
``true``, ``false`` or ``noanswer`` and the two differ, F1 is 0. Without it, "no"
against "no way" earns partial credit and a policy learns to hedge. (HotpotQA's
script lists yes/no/noanswer; true/false are added because the same hedging
argument applies to them.)

A reference may be one string or a list of aliases; the score is the best over them.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
CLOSED_ANSWERS = frozenset({"yes", "no", "true", "false", "noanswer"})


def normalize_answer(s: Any) -> str:
    """SQuAD normalisation: lowercase, no punctuation, no articles, single spaces."""
    s = "" if s is None else str(s)
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: Any, reference: Any) -> float:
    """1.0 when the normalised strings are identical."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: Any, reference: Any) -> float:
    """Harmonic mean of token precision and recall after normalisation (bag of tokens)."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if (pred in CLOSED_ANSWERS or ref in CLOSED_ANSWERS) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    if not pred_tokens or not ref_tokens:
        # Two empty answers agree; one empty answer gets nothing.
        return float(pred_tokens == ref_tokens)
    common = Counter(pred_tokens) & Counter(ref_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def as_references(reference: Any) -> list[str]:
    """A reference field as a list of alias strings (a single answer becomes a one-item list)."""
    if reference is None:
        return []
    if isinstance(reference, (list, tuple)):
        return [str(r) for r in reference if r is not None]
    return [str(reference)]


def best_over_references(
    metric: Callable[[Any, Any], float], prediction: Any, references: Any
) -> float:
    """The best ``metric(prediction, ref)`` over all aliases; 0.0 when there is no reference."""
    refs = as_references(references)
    return max((metric(prediction, r) for r in refs), default=0.0)


def short_answer_scores(prediction: Any, references: Any) -> dict[str, float]:
    """Both metrics at once, each the best over the aliases: ``{"em": ..., "f1": ...}``."""
    return {
        "em": best_over_references(exact_match, prediction, references),
        "f1": best_over_references(token_f1, prediction, references),
    }


def em_reward_fn(
    prompts: Sequence, completions: Sequence[str], answer: Sequence, **fields: Any
) -> list[float | None]:
    """Reward-function form of exact match; ``completions`` are the extracted final answers."""
    if len(answer) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(answer)} answers")
    return [best_over_references(exact_match, c, a) for c, a in zip(completions, answer)]


def f1_reward_fn(
    prompts: Sequence, completions: Sequence[str], answer: Sequence, **fields: Any
) -> list[float | None]:
    """Reward-function form of token F1; ``completions`` are the extracted final answers."""
    if len(answer) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(answer)} answers")
    return [best_over_references(token_f1, c, a) for c, a in zip(completions, answer)]
