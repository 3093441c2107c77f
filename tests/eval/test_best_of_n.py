"""Best-of-N through `reagent eval` with any scorer: the curve of accuracy against N."""

import json
from collections import Counter

import pytest

from eval import cli_eval
from eval.best_of_n import bon_curve, pick_best
from reagent.scorers import FunctionScorer
from tests.eval.test_harness import scripted_toy, toy_config  # noqa: F401  (fixture)
from tests.test_agent import solver


def test_pick_best_ranks_unscored_last_and_breaks_ties_early():
    assert pick_best([0.2, None, 0.9, 0.9]) == 2
    assert pick_best([None, None]) == 0
    with pytest.raises(ValueError):
        pick_best([])


def test_bon_curve_by_hand():
    recs = [{"candidates": [{"env_outcome": 0.0, "scorer_score": 0.9}, {"env_outcome": 1.0, "scorer_score": 0.5}]},
            {"candidates": [{"env_outcome": 1.0, "scorer_score": None}, {"env_outcome": 0.0, "scorer_score": 0.1}]}]
    # n=1: picks are the first candidates: wrong, right -> 0.5; pass@1 = 0.5.
    # n=2: record 1 picks 0.9 (wrong), record 2 picks 0.1 over None (wrong) -> 0; pass@2 = 1.
    assert bon_curve(recs) == [{"n": 1, "accuracy": 0.5, "pass@n": 0.5, "records": 2},
                               {"n": 2, "accuracy": 0.0, "pass@n": 1.0, "records": 2}]


def one_right_sample(order):
    """Question j (in first-seen order) is solved only by its sample j % 4; others guess."""
    calls = Counter()

    def script(text, turn):
        question = text.split("<|im_start|>user")[1].split("<|im_end|>")[0]
        if question not in order:
            order.append(question)
        if turn == 0:
            calls[question] += 1
        return solver(text, turn) if calls[question] - 1 == order.index(question) % 4 else "\\boxed{0}"

    return script


@pytest.mark.parametrize("scorer,expected", [
    ("oracle", [0.25, 0.5, 1.0]),  # knows the answer: reaches pass@N at every N
    ("first", [0.25, 0.25, 0.25]),  # no information: stays at the first sample's accuracy
])
def test_best_of_n_with_a_scorer_that_knows_the_answer_reaches_pass_at_n(
        scripted_toy, monkeypatch, tmp_path, scorer, expected):  # noqa: F811
    scripted_toy(one_right_sample([]))
    fns = {"oracle": lambda trajs: [float((t.outcome or 0.0) >= 1.0) for t in trajs],
           "first": lambda trajs: [0.0] * len(trajs)}
    monkeypatch.setattr(cli_eval, "make_scorer", lambda c, judge: FunctionScorer(fns[scorer], scorer))
    c = toy_config(tmp_path, best_of=4, scorer="prm", scorer_model="unused")
    assert cli_eval.run(c) == 0
    out = tmp_path / "toy"
    curve = json.loads((out / "best_of_n.json").read_text())["curve"]
    assert [r["n"] for r in curve] == [1, 2, 4]
    assert [r["pass@n"] for r in curve] == [0.25, 0.5, 1.0]
    assert [r["accuracy"] for r in curve] == expected
    assert (out / "best_of_n.png").stat().st_size > 1000 and "| 4 |" in (out / "best_of_n.md").read_text()
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert all(len(r["candidates"]) == 4 and "scorer_score" in r["candidates"][0] for r in recs)


def test_value_scorers_need_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="--scorer pvm needs --scorer-model"):
        toy_config(tmp_path, best_of=2, scorer="pvm")
    with pytest.raises(ValueError, match="scorer='best' is not one of judge, prm, pvm, orm"):
        toy_config(tmp_path, best_of=2, scorer="best", scorer_model="x")
    with pytest.raises(ValueError, match="aggregate='max'"):
        toy_config(tmp_path, best_of=2, scorer="prm", scorer_model="x", aggregate="max")
