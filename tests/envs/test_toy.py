"""The ledger task: disjoint splits, tools, demonstrator flaws and the process checker."""

import random

import pytest

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
