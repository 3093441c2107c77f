import pytest

from reagent.rewards.short_answer import (
    best_over_references,
    em_reward_fn,
    exact_match,
    f1_reward_fn,
    normalize_answer,
    short_answer_scores,
    token_f1,
)


def test_normalize_answer():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer(None) == ""
    assert normalize_answer(1984) == "1984"


def test_exact_match():
    assert exact_match("the Eiffel Tower", "Eiffel tower.") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0


def test_token_f1_hand_computed():
    # pred {barack, obama}, ref {obama}: P = 1/2, R = 1, F1 = 2*0.5*1/1.5 = 2/3
    assert token_f1("Barack Obama", "Obama") == pytest.approx(2 / 3)
    # pred {new, york, city}, ref {new, york}: P = 2/3, R = 1, F1 = 0.8
    assert token_f1("New York City", "new york") == pytest.approx(0.8)
    assert token_f1("Paris", "London") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("", "x") == 0.0


def test_yes_no_answers_are_compared_exactly():
    assert exact_match("no", "not sure") == 0.0
    assert token_f1("no", "not sure") == 0.0
    # Plain F1 would give 2/3 here; the HotpotQA rule gives 0.
    assert token_f1("no way", "no") == 0.0
    assert token_f1("no", "no way") == 0.0
    assert token_f1("True", "true it is") == 0.0
    assert token_f1("Yes.", "yes") == 1.0
    assert token_f1("yes", "true") == 0.0


def test_best_over_references():
    assert best_over_references(token_f1, "Obama", ["Barack Obama", "Obama"]) == 1.0
    assert best_over_references(exact_match, "NYC", "New York City") == 0.0
    assert best_over_references(exact_match, "NYC", []) == 0.0
    assert short_answer_scores("Barack Obama", ["Obama"]) == {"em": 0.0, "f1": pytest.approx(2 / 3)}


def test_reward_fns():
    assert em_reward_fn(None, ["Rush", "Yes"], answer=[["rush", "Rush (band)"], "no"]) == [1.0, 0.0]
    assert f1_reward_fn(None, ["Barack Obama"], answer=["Obama"]) == [pytest.approx(2 / 3)]
    with pytest.raises(ValueError):
        em_reward_fn(None, ["a"], answer=[])
