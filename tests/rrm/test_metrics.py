"""Judge-quality metrics against hand-computed values."""

import math

import pytest

from rrm.metrics import auroc, format_valid_rate, judge_report, mae, pairwise_accuracy, pearson


def test_format_valid_rate():
    assert format_valid_rate(["ok", "truncated", "ok", "out_of_range"]) == 0.5
    assert format_valid_rate([]) is None


def test_mae_skips_missing():
    # |0.5-1| + |0.2-0| = 0.7 over 2 pairs; the None pair is skipped.
    assert mae([0.5, None, 0.2], [1.0, 0.3, 0.0]) == pytest.approx(0.35)


def test_pearson_hand_computed():
    # x = 1,2,3; y = 2,4,5: means 2, 11/3; sxy = (-1)(-5/3)+0+(1)(4/3) = 3;
    # sxx = 2; syy = 25/9 + 1/9 + 16/9 = 42/9.  r = 3 / sqrt(2 * 42/9) = 0.9820
    assert pearson([1, 2, 3], [2, 4, 5]) == pytest.approx(3 / math.sqrt(2 * 42 / 9))
    assert pearson([1, 1, 1], [0, 1, 2]) is None
    assert pearson([1], [1]) is None


def test_auroc_hand_computed_with_ties():
    # positives 0.9, 0.5; negatives 0.5, 0.1.  Pairs (pos, neg):
    # (0.9,0.5)=1 (0.9,0.1)=1 (0.5,0.5)=0.5 (0.5,0.1)=1 -> 3.5 / 4
    assert auroc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == pytest.approx(0.875)
    assert auroc([0.1, 0.9], [True, False]) == 0.0
    assert auroc([0.3, 0.3, 0.3], [True, False, True]) == 0.5
    assert auroc([0.2, 0.4], [True, True]) is None
    assert auroc([0.2, None, 0.4], [True, False, None]) is None


def test_auroc_matches_pair_loop():
    import random

    rng = random.Random(0)
    s = [round(rng.random(), 1) for _ in range(40)]
    y = [rng.random() < 0.4 for _ in range(40)]
    pos = [a for a, b in zip(s, y) if b]
    neg = [a for a, b in zip(s, y) if not b]
    loop = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    assert auroc(s, y) == pytest.approx(loop / (len(pos) * len(neg)))


def test_pairwise_accuracy_within_groups_only():
    groups = ["a", "a", "a", "b", "b", "c"]
    scores = [0.9, 0.2, 0.9, 0.4, 0.6, 0.1]
    labels = [True, False, False, True, False, True]
    # group a: (0.9 vs 0.2)=1, (0.9 vs 0.9)=0.5; group b: (0.4 vs 0.6)=0; c has no pair.
    acc, n = pairwise_accuracy(groups, scores, labels)
    assert n == 3 and acc == pytest.approx(1.5 / 3)
    assert pairwise_accuracy(["a"], [0.5], [True]) == (None, 0)


def test_judge_report_counts_failures_in_coverage():
    r = judge_report(
        statuses=["ok", "ok", "failed", "out_of_range"],
        scores=[0.8, 0.2, None, 1.0],
        teacher_scores=[0.9, 0.1, 0.5, 0.7],
        outcomes=[1.0, 0.0, 1.0, 0.0],
        groups=["q1", "q1", "q2", "q2"],
    )
    assert r["n"] == 4 and r["format_valid_rate"] == 0.5 and r["coverage"] == 0.75
    assert r["score_mae"] == pytest.approx((0.1 + 0.1 + 0.3) / 3)
    assert r["pairwise_accuracy"] == 1.0 and r["n_pairs"] == 1  # q2's correct item failed
    assert r["auroc"] == pytest.approx(0.5)  # pos {0.8}; neg {0.2, 1.0}
    assert r["statuses"] == {"failed": 1, "ok": 2, "out_of_range": 1}


def test_failures_counted_worst_cannot_flatter_a_selective_judge():
    # The judge fails exactly on the correct item of q2, which a coverage-only report hides.
    r = judge_report(
        statuses=["ok", "ok", "failed", "ok"],
        scores=[0.8, 0.2, None, 0.1],
        teacher_scores=[None] * 4,
        outcomes=[1.0, 0.0, 1.0, 0.0],
        groups=["q1", "q1", "q2", "q2"],
    )
    assert r["auroc"] == 1.0 and r["pairwise_accuracy"] == 1.0  # scored items: perfect
    # Failure -> -1: pos {0.8, -1}, neg {0.2, 0.1}: pairs won 2 of 4 -> 0.5.
    assert r["auroc_failures_worst"] == pytest.approx(0.5)
    # q1: 0.8 > 0.2 wins; q2: -1 < 0.1 loses -> 0.5.
    assert r["pairwise_accuracy_failures_worst"] == pytest.approx(0.5)
