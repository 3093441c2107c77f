"""Benchmark metrics: a prediction's outcome under its benchmark's checker, pass@k, mean ± stderr.

Checkers are named by the benchmark registry (``reagent.tasksets.loaders.BENCHMARKS``):

* ``math`` — math-verify equivalence of the final answer (its last ``\\boxed{}`` if any);
* ``short_answer`` — exact match after SQuAD normalisation, best over aliases;
* ``gaia`` — GAIA's official normaliser first; when it says no and a judge is given,
  the LLM judge decides (the official rule rejects "17 km" for "17");
* ``llm_judge`` — the LLM judge alone.

An outcome is ``None`` when the judge could not judge. Aggregates refuse ``None``
so the caller decides, visibly, whether to drop such items or count them wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from eval.gaia_normalize import gaia_score
from reagent.rewards.llm_judge import LLMAnswerChecker
from reagent.rewards.math import extract_boxed, math_equal
from reagent.rewards.short_answer import best_over_references, exact_match

CHECKERS = ("math", "short_answer", "gaia", "llm_judge")


def _first_reference(reference: Any) -> str:
    if isinstance(reference, (list, tuple)):
        return str(reference[0]) if reference else ""
    return "" if reference is None else str(reference)


def _math_outcome(prediction: Any, reference: Any) -> float:
    text = "" if prediction is None else str(prediction)
    answer = extract_boxed(text) or text
    refs = reference if isinstance(reference, (list, tuple)) else [reference]
    return float(any(math_equal(answer, r) for r in refs))


def score_predictions(
    checker: str,
    predictions: Sequence[Any],
    references: Sequence[Any],
    questions: Sequence[str] | None = None,
    judge: LLMAnswerChecker | None = None,
) -> list[float | None]:
    """Outcome (1.0/0.0, or None when a judge could not judge) of each final answer.

    Judge calls go through ``judge.check_batch`` so they run concurrently; for
    ``gaia`` only predictions the official rule rejects are sent to the judge.
    """
    if checker not in CHECKERS:
        raise ValueError(f"unknown checker {checker!r}; valid checkers: {', '.join(CHECKERS)}")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    questions = list(questions) if questions is not None else [""] * len(predictions)
    if len(questions) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(questions)} questions")
    if checker == "math":
        return [_math_outcome(p, r) for p, r in zip(predictions, references)]
    if checker == "short_answer":
        return [best_over_references(exact_match, p, r) for p, r in zip(predictions, references)]
    if checker == "llm_judge":
        if judge is None:
            raise ValueError("checker 'llm_judge' needs judge=LLMAnswerChecker(...)")
        return judge.scores(questions, predictions, references)
    # gaia: the official rule, then the judge for what it rejects.
    out: list[float | None] = [
        float(gaia_score(p, _first_reference(r))) for p, r in zip(predictions, references)
    ]
    if judge is not None:
        misses = [i for i, v in enumerate(out) if v == 0.0]
        judged = judge.scores(
            [questions[i] for i in misses],
            [predictions[i] for i in misses],
            [references[i] for i in misses],
        )
        for i, score in zip(misses, judged):
            out[i] = score
    return out


def score_prediction(
    checker: str,
    prediction: Any,
    reference: Any,
    question: str = "",
    judge: LLMAnswerChecker | None = None,
) -> float | None:
    """:func:`score_predictions` for one item."""
    return score_predictions(checker, [prediction], [reference], [question], judge)[0]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021).

    ``1 - C(n-c, k) / C(n, k)``, computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` so
    no huge binomials are formed. Example: n=5, c=2, k=2 gives 1 - C(3,2)/C(5,2) =
    1 - 3/10 = 0.7.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std with n-1, over sqrt(n)).

    The standard error of a single value is undefined and returned as NaN rather
    than 0, which would claim a certainty one sample cannot give.
    """
    vals = list(values)
    if not vals:
        raise ValueError("mean_and_stderr of no values")
    if any(v is None for v in vals):
        raise ValueError(
            "values contain None (could not judge); drop them or count them as 0 explicitly"
        )
    n = len(vals)
    mean = math.fsum(vals) / n
    if n == 1:
        return mean, float("nan")
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    return mean, math.sqrt(var / n)
