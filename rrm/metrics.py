"""Judge quality, as pure functions over plain lists.

The report answers "is this judge any good?" from four angles:

* ``format_valid_rate``: share of outputs with status ``ok`` (a judge that cannot keep
  the format is no reward model at all);
* ``score_mae`` and ``score_pearson``: agreement with the teacher's score, over the
  items both scored;
* ``auroc``: does the score rank correct trajectories (outcome >= 0.5) above incorrect
  ones? Rank-based (Mann-Whitney U with average ranks), so ties count one half;
* ``pairwise_accuracy``: for the same question, is a correct trajectory scored above an
  incorrect one? Ties count one half, so a constant judge gets 0.5, not 0 or 1.

Items the judge could not score are left out of the score metrics and counted in
``coverage``. Because a judge that fails selectively (on the hard items) would then look
better than it is, AUROC and pairwise accuracy are also reported with every failure
counted as the worst score (``auroc_failures_worst``, ``pairwise_accuracy_failures_worst``):
what a trainer that ranks a failed judgment last would see.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from rrm.parse import OK

WORST_SCORE = -1.0  # below every valid score in [0, 1]: a failed judgment ranks last


def format_valid_rate(statuses: Sequence[str]) -> float | None:
    """Share of statuses equal to ``ok``; None for no items."""
    return sum(s == OK for s in statuses) / len(statuses) if statuses else None


def _pairs(a: Sequence[float | None], b: Sequence[float | None]) -> list[tuple[float, float]]:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} predictions vs {len(b)} targets")
    return [(float(x), float(y)) for x, y in zip(a, b) if x is not None and y is not None]


def mae(pred: Sequence[float | None], target: Sequence[float | None]) -> float | None:
    """Mean absolute error over the items where both values exist."""
    pairs = _pairs(pred, target)
    return sum(abs(x - y) for x, y in pairs) / len(pairs) if pairs else None


def pearson(pred: Sequence[float | None], target: Sequence[float | None]) -> float | None:
    """Pearson correlation over items where both exist; None if either side is constant."""
    pairs = _pairs(pred, target)
    if len(pairs) < 2:
        return None
    n = len(pairs)
    mx = sum(x for x, _ in pairs) / n
    my = sum(y for _, y in pairs) / n
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def auroc(scores: Sequence[float | None], labels: Sequence[bool | None]) -> float | None:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count 1/2).

    Equals P(score of a random positive > score of a random negative) + 0.5 P(tie),
    computed from ranks: (sum of positive ranks - P(P+1)/2) / (P N). None when one
    class is absent.
    """
    pairs = [(float(s), bool(y)) for s, y in zip(scores, labels, strict=True)
             if s is not None and y is not None]
    n_pos = sum(y for _, y in pairs)
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks([s for s, _ in pairs])
    rank_sum = sum(r for r, (_, y) in zip(ranks, pairs) if y)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def pairwise_accuracy(
    groups: Sequence[str], scores: Sequence[float | None], labels: Sequence[bool | None]
) -> tuple[float | None, int]:
    """(accuracy, number of pairs) over (correct, incorrect) pairs within each group.

    A pair counts 1 if the correct item's score is higher, 0.5 if tied, 0 otherwise.
    Groups are questions (task ids); items without a score or label are skipped.
    """
    by_group: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for g, s, y in zip(groups, scores, labels, strict=True):
        if s is None or y is None:
            continue
        by_group[g][0 if y else 1].append(float(s))
    total, n = 0.0, 0
    for pos, neg in by_group.values():
        for p in pos:
            for q in neg:
                total += 1.0 if p > q else 0.5 if p == q else 0.0
                n += 1
    return (total / n if n else None), n


def correct(outcome: float | None, threshold: float = 0.5) -> bool | None:
    """A trajectory counts as correct when its outcome reward is at least ``threshold``."""
    return None if outcome is None else outcome >= threshold


def judge_report(
    statuses: Sequence[str],
    scores: Sequence[float | None],
    teacher_scores: Sequence[float | None],
    outcomes: Sequence[float | None],
    groups: Sequence[str],
    threshold: float = 0.5,
) -> dict:
    """The judge-quality report; keys are slash-free so callers can namespace them."""
    n = len(statuses)
    if not (len(scores) == len(teacher_scores) == len(outcomes) == len(groups) == n):
        raise ValueError("judge_report: all inputs must have one entry per item")
    labels = [correct(o, threshold) for o in outcomes]
    pair_acc, n_pairs = pairwise_accuracy(groups, scores, labels)
    worst = [WORST_SCORE if s is None else s for s in scores]
    status_counts: dict[str, int] = defaultdict(int)
    for s in statuses:
        status_counts[s] += 1
    scored = [s for s in scores if s is not None]
    return {
        "n": n,
        "format_valid_rate": format_valid_rate(statuses),
        "coverage": len(scored) / n if n else None,
        "score_mean": sum(scored) / len(scored) if scored else None,
        "score_mae": mae(scores, teacher_scores),
        "score_pearson": pearson(scores, teacher_scores),
        "auroc": auroc(scores, labels),
        "pairwise_accuracy": pair_acc,
        "n_pairs": n_pairs,
        "auroc_failures_worst": auroc(worst, labels),
        "pairwise_accuracy_failures_worst": pairwise_accuracy(groups, worst, labels)[0],
        "statuses": dict(sorted(status_counts.items())),
    }
