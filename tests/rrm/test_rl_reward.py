"""The judge-RL reward by hand: format term, agreement terms, None for a missing reference."""

from __future__ import annotations

import pytest

from rrm.rl_reward import RewardWeights, judge_rewards, missing_reference, verdict_reward

GOOD = "<think>\nlooked up both\n</think>\n<critique>\n- none\n</critique>\n<score>0.8</score>"


def test_well_formed_verdict_gets_format_and_agreement():
    w = RewardWeights(format=0.5, score=1.0, outcome=0.25)
    r, terms = verdict_reward(GOOD, "stop", teacher_score=0.6, outcome=1.0, weights=w)
    # 0.5 * 1 + 1.0 * (1 - |0.8 - 0.6|) + 0.25 * (1 - |0.8 - 1.0|) = 0.5 + 0.8 + 0.2 = 1.5
    assert r == pytest.approx(1.5)
    assert terms["status"] == "ok" and terms["format"] == 1.0
    assert terms["score_agreement"] == pytest.approx(0.8)
    assert terms["outcome_agreement"] == pytest.approx(0.8)


def test_out_of_range_score_agrees_but_is_not_format_valid():
    text = GOOD.replace("0.8", "1.4")
    r, terms = verdict_reward(text, "stop", 1.0, None, RewardWeights(format=1.0, score=1.0))
    # clipped to 1.0: format 0, agreement 1 - |1.0 - 1.0| = 1
    assert terms["status"] == "out_of_range" and r == pytest.approx(1.0)


@pytest.mark.parametrize("text,finish", [
    ("<think>x</think><critique>y</critique><score>high</score>", "stop"),  # unparseable
    ("<score>0.9</score>", "stop"),  # blocks missing: a score, but not a valid verdict
    ("<think>rambling on and on", "length"),  # truncated
    ("", "stop"),
])
def test_broken_verdict_earns_nothing_but_is_a_computed_zero(text, finish):
    r, terms = verdict_reward(text, finish, 0.0, 0.0, RewardWeights(format=1.0, score=1.0, outcome=1.0))
    # a teacher score of 0 would have given "1 - |s - 0|" credit to a score of 0: a broken
    # verdict gets none, and the reward is 0.0 (computed), not None
    assert r == 0.0 and terms["format"] == 0.0
    assert terms["score_agreement"] == 0.0 and terms["outcome_agreement"] == 0.0


def test_missing_reference_is_none_not_zero():
    w = RewardWeights(format=0.5, score=1.0, outcome=0.0)
    assert verdict_reward(GOOD, "stop", None, 1.0, w)[0] is None
    assert missing_reference(w, None, 1.0) == "no teacher score (w_score > 0)"
    # the outcome is not needed when its weight is 0
    assert verdict_reward(GOOD, "stop", 0.8, None, w)[0] == pytest.approx(1.5)
    w_out = RewardWeights(format=0.0, score=0.0, outcome=1.0)
    assert verdict_reward(GOOD, "stop", 0.8, None, w_out)[0] is None
    assert missing_reference(w_out, 0.8, None) == "no outcome (w_outcome > 0)"


def test_reward_function_form_and_length_check():
    w = RewardWeights(format=1.0, score=0.0)
    out = judge_rewards(["p", "p"], [GOOD, "junk"], finish_reasons=["stop", "stop"],
                        teacher_scores=[None, None], outcomes=[1.0, 0.0], weights=w)
    assert out == [1.0, 0.0]
    with pytest.raises(ValueError, match="equal lengths"):
        judge_rewards(["p"], [GOOD, GOOD], finish_reasons=["stop"], teacher_scores=[1.0],
                      outcomes=[1.0], weights=w)


@pytest.mark.parametrize("kwargs,match", [
    ({"format": -1.0}, "format=-1.0 must be >= 0"),
    ({"format": 0.0, "score": 0.0, "outcome": 0.0}, "all 0"),
])
def test_bad_weights_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RewardWeights(**kwargs)


def test_partial_format_credit_counts_the_parts_present():
    w = RewardWeights(format=1.0, score=0.0, partial=0.6)
    # think + critique, no score: 0.6 * 2/3 = 0.4
    r, _ = verdict_reward("<think>a</think><critique>b</critique>", "stop", None, None, w)
    assert r == pytest.approx(0.4)
    # a numeric score without the blocks: 0.6 * 1/3 = 0.2
    assert verdict_reward("<score>0.9</score>", "stop", None, None, w)[0] == pytest.approx(0.2)
    # nothing at all: 0; a valid verdict: the full 1
    assert verdict_reward("hello", "stop", None, None, w)[0] == 0.0
    assert verdict_reward(GOOD, "stop", None, None, w)[0] == 1.0
    with pytest.raises(ValueError, match="partial format credit 1.0"):
        RewardWeights(partial=1.0)
