"""The scorer interface: aggregation arithmetic, the judge over step prefixes, value heads."""

from __future__ import annotations

import pytest

from reagent.records import Judgment, Trajectory
from reagent.scorers import AGGREGATES, JudgeScorer, StepValueScorer, aggregate, step_prefixes


def traj(n_steps: int = 3, tid: str = "t") -> Trajectory:
    msgs = [{"role": "user", "content": "q"}]
    for k in range(n_steps):
        msgs.append({"role": "assistant", "content": f"step {k}"})
        msgs.append({"role": "tool", "content": f"result {k}", "tool_call_id": f"c{k}"})
    return Trajectory.from_dict({"id": tid, "task_id": "x", "messages": msgs, "outcome": 1.0})


def test_aggregates_on_hand_worked_values():
    v = [0.5, 0.8, 0.25]
    assert aggregate(v, "last") == 0.25
    assert aggregate(v, "min") == 0.25
    assert aggregate(v, "mean") == pytest.approx((0.5 + 0.8 + 0.25) / 3)
    assert aggregate(v, "product") == pytest.approx(0.5 * 0.8 * 0.25)  # 0.1
    assert aggregate([1.5, -0.2], "product") == 0.0  # clamped to [0, 1] first: 1 * 0
    assert aggregate(None, "min") is None and aggregate([], "last") is None
    with pytest.raises(ValueError, match="aggregate='max' is not one of last, min, mean, product"):
        aggregate(v, "max")
    assert set(AGGREGATES) == {"last", "min", "mean", "product"}


def test_step_prefixes_cut_after_each_step_with_its_tool_results():
    cuts = step_prefixes(traj(3))
    assert [len(c.messages) for c in cuts] == [3, 5, 7]
    assert cuts[1].messages[-1].content == "result 1" and cuts[1].id == "t@1"


class CountingJudge:
    """Scores a trajectory by the number of assistant turns it holds / 4; fails on 'bad'."""

    def __init__(self):
        self.calls = []

    def score(self, trajs):
        self.calls.append(len(trajs))
        return [Judgment(score=None, status="parse_error") if t.id.startswith("bad")
                else Judgment(score=sum(m.role == "assistant" for m in t.messages) / 4) for t in trajs]


def test_judge_scorer_trajectory_and_step_level():
    judge = CountingJudge()
    scorer = JudgeScorer(judge)
    trajs = [traj(2, "a"), traj(3, "bad")]
    assert scorer(trajs) == [0.5, None]
    assert trajs[0].judge.score == 0.5 and trajs[1].judge.status == "parse_error"
    assert scorer.score_steps(trajs) == [[0.25, 0.5], None]  # one failed prefix: not scored
    assert judge.calls == [2, 5]  # all prefixes of all trajectories in one batched call


class FixedSteps:
    def score_steps(self, trajs):
        return [[0.9, 0.2, 0.6] if t.id == "a" else None for t in trajs]


def test_step_value_scorer_aggregates_and_keeps_none():
    trajs = [traj(3, "a"), traj(3, "b")]
    assert StepValueScorer(FixedSteps(), "last")(trajs) == [0.6, None]
    assert StepValueScorer(FixedSteps(), "min")(trajs) == [0.2, None]
    with pytest.raises(ValueError, match="aggregate='sum'"):
        StepValueScorer(FixedSteps(), "sum")


def test_load_value_scorer_checks_the_kind(tmp_path):
    import json

    from rrm.prm import load_value_scorer

    (tmp_path / "reagent_prm.json").write_text(json.dumps({"objective": "prm", "beta": 0.0}))
    with pytest.raises(ValueError, match="trained as pvm .*use --scorer pvm"):
        load_value_scorer("prm", tmp_path)
    with pytest.raises(ValueError, match="no reagent_prm.json"):
        load_value_scorer("prm", tmp_path / "nothing")
    with pytest.raises(ValueError, match="scorer='judge' is not one of prm, pvm, orm"):
        load_value_scorer("judge", tmp_path)
