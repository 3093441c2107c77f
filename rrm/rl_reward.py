"""The reward of the judge's RL stage: is the verdict well formed, and does it agree?

Agent-RRM (Fan et al. 2025) trains its judge in two stages, SFT on teacher verdicts and
then RL on the judge's own verdicts. This module is that stage's reward, for one
sampled verdict ``v`` of a judge example with teacher score ``t`` and outcome ``o``::

    r(v) = w_format  * f(v)
         + w_score   * (1 - |s(v) - t|)          if v carries a score s(v), else 0
         + w_outcome * (1 - |s(v) - clip(o)|)    if v carries a score s(v), else 0

``s`` and the status are :func:`rrm.parse.parse_judgment`'s. The format term ``f`` is 1
for a format-valid verdict (status ``ok``: all three blocks, ``<think>``,
``<critique>``, ``<score>``, in order, with a plain number in [0, 1]); otherwise it is
``partial * parts / 3``, where ``parts`` counts the closed ``<think>`` block, the closed
``<critique>`` block and a ``<score>`` block holding a plain number. With
``partial = 0`` the term is format validity alone; a judge whose SFT left every
sampled verdict broken gets no signal from it, so GRPO groups all tie and nothing is
learnt (measured on a nano judge: 12 steps, every group degenerate), while partial
credit ranks "closer to the format" higher. An ``out_of_range`` score is clipped to
[0, 1] and counts for agreement; a verdict without a usable score earns no
agreement: a computed reward (the verdict is bad), not a missing one.

A reward that *cannot* be computed is ``None``, never 0: when a term has a non-zero
weight but the example lacks its reference (no teacher score for ``w_score``, no
outcome for ``w_outcome``). The trainer skips such examples before generating and
counts them (:func:`missing_reference`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rrm.parse import OK, SCORED_STATUSES, _block, parse_judgment


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the three terms (each >= 0, sum > 0) and the partial format credit."""

    format: float = 0.5
    score: float = 1.0
    outcome: float = 0.0
    partial: float = 0.0  # share of the format term a broken verdict can earn, in [0, 1)

    def __post_init__(self):
        if not 0.0 <= self.partial < 1.0:
            raise ValueError(f"partial format credit {self.partial} must be in [0, 1)")
        for name in ("format", "score", "outcome"):
            if getattr(self, name) < 0:
                raise ValueError(f"reward weight {name}={getattr(self, name)} must be >= 0")
        if self.format + self.score + self.outcome <= 0:
            raise ValueError("reward weights are all 0: set format, score or outcome > 0")


def missing_reference(weights: RewardWeights, teacher_score: float | None,
                      outcome: float | None) -> str | None:
    """Why an example's reward cannot be computed (a weighted term lacks its reference)."""
    if weights.score > 0 and teacher_score is None:
        return "no teacher score (w_score > 0)"
    if weights.outcome > 0 and outcome is None:
        return "no outcome (w_outcome > 0)"
    return None


def format_term(text: str, judgment, partial: float) -> float:
    """1 for a format-valid verdict, else ``partial`` x the share of its three parts present."""
    if judgment.status == OK:
        return 1.0
    if partial == 0.0:
        return 0.0
    has_score = judgment.score is not None or judgment.extra.get("raw_score") is not None
    parts = (_block(text or "", "think") is not None) + (_block(text or "", "critique") is not None)
    return partial * (parts + has_score) / 3.0


def verdict_reward(text: str, finish_reason: str, teacher_score: float | None,
                   outcome: float | None, weights: RewardWeights) -> tuple[float | None, dict]:
    """``(reward or None, terms)`` for one verdict; ``terms`` has the status and each term."""
    judgment = parse_judgment(text, finish_reason)
    terms: dict = {"status": judgment.status, "format": format_term(text, judgment, weights.partial),
                   "score_agreement": None, "outcome_agreement": None}
    if missing_reference(weights, teacher_score, outcome) is not None:
        return None, terms
    scored = judgment.status in SCORED_STATUSES and judgment.score is not None
    s = judgment.score if scored else None
    if teacher_score is not None:
        terms["score_agreement"] = 1.0 - abs(s - float(teacher_score)) if scored else 0.0
    if outcome is not None:
        o = min(max(float(outcome), 0.0), 1.0)
        terms["outcome_agreement"] = 1.0 - abs(s - o) if scored else 0.0
    reward = weights.format * terms["format"]
    reward += weights.score * (terms["score_agreement"] or 0.0)
    reward += weights.outcome * (terms["outcome_agreement"] or 0.0)
    return reward, terms


def judge_rewards(prompts: Sequence[object], completions: Sequence[str], *,
                  finish_reasons: Sequence[str], teacher_scores: Sequence[float | None],
                  outcomes: Sequence[float | None], weights: RewardWeights) -> list[float | None]:
    """The plain reward-function form ``(prompts, completions, **fields) -> list[float | None]``."""
    n = len(completions)
    if not (len(prompts) == len(finish_reasons) == len(teacher_scores) == len(outcomes) == n):
        raise ValueError("prompts, completions, finish_reasons, teacher_scores and outcomes "
                         f"must have equal lengths; got {len(prompts)}, {n}, {len(finish_reasons)}, "
                         f"{len(teacher_scores)}, {len(outcomes)}")
    return [verdict_reward(c, f, t, o, weights)[0]
            for c, f, t, o in zip(completions, finish_reasons, teacher_scores, outcomes)]
