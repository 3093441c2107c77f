import math
from fractions import Fraction
from itertools import product

import pytest

from eval.metrics import mean_and_stderr, pass_at_k, score_prediction, score_predictions


def test_pass_at_k_hand_computed():
    # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    # k = 1 is the fraction correct: 1/4
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(5, 3, 3) == 1.0  # only 2 wrong samples: every 3-subset has a right one


def test_pass_at_k_matches_binomial_formula_and_is_stable():
    for n, c, k in product(range(1, 12), range(12), range(1, 12)):
        if c <= n and k <= n:
            exact = 1 - math.comb(n - c, k) / math.comb(n, k)
            assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    # C(2000, 1000) overflows a float; the product form does not.
    assert 0.0 < pass_at_k(2000, 1, 1000) == pytest.approx(0.5)
    assert pass_at_k(1000, 1, 1) == pytest.approx(0.001)
    exact = 1 - Fraction(math.comb(1500, 1000), math.comb(2000, 1000))
    assert pass_at_k(2000, 500, 1000) == pytest.approx(float(exact), rel=1e-9)


@pytest.mark.parametrize("n, c, k", [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_and_stderr():
    # mean 0.5; sample variance = 4 * 0.25 / 3 = 1/3; stderr = sqrt(1/3 / 4) = 0.288675...
    mean, se = mean_and_stderr([1, 0, 1, 0])
    assert mean == 0.5 and se == pytest.approx(math.sqrt(1 / 12))
    mean, se = mean_and_stderr([2.0])
    assert mean == 2.0 and math.isnan(se)
    assert mean_and_stderr([3, 3, 3]) == (3.0, 0.0)
    with pytest.raises(ValueError):
        mean_and_stderr([])
    with pytest.raises(ValueError, match="None"):
        mean_and_stderr([1.0, None])


class FakeJudge:
    """Stands in for LLMAnswerChecker: says correct when the prediction contains 'km'."""

    def __init__(self):
        self.seen = []

    def scores(self, questions, predictions, references):
        self.seen += list(predictions)
        return [None if p == "???" else (1.0 if "km" in p else 0.0) for p in predictions]


def test_score_predictions_per_checker():
    assert score_predictions("math", [r"so \boxed{0.5}", "1/2", "3"], [r"\frac{1}{2}"] * 3) == [
        1.0,
        1.0,
        0.0,
    ]
    assert score_predictions(
        "short_answer", ["The Rush", "Genesis"], [["rush", "Rush (band)"], "Rush"]
    ) == [1.0, 0.0]
    assert score_prediction("gaia", "Sea gull", "seagull") == 1.0
    assert score_prediction("gaia", "17 km", "17") == 0.0  # no judge: the official rule alone


def test_gaia_sends_only_rule_misses_to_the_judge():
    judge = FakeJudge()
    out = score_predictions(
        "gaia", ["17", "17 km", "12", "???"], ["17"] * 4, ["how far?"] * 4, judge=judge
    )
    assert out == [1.0, 1.0, 0.0, None]
    assert judge.seen == ["17 km", "12", "???"]


def test_llm_judge_checker_needs_a_judge_and_names_are_checked():
    with pytest.raises(ValueError, match="judge"):
        score_prediction("llm_judge", "a", "a")
    assert score_predictions("llm_judge", ["5 km"], ["5"], judge=FakeJudge()) == [1.0]
    with pytest.raises(ValueError, match="math, short_answer, gaia, llm_judge"):
        score_prediction("fuzzy", "a", "a")
