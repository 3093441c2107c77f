"""Judge text -> :class:`~reagent.records.Judgment`, never an exception.

A judge's output is data from a model, so every way it can be wrong is a *status*, not
a crash, and a caller decides what to do with it (see :mod:`rrm.judge`):

=================== ======================================================= =========
status              meaning                                                 score
=================== ======================================================= =========
``ok``              ``<think>``, ``<critique>``, ``<score>`` in order;       the float
                    score a plain number in [0, 1]
``out_of_range``    well formed, but the number is outside [0, 1]           clipped
``missing_blocks``  the score parses but ``<think>``/``<critique>`` are      None
                    missing, unclosed or out of order
``missing_score``   no ``<score>`` block at all                             None
``unparseable_score`` the score block holds no plain number (``7/10``,       None
                    ``high``, ``0.7 or 0.8``, non-ASCII digits), or there are
                    several ``<score>`` blocks outside think/critique
``truncated``       generation hit its token limit before a score           None
``failed``          the judge produced nothing (set by the judge, not here) None
=================== ======================================================= =========

Only ``ok`` counts as *format-valid*; ``ok`` and ``out_of_range`` carry a usable score.
For non-``ok`` statuses ``extra["error"]`` says what was wrong and ``extra["raw"]``
keeps the text, so a bad judge can be debugged from its output file.
"""

from __future__ import annotations

import math
import re

from reagent.records import Judgment

OK = "ok"
OUT_OF_RANGE = "out_of_range"
MISSING_BLOCKS = "missing_blocks"
MISSING_SCORE = "missing_score"
UNPARSEABLE_SCORE = "unparseable_score"
TRUNCATED = "truncated"
FAILED = "failed"

STATUSES = (OK, OUT_OF_RANGE, MISSING_BLOCKS, MISSING_SCORE, UNPARSEABLE_SCORE, TRUNCATED, FAILED)
SCORED_STATUSES = frozenset({OK, OUT_OF_RANGE})

# A plain decimal in ASCII digits: 0.7, .7, 1, 0.70, 1e-1. No fractions, percentages,
# words, or other scripts' digits (Arabic-Indic, full-width), which float() would accept.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# A <score> block; a missing close tag is allowed only at the very end, because
# OpenAI-compatible servers strip a "</score>" stop string from the text they return.
# Lazy up to the first close, so finditer stays linear in the text length.
_SCORE = re.compile(r"<score>(.*?)(?:</score>|\Z)", re.DOTALL)


def _block(text: str, tag: str) -> tuple[int, int, str] | None:
    """(start, end, inner text) of the first closed ``<tag>...</tag>``, or None.

    Two ``str.find`` calls, not a lazy regex: a regex retried from every unclosed open
    tag is quadratic (a 56 KB critique full of ``<think>`` took seconds).
    """
    open_, close = f"<{tag}>", f"</{tag}>"
    start = text.find(open_)
    if start < 0:
        return None
    end = text.find(close, start + len(open_))
    if end < 0:
        return None
    return start, end + len(close), text[start + len(open_):end].strip()


def parse_score(text: str) -> float | None:
    """The number in a score block, or None when it is not one plain finite number."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def is_scored(judgment: Judgment) -> bool:
    """True when the judgment carries a usable score (``ok`` or clipped ``out_of_range``)."""
    return judgment.status in SCORED_STATUSES and judgment.score is not None


def failed_judgment(error: str, model: str = "") -> Judgment:
    """The judgment a judge returns when it could not produce any output."""
    return Judgment(status=FAILED, score=None, model=model, extra={"error": error})


def parse_judgment(text: str | None, finish_reason: str = "stop", model: str = "") -> Judgment:
    """Parse a judge's output. ``finish_reason`` is the backend's ("stop"/"length")."""
    text = text or ""

    def bad(status: str, error: str, analysis: str = "", critique: str = "") -> Judgment:
        return Judgment(analysis=analysis, critique=critique, score=None, status=status,
                        model=model, extra={"error": error, "raw": text})

    think = _block(text, "think")
    critique = _block(text, "critique")
    analysis_text = think[2] if think else ""
    critique_text = critique[2] if critique else ""
    # A <score> quoted inside the analysis or critique is text, not the verdict.
    spans = [(b[0], b[1]) for b in (think, critique) if b]
    scores = [m for m in _SCORE.finditer(text) if not any(a <= m.start() < b for a, b in spans)]
    if len(scores) > 1:
        return bad(UNPARSEABLE_SCORE, f"{len(scores)} <score> blocks; a judgment has exactly one",
                   analysis_text, critique_text)
    closed = [m for m in scores if m.group(0).endswith("</score>")]
    match = closed[-1] if closed else (scores[-1] if scores else None)
    if match is None or (not closed and finish_reason == "length"):
        if finish_reason == "length":
            return bad(TRUNCATED, "generation hit its token limit before <score>",
                       analysis_text, critique_text)
        return bad(MISSING_SCORE, "no <score> block", analysis_text, critique_text)
    value = parse_score(match.group(1))
    if value is None:
        return bad(UNPARSEABLE_SCORE, f"score is not a plain number: {match.group(1).strip()[:80]!r}",
                   analysis_text, critique_text)
    missing = [tag for tag, blk in (("think", think), ("critique", critique)) if blk is None]
    if missing:
        j = bad(MISSING_BLOCKS, "missing or unclosed block(s): " + ", ".join(missing),
                analysis_text, critique_text)
        j.extra["raw_score"] = value
        return j
    if not think[0] < critique[0] < match.start():
        j = bad(MISSING_BLOCKS, "blocks out of order; expected think, critique, score",
                analysis_text, critique_text)
        j.extra["raw_score"] = value
        return j
    if not 0.0 <= value <= 1.0:
        return Judgment(analysis=analysis_text, critique=critique_text,
                        score=min(max(value, 0.0), 1.0), status=OUT_OF_RANGE, model=model,
                        extra={"error": f"score {value} outside [0, 1], clipped", "raw_score": value})
    return Judgment(analysis=analysis_text, critique=critique_text, score=value, status=OK,
                    model=model)
