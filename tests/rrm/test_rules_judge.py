"""The oracle judge: the toy rules checker behind the judge interface (issue 19)."""

import pytest

from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.envs import make_env
from reagent.envs.toy_checker import rules_judgment
from reagent.records import Trajectory
from rrm.judge import RULES, FailureCounter, RulesJudge, apply_failure_policy, make_judge
from tests.scripted import ScriptedBackend
from tests.test_agent import solver


def guesser(text, turn):
    return "\\boxed{7}"


def test_rules_judge_scores_like_the_checker_and_fails_on_unknown_tasks(tiny_tokenizer):
    env = make_env("toy", seed=2)
    tasks = env.tasks("heldout", 4)
    runs = []
    for script in (solver, guesser):
        loop = AgentLoop(ScriptedBackend(tiny_tokenizer, script), env, AgentConfig(max_turns=4, max_tokens=2000))
        runs += loop.run(specs_for(env, tasks, 1))
    judge = make_judge(RULES, tasks=tasks)
    assert isinstance(judge, RulesJudge) and judge.model == "rules"
    stranger = Trajectory(id="x#0", task_id="toy-heldout-999", messages=runs[0].messages)
    got = judge.score(runs + [stranger])
    by_task = {t.id: t for t in tasks}
    for traj, j in zip(runs, got):
        want = rules_judgment(by_task[traj.task_id], traj)
        assert (j.score, j.critique, j.status) == (want.score, want.critique, "ok")
    assert all(j.score == 1.0 for j in got[:4]) and all(j.score < 1.0 for j in got[4:8])
    assert "guess" in got[4].critique  # "never guess a balance"
    assert got[8].score is None and got[8].status == "failed" and "toy-heldout-999" in got[8].extra["error"]
    assert judge.stats == {"ok": 8, "failed": 1}
    scores, keep = apply_failure_policy(got, "drop", FailureCounter())
    assert scores[8] is None and keep[8] is False
    with pytest.raises(ValueError, match="needs the toy tasks"):
        make_judge(RULES)
