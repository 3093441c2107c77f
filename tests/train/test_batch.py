"""Rewards and advantages of hand-built groups: judge failures and missing outcomes are never
trained on as zeros (reagent/train/batch.py's module docstring)."""

import math

import pytest
import torch

from reagent.records import Trajectory
from reagent.train.batch import assign_rewards, select_and_advantage


def trajs(outcomes, groups):
    out = []
    for i, (o, g) in enumerate(zip(outcomes, groups)):
        out.append(Trajectory(id=f"t{i}", task_id=f"q{g}", outcome=o, extra={"group": g}))
    return out


def run(outcomes, scores, groups, policy="outcome_only", lam=0.3, keep_degenerate=False):
    ts = trajs(outcomes, groups)
    keep = [s is not None or policy == "outcome_only" for s in scores]
    counts = assign_rewards(ts, scores, lam, "keep", 0.0, keep=keep, group_ids=groups, judged=True)
    usable = [t for t, k in zip(ts, keep) if k]
    kept, adv, stats = select_and_advantage(usable, [t.extra["group"] for t in usable], "grpo",
                                            keep_degenerate, "keep")
    return ts, kept, adv, stats, counts


def test_outcome_only_rewards_the_whole_group_by_outcome():
    # Group 0: four correct answers; three judged 0.8, one failed. Before, the failed one got
    # 1 + 0.3*0 = 1.0 beside 1.24: advantage (1.0 - 1.18) / 0.1039 = -1.73, a made-up signal.
    # Now every member gets its outcome (1.0): all equal -> degenerate, dropped.
    # Group 1: judged fine (0.2 and 0.6 on outcomes 0 and 1): totals 0.06 and 1.18,
    # mean 0.62, std 0.56 -> advantages -1 and +1.
    ts, kept, adv, stats, counts = run(
        outcomes=[1.0, 1.0, 1.0, 1.0, 0.0, 1.0], scores=[0.8, 0.8, 0.8, None, 0.2, 0.6],
        groups=[0, 0, 0, 0, 1, 1])
    assert [t.rewards["total"] for t in ts[:4]] == [1.0, 1.0, 1.0, 1.0]
    assert all(t.rewards.get("judge_ignored") for t in ts[:4])
    assert ts[4].rewards["total"] == pytest.approx(0.06) and ts[5].rewards["total"] == pytest.approx(1.18)
    assert counts["judge/groups_outcome_only"] == 1
    assert [t.id for t in kept] == ["t4", "t5"]
    assert adv.tolist() == pytest.approx([-1.0, 1.0], abs=1e-5)
    assert stats["groups/dropped_frac"] == 0.5


def test_outcome_only_group_with_mixed_outcomes_still_trains_on_outcome():
    # outcomes 1, 0, 1 with scores 0.9, None, 0.1 -> totals 1, 0, 1: mean 2/3,
    # std sqrt(2/9) = 0.4714 -> advantages +0.707, -1.414, +0.707 (judge ignored for all).
    ts, kept, adv, _, _ = run(outcomes=[1.0, 0.0, 1.0], scores=[0.9, None, 0.1], groups=[0, 0, 0])
    assert [t.rewards["total"] for t in ts] == [1.0, 0.0, 1.0]
    assert adv.tolist() == pytest.approx([math.sqrt(0.5), -math.sqrt(2), math.sqrt(0.5)], abs=1e-5)


def test_drop_removes_failed_members_before_the_advantage_and_rechecks_degeneracy():
    # Group 0: the failed member leaves; the other three (1 + 0.3*0.8 = 1.24 each) are
    # all equal -> degenerate, dropped. Group 1: 0.3*0.5 = 0.15 and 1 + 0.3*0.5 = 1.15 remain.
    ts, kept, adv, stats, counts = run(
        outcomes=[1.0, 1.0, 1.0, 0.0, 0.0, 1.0], scores=[0.8, 0.8, 0.8, None, 0.5, 0.5],
        groups=[0, 0, 0, 0, 1, 1], policy="drop")
    assert counts["judge/groups_outcome_only"] == 0
    assert ts[0].rewards["total"] == pytest.approx(1.24)
    assert [t.id for t in kept] == ["t4", "t5"]
    assert adv.tolist() == pytest.approx([-1.0, 1.0], abs=1e-5)


def test_missing_outcome_never_enters_a_loss():
    # t1's backend failed (outcome None): no reward, not in the batch, and the rest of its
    # group is normalised without it: totals 1.06 and 0.03 -> advantages +1, -1.
    ts, kept, adv, _, counts = run(outcomes=[1.0, None, 0.0], scores=[0.2, None, 0.1],
                                   groups=[0, 0, 0], policy="drop")
    assert ts[1].rewards["total"] is None and counts["episodes/outcome_none"] == 1
    assert [t.id for t in kept] == ["t0", "t2"]
    assert adv.tolist() == pytest.approx([1.0, -1.0], abs=1e-5)
    # Under outcome_only too: t1 leaves, and its missing judgment does not switch the group
    # to outcome-only rewards (it is not trained on either way), so the judge term stays.
    ts, kept, adv, _, counts = run(outcomes=[1.0, None, 0.0], scores=[0.2, None, 0.1], groups=[0, 0, 0])
    assert [t.id for t in kept] == ["t0", "t2"] and counts["judge/groups_outcome_only"] == 0
    assert ts[0].rewards["total"] == pytest.approx(1.06)
    assert adv.tolist() == pytest.approx([1.0, -1.0], abs=1e-5)


def test_without_a_judge_rewards_are_the_outcome():
    ts = trajs([1.0, 0.0], [0, 0])
    counts = assign_rewards(ts, [None, None], 0.0, "keep", 0.0, group_ids=[0, 0], judged=False)
    assert [t.rewards["total"] for t in ts] == [1.0, 0.0]
    assert counts["judge/groups_outcome_only"] == 0
    kept, adv, _ = select_and_advantage(ts, [0, 0], "grpo", False, "keep")
    assert torch.allclose(adv, torch.tensor([1.0, -1.0]), atol=1e-5)
