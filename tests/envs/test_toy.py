"""The ledger task: disjoint splits, tools, demonstrator flaws and the process checker."""

import random

import pytest

from reagent.critique import revision_messages
from reagent.envs import last_boxed, make_env
from reagent.envs.toy import CalcTool, split_of
from reagent.envs.toy_checker import check_process, rules_judgment
from reagent.envs.toy_demos import FLAWS, demonstrate, demonstrations
from reagent.records import Message, ToolCall, Trajectory


@pytest.fixture(scope="module")
def env():
    return make_env("toy", seed=3)


def test_splits_are_disjoint_and_seeded(env):
    train, held = env.tasks("train", 400), env.tasks("heldout", 100)
    assert not {t.question for t in train} & {t.question for t in held}
    assert all(split_of(t.question) == "heldout" for t in held)
    assert [t.to_dict() for t in env.tasks("train", 5)] == [t.to_dict() for t in train[:5]]
    assert len({t.id for t in train}) == 400
    with pytest.raises(ValueError, match="split"):
        env.tasks("test")


def test_tools_hide_state_and_fail_readably(env):
    task = env.tasks("train", 1)[0]
    tools = env.tools_for(task)
    name = task.meta["asked"][0]
    assert tools["lookup"](account=name) == str(task.meta["ledger"][name])
    assert tools["lookup"](account="Z").startswith("Error")
    assert CalcTool()(expr="(3+4)*2") == "14"
    assert CalcTool()(expr="__import__('os')").startswith("Error")
    assert CalcTool()(expr="1/0").startswith("Error")


def test_last_boxed():
    assert last_boxed("\\boxed{1} then \\boxed{ {2} }") == "{2}"
    assert last_boxed("<think>\\boxed{9}</think> no answer") is None
    assert last_boxed("nothing") is None


@pytest.mark.parametrize("flaw", [None, *FLAWS])
def test_demonstrator_and_checker_agree(env, flaw):
    rng = random.Random(0)
    tasks = [t for t in env.tasks("train", 200)
             if (t.meta["kind"] == "single") == (flaw == "needless_calc")][:20]
    for task in tasks:
        traj = demonstrate(env, task, flaw, rng)
        Trajectory.from_dict(traj.to_dict())  # valid record
        report = check_process(task, traj)
        if flaw is None:
            assert traj.outcome == 1.0 and report.flaws == [] and report.score == 1.0
        elif not FLAWS[flaw]:
            assert traj.outcome == 1.0, flaw  # answer still right: only the process is flawed
            assert flaw in report.flaws and report.score < 1.0
        elif traj.outcome == 0.0:
            assert report.score <= 0.5, (flaw, report.flaws)


def test_critique_never_reveals_the_answer(env):
    for traj, task in zip(demonstrations(env, env.tasks("train", 300), flaw_rate=1.0), env.tasks("train", 300)):
        j = rules_judgment(task, traj)
        assert task.answer not in j.critique, (task.answer, j.critique)
        assert 0.0 <= j.score <= 1.0


def test_checker_flags_malformed_and_unknown_calls(env):
    task = env.tasks("train", 1)[0]
    traj = Trajectory(task_id=task.id, messages=[
        Message(role="user", content=task.question),
        Message(role="assistant", content="", tool_calls=[
            ToolCall(id="1", arguments="{bad", error="invalid JSON"),
            ToolCall(id="2", name="search", arguments="{}")]),
        Message(role="tool", content="Error", tool_call_id="1"),
        Message(role="tool", content="Error", tool_call_id="2"),
        Message(role="assistant", content="I don't know")])
    report = check_process(task, traj)
    assert {"malformed_call", "unknown_tool", "no_answer"} <= set(report.flaws)
    assert report.score == 0.0


def test_verdict_names_each_fix_once_and_counts_repeated_flaws(env):
    task = env.tasks("train", 1)[0]
    traj = Trajectory(task_id=task.id, messages=[
        Message(role="user", content=task.question),
        Message(role="assistant", content="", tool_calls=[
            ToolCall(id="1", name="lookup", arguments='{"account": "Z"}'),
            ToolCall(id="2", name="lookup", arguments='{"account": "Y"}'),
            ToolCall(id="3", arguments="{bad", error="invalid JSON"),
            ToolCall(id="4", arguments="{worse", error="invalid JSON")]),
        *[Message(role="tool", content=c, tool_call_id=i) for i, c in
          (("1", "Error: no account named Z"), ("2", "Error: no account named Y"), ("3", "Error"), ("4", "Error"))],
        Message(role="assistant", content="no idea")])
    j = rules_judgment(task, traj)
    assert "missing_account x2" in j.analysis and "malformed_call x2" in j.analysis
    lines = j.critique.splitlines()
    assert len(lines) == len(set(lines)) == 3  # missing accounts, malformed calls, no answer
    assert any("Z, Y" in line for line in lines)
    assert j.score == 0.0  # both repeats still cost: 0.4 + 0.4 + 0.7


def test_revision_demos_show_a_critiqued_attempt_then_a_clean_one(env):
    tasks = env.tasks("train", 80)
    demos = demonstrations(env, tasks, flaw_rate=0.3, seed=1, revision_rate=0.5)
    revisions = [(d, t) for d, t in zip(demos, tasks) if d.extra["demo_flaw"] == "revision"]
    assert 20 < len(revisions) < 60
    first_scores = []
    for traj, task in revisions:
        Trajectory.from_dict(traj.to_dict())  # valid record
        users = [i for i, m in enumerate(traj.messages) if m.role == "user"]
        assert len(users) == 2
        first = Trajectory(task_id=task.id, messages=traj.messages[:users[1]])
        judged = rules_judgment(task, first)
        first_scores.append(judged.score)
        injected = revision_messages(first, judged.critique)[-1]
        assert traj.messages[users[1]].content == injected.content  # critiqued as at inference
        assert injected.content.endswith(task.question)  # restated where a small policy copies from
        second = Trajectory(task_id=task.id, messages=[traj.messages[0], *traj.messages[users[1] + 1:]])
        assert check_process(task, second).flaws == [] and traj.outcome == 1.0
        ids = [tc.id for m in traj.messages for tc in m.tool_calls or []]
        assert len(ids) == len(set(ids))
    flawed = sum(score < 1.0 for score in first_scores)
    assert 0.25 * len(first_scores) < flawed < 0.75 * len(first_scores)  # clean and flawed first attempts
