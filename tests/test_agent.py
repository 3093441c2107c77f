"""The batched agent loop: stop reasons, masks, tool execution, token budget, real HF backend."""

import json
import re

import pytest

from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.envs import make_env
from reagent.generation.hf import HFBackend
from reagent.records import Trajectory
from tests.scripted import ScriptedBackend


def call(name, **args):
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


def solver(text, turn):
    """Looks up the asked accounts, adds them with calc, answers: a correct agent."""
    names = re.findall(r'"([A-Z])"', text.split("<|im_start|>user")[1].split("<|im_end|>")[0])
    results = re.findall(r"<tool_response>\n(-?\d+)\n</tool_response>", text)
    if turn == 0:
        return "\n".join(call("lookup", account=n) for n in names)
    if turn == 1 and len(names) > 1:
        op = "-" if "more money" in text else "+"
        return call("calc", expr=op.join(results))
    return f"\\boxed{{{results[-1]}}}"


@pytest.fixture(scope="module")
def env():
    return make_env("toy", seed=1)


def test_scripted_agent_solves_and_masks_only_its_tokens(env, tiny_tokenizer):
    backend = ScriptedBackend(tiny_tokenizer, solver)
    tasks = env.tasks("train", 6)
    trajs = AgentLoop(backend, env, AgentConfig(max_turns=4, max_tokens=2000)).run(specs_for(env, tasks, 2))
    assert [t.id for t in trajs] == [f"{t.id}#{k}" for t in tasks for k in range(2)]
    assert backend.batch_sizes[0] == 12  # every live episode generates in one call
    for traj in trajs:
        Trajectory.from_dict(traj.to_dict())
        assert traj.stop_reason == "answered" and traj.outcome == 1.0, traj.messages
        masked_in = tiny_tokenizer.decode([i for i, m in zip(traj.token_ids, traj.loss_mask) if m])
        assert "lookup" in masked_in and "\\boxed" in masked_in
        for msg in traj.messages:
            if msg.role in ("tool", "user", "system"):
                assert msg.content not in masked_in or msg.content.isdigit()
        assert "<tool_response>" not in masked_in and "Use lookup(account)" not in masked_in


def test_stop_reasons_max_turns_and_max_tokens(env, tiny_tokenizer):
    looper = ScriptedBackend(tiny_tokenizer, lambda text, turn: call("lookup", account="A"))
    (t,) = AgentLoop(looper, env, AgentConfig(max_turns=3, max_tokens=5000)).run(specs_for(env, env.tasks("train", 1), 1))
    assert (t.stop_reason, t.truncated, t.outcome, t.extra["turns"]) == ("max_turns", True, 0.0, 3)
    rambler = ScriptedBackend(tiny_tokenizer, lambda text, turn: "word " * 400)
    (t,) = AgentLoop(rambler, env, AgentConfig(max_new_tokens=50, max_tokens=50)).run(specs_for(env, env.tasks("train", 1), 1))
    assert (t.stop_reason, t.truncated) == ("max_tokens", True)
    assert sum(t.loss_mask) == 50


def test_malformed_call_is_reported_back_to_the_agent(env, tiny_tokenizer):
    script = lambda text, turn: '<tool_call>{"name": "lookup", "arguments": {</tool_call>' if turn == 0 else "\\boxed{1}"  # noqa: E731
    (t,) = AgentLoop(ScriptedBackend(tiny_tokenizer, script), env, AgentConfig()).run(specs_for(env, env.tasks("train", 1), 1))
    tool_msg = next(m for m in t.messages if m.role == "tool")
    assert tool_msg.content.startswith("Error: invalid JSON")
    assert t.stop_reason == "answered"


def test_real_hf_backend_rollout_is_valid(env, tiny_model_dir):
    backend = HFBackend(str(tiny_model_dir), device="cpu")
    loop = AgentLoop(backend, env, AgentConfig(max_turns=2, max_tokens=64, max_new_tokens=32, seed=3))
    trajs = loop.run(specs_for(env, env.tasks("train", 3), 2))
    assert len(trajs) == 6
    for t in trajs:
        Trajectory.from_dict(t.to_dict())
        assert t.stop_reason in ("answered", "max_turns", "max_tokens")
        assert len(t.token_ids) == len(t.loss_mask) and 0 < sum(t.loss_mask) <= 64
        prompt = t.extra["prompt_length"]
        assert set(t.loss_mask[:prompt]) == {0} and t.loss_mask[prompt] == 1


def test_one_long_episode_changes_no_other_episode(env, tiny_tokenizer):
    """Budgets are per episode: a runaway episode in the batch used to cut every other
    episode at *its* remaining budget (the smallest), truncating them mid-answer."""
    tasks = env.tasks("train", 4)
    runaway_q = tasks[0].question

    def script(text, turn):
        if runaway_q in text:  # burns ~90% of its budget in turn 1, never answers
            return "hmm " * 80 + call("lookup", account="A")
        return "Let me check. " * 4 + solver(text, turn)

    # before the fix every episode's turn 2 was cut at the runaway's ~12 tokens left
    config = AgentConfig(max_turns=8, max_tokens=200, max_new_tokens=200)
    with_it = AgentLoop(ScriptedBackend(tiny_tokenizer, script), env, config).run(specs_for(env, tasks, 2))
    without = AgentLoop(ScriptedBackend(tiny_tokenizer, script), env, config).run(specs_for(env, tasks[1:], 2))
    assert [t.stop_reason for t in with_it[:2]] == ["max_tokens"] * 2  # the runaway really ran away
    others = with_it[2:]
    assert [t.id for t in others] == [t.id for t in without]
    assert [t.token_ids for t in others] == [t.token_ids for t in without]
    assert all(t.stop_reason == "answered" and t.outcome == 1.0 for t in others)


def test_sampled_episodes_do_not_depend_on_their_batch(env, tiny_model_dir):
    """Real model, temperature 1: every episode samples from its own stream with its own
    budget, so adding an episode (a long-prompt one) to the batch changes no other's tokens."""
    from reagent.agent import EpisodeSpec
    from reagent.envs.base import initial_messages
    from reagent.records import Message

    backend = HFBackend(str(tiny_model_dir), device="cpu")
    config = AgentConfig(max_turns=2, max_tokens=40, max_new_tokens=24, temperature=1.0, seed=5)
    tasks = env.tasks("train", 3)
    specs = specs_for(env, tasks, 2)
    long_task = env.tasks("train", 4)[3]
    long_prompt = initial_messages(env, long_task)
    long_prompt[-1] = Message(role="user", content=long_prompt[-1].content + " Think it through." * 40)
    extra = EpisodeSpec(task=long_task, messages=long_prompt, id="extra#0")
    alone = AgentLoop(backend, env, config).run(specs)
    shared = AgentLoop(backend, env, config).run([extra] + specs)[1:]
    assert [t.token_ids for t in shared] == [t.token_ids for t in alone]
    assert len({tuple(t.token_ids) for t in alone}) == len(alone)  # really sampled, not all alike
