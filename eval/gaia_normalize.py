"""GAIA's official answer scorer, re-implemented so local numbers match the leaderboard's.

The leaderboard's rule (``question_scorer`` in the GAIA leaderboard's ``scorer.py``),
restated:

1. If the ground truth parses as a number, the prediction has ``$``, ``%`` and ``,``
   removed and is compared as a float (exact float equality; an unparseable
   prediction never matches).
2. Else, if the ground truth contains ``,`` or ``;``, both are split on those
   characters; the lists must have the same length and match element by element,
   numbers by rule 1 and strings after removing whitespace and lowercasing
   (punctuation is *kept* inside list elements).
3. Else both strings are compared after removing all whitespace and punctuation and
   lowercasing ("sea gull" equals "Seagull").

It is deliberately strict (no unit handling, no rounding); that is why GAIA's answer
checker in this project falls back to an LLM judge when this rule says no.
"""

from __future__ import annotations

import re
import string

_STRIP_FROM_NUMBERS = ("$", "%", ",")
_PUNCT_TABLE = str.maketrans("", "", string.punctuation)
_WHITESPACE = re.compile(r"\s")
_LIST_SEPARATORS = re.compile(r"[,;]")


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def number_value(text: str) -> float:
    """A prediction read as a number after dropping ``$ % ,``; ``inf`` when it is not one.

    ``inf`` (never equal to a finite truth) rather than an exception keeps rule 1 a
    plain comparison, as in the official scorer.
    """
    for ch in _STRIP_FROM_NUMBERS:
        text = text.replace(ch, "")
    try:
        return float(text)
    except ValueError:
        return float("inf")


def normalize_text(text: str, remove_punct: bool = True) -> str:
    """Lowercase with every whitespace character removed, and punctuation too unless told not to."""
    text = _WHITESPACE.sub("", text).lower()
    return text.translate(_PUNCT_TABLE) if remove_punct else text


def gaia_score(prediction: str | None, truth: str) -> bool:
    """Whether ``prediction`` is correct for GAIA ground truth ``truth`` under the official rule."""
    prediction = "None" if prediction is None else str(prediction)  # as the official scorer does
    truth = str(truth)
    if _parses_as_float(truth):
        return number_value(prediction) == float(truth)
    if _LIST_SEPARATORS.search(truth):
        truth_items = _LIST_SEPARATORS.split(truth)
        pred_items = _LIST_SEPARATORS.split(prediction)
        if len(truth_items) != len(pred_items):
            return False
        for pred_item, truth_item in zip(pred_items, truth_items):
            if _parses_as_float(truth_item):
                ok = number_value(pred_item) == float(truth_item)
            else:
                ok = normalize_text(pred_item, remove_punct=False) == normalize_text(
                    truth_item, remove_punct=False
                )
            if not ok:
                return False
        return True
    return normalize_text(prediction) == normalize_text(truth)
