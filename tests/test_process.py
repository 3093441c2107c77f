"""Process stats of an episode from the rules checker: flaws by kind, tool calls, tokens."""

from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.envs import make_env
from reagent.process import ANSWER_NEUTRAL, process_metrics, process_stats
from reagent.records import Task
from tests.scripted import ScriptedBackend
from tests.test_agent import call, solver


def sloppy(text, turn):
    """Solves, but first looks up every account twice and an account that does not exist."""
    if turn == 0:
        return solver(text, 0) + "\n" + solver(text, 0) + "\n" + call("lookup", account="ZZ")
    return solver(text, turn)


def test_flaws_by_kind_and_means(tiny_tokenizer):
    env = make_env("toy", seed=3)
    tasks = [t for t in env.tasks("train", 30) if t.meta["kind"] == "single"][:2]
    loop = AgentLoop(ScriptedBackend(tiny_tokenizer, solver), env, AgentConfig(max_turns=4, max_tokens=2000))
    clean = loop.run(specs_for(env, tasks, 1))
    loop = AgentLoop(ScriptedBackend(tiny_tokenizer, sloppy), env, AgentConfig(max_turns=4, max_tokens=2000))
    messy = loop.run(specs_for(env, tasks, 1))
    for traj in clean + messy:
        assert traj.outcome == 1.0  # the flaws are answer-neutral: both are right
    s = process_stats(tasks[0], clean[0])
    assert s["answer_neutral_flaws"] == 0 and s["flaws"] == {} and s["tool_calls"] == 1
    assert s["tokens"] == sum(clean[0].loss_mask) > 0
    s = process_stats(tasks[0], messy[0])
    assert s["flaws"] == {"missing_account": 1, "repeated_call": 1} and s["tool_calls"] == 3
    assert set(s["flaws"]) <= set(ANSWER_NEUTRAL) and s["answer_neutral_flaws"] == 2
    m = process_metrics([process_stats(t, x) for t, x in zip(tasks * 2, clean + messy)] + [None])
    assert m["process/answer_neutral_flaws"] == 1.0  # (0 + 0 + 2 + 2) / 4
    assert m["process/flaws/repeated_call"] == 0.5 and m["process/tool_calls"] == 2.0
    assert process_metrics([]) == {}


def test_non_toy_tasks_have_no_flaw_counts(tiny_tokenizer):
    from reagent.records import Message, Trajectory

    traj = Trajectory(id="q#0", task_id="q", messages=[Message(role="user", content="2+2?"),
                                                        Message(role="assistant", content="\\boxed{4}")])
    s = process_stats(Task(id="q", question="2+2?", answer="4"), traj)
    assert s == {"tool_calls": 0, "tokens": None, "flaws": {}}
    assert "process/answer_neutral_flaws" not in process_metrics([s])
