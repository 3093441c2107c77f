"""Which tools an environment offers is configuration: ``tools: []`` gives a single-turn,
tool-free task with no tool schema in the prompt (reagent.envs.with_tools)."""

import json

import pytest

from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.envs import with_tools
from reagent.envs.math_env import MathEnv
from reagent.envs.toy import ToyEnv
from reagent.records import Task
from reagent.train.config import TrainConfig
from tests.scripted import ScriptedBackend


def math_tasks():
    return [Task(id="q1", question="What is 2 + 3?", answer="5")]


def prompt_text(env, tokenizer) -> str:
    seen = []
    loop = AgentLoop(ScriptedBackend(tokenizer, lambda text, turn: seen.append(text) or "\\boxed{5}"), env,
                     AgentConfig(max_turns=1))
    [traj] = loop.run(specs_for(env, math_tasks(), 1))
    assert traj.outcome == 1.0 and traj.final_answer == "5"
    return seen[0]


def test_math_without_tools_has_no_schema_in_the_prompt(tiny_tokenizer):
    default = MathEnv(task_list=math_tasks())
    bare = with_tools(default, [])
    assert bare.tools_for(math_tasks()[0]) == {} and default.use_python  # the original is untouched
    with_python, without = prompt_text(default, tiny_tokenizer), prompt_text(bare, tiny_tokenizer)
    assert '"python"' in with_python and "python" not in without
    assert len(tiny_tokenizer(without)["input_ids"]) < len(tiny_tokenizer(with_python)["input_ids"])
    assert with_tools(default, None) is default


def test_toy_offers_only_the_named_tools_and_unknown_names_are_errors():
    task = ToyEnv().tasks("train", 1)[0]
    assert set(with_tools(ToyEnv(), ["lookup"]).tools_for(task)) == {"lookup"}
    with pytest.raises(ValueError, match="search not offered by env=toy; valid: lookup, calc"):
        with_tools(ToyEnv(), ["search"])


def test_train_config_validates_tools_and_builds_the_tool_free_env(tmp_path):
    from reagent.train.setup import build_env_and_tasks

    with pytest.raises(ValueError, match=r"tools=\['search'\] is not valid for env=math"):
        TrainConfig(env="math", benchmark="gsm8k", tools=["search"])
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}) + "\n")
    config = TrainConfig(env="math", benchmark="gsm8k", train_data=str(data), tools=[])
    env, tasks = build_env_and_tasks(config)
    assert env.tools_for(tasks[0]) == {} and "python" not in env.system_prompt(tasks[0])
    default_env, _ = build_env_and_tasks(TrainConfig(env="math", benchmark="gsm8k", train_data=str(data)))
    assert set(default_env.tools_for(tasks[0])) == {"python"}


def test_rollout_cli_runs_a_tool_free_single_turn_task(tiny_model_dir, tmp_path):
    import subprocess
    import sys

    from reagent.jsonl import load_records
    from reagent.records import Trajectory

    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}) + "\n")
    out = tmp_path / "traces.jsonl"
    cmd = [sys.executable, "-m", "reagent", "rollout", "--model", str(tiny_model_dir), "--benchmark", "gsm8k",
           "--data", str(data), "--out", str(out), "--max-turns", "1", "--max-new-tokens", "8",
           "--device", "cpu", "tools=[]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    [traj] = load_records(out, Trajectory)
    system = traj.messages[0]
    assert system.role == "system" and "python" not in system.content
    assert [m.role for m in traj.messages][-1] == "assistant" and not traj.messages[-1].tool_calls
