"""The math and qa environments: tasks, tools, answers, outcomes, and a scripted episode each."""

import json
import re

import pytest

from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.envs import make_env
from reagent.envs.math_env import MathEnv
from reagent.envs.qa import QAEnv, write_corpus
from reagent.jsonl import write_records
from reagent.records import Task
from tests.scripted import ScriptedBackend

DOCS = [
    {
        "id": "d1",
        "title": "Arthur's Magazine",
        "text": "Arthur's Magazine was an American literary "
        "periodical first published in 1844 in Philadelphia.",
    },
    {
        "id": "d2",
        "title": "First for Women",
        "text": "First for Women is a woman's magazine "
        "published by Bauer Media Group in the USA, started in 1989.",
    },
    {
        "id": "d3",
        "title": "Bauer Media Group",
        "text": "Bauer Media Group is a German media company based in Hamburg.",
    },
]


def call(name, **args):
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': args})}\n</tool_call>"


def test_math_env_needs_given_tasks_and_checks_symbolically(tmp_path):
    env = make_env("math")
    with pytest.raises(ValueError, match="--tasks.*--benchmark"):
        env.tasks("test")
    tasks = [
        Task(id="m1", question="Half of one?", answer="\\frac{1}{2}"),
        Task(id="m2", question="Two forms", answer=["3", "three"]),
    ]
    write_records(tmp_path / "t.jsonl", tasks)
    from_file = MathEnv(tasks_file=str(tmp_path / "t.jsonl"))
    assert [t.id for t in from_file.tasks("any", limit=1)] == ["m1"]
    env = MathEnv(task_list=tasks)
    assert env.tool_schemas_in_prompt and "\\boxed" in env.system_prompt(tasks[0])
    assert env.extract_answer("<think>\\boxed{9}</think> so \\boxed{0.5}.") == "0.5"
    assert env.outcome(tasks[0], "0.5") == env.outcome(tasks[0], "1/2") == 1.0
    assert env.outcome(tasks[0], "2") == env.outcome(tasks[0], None) == 0.0
    assert env.outcome(tasks[1], "3") == 1.0
    assert env.outcome(Task(id="x", question="?"), "1") is None  # no reference: cannot check
    assert MathEnv(task_list=tasks, use_python=False).tools_for(tasks[0]) == {}


def test_math_episode_runs_python_and_boxes_the_printed_value(tiny_tokenizer):
    env = MathEnv(task_list=[Task(id="m", question="What is 6 * 7?", answer="42")])

    def script(text, turn):
        if turn == 0:
            return call("python", code="print(6 * 7)")
        printed = re.findall(r"<tool_response>\n(.*?)\n", text)[-1]
        return f"The sandbox printed it: \\boxed{{{printed}}}"

    (traj,) = AgentLoop(
        ScriptedBackend(tiny_tokenizer, script), env, AgentConfig(max_turns=3, max_tokens=3000)
    ).run(specs_for(env, env.tasks("t"), 1))
    assert [m.role for m in traj.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert traj.messages[3].content.strip() == "42"
    assert (traj.final_answer, traj.outcome, traj.stop_reason) == ("42", 1.0, "answered")
    assert '"name": "python"' in tiny_tokenizer.decode(
        traj.token_ids[: traj.extra["prompt_length"]]
    )


def test_qa_env_searches_a_cached_corpus_and_scores_aliases(tmp_path):
    task = Task(
        id="q",
        question="Which magazine was started first?",
        answer=["Arthur's Magazine", "Arthurs Magazine"],
    )
    env = QAEnv(task_list=[task], corpus=DOCS, cache_dir=str(tmp_path))
    search = env.tools_for(task)["search"]
    assert search is env.tools_for(task)["search"]  # built once
    assert search(query="Arthur's Magazine first published").startswith("[1] Arthur's Magazine")
    assert env.outcome(task, "arthurs magazine") == 1.0
    assert env.outcome(task, "Arthur's") == 0.0 and env.outcome(task, None) == 0.0
    assert QAEnv(metric="f1").outcome(task, "Arthur's") == pytest.approx(2 / 3)
    # The same documents map to the same file, so the index is loaded, not rebuilt.
    assert write_corpus(DOCS, tmp_path) == write_corpus(list(DOCS), tmp_path)
    again = QAEnv(task_list=[task], corpus=DOCS, cache_dir=str(tmp_path)).tools_for(task)["search"]
    assert again.backend.loaded_from_cache
    with pytest.raises(ValueError, match="metric"):
        QAEnv(metric="bleu")
    with pytest.raises(ValueError, match="--tasks.*--benchmark"):
        QAEnv().tasks("dev")
    with pytest.raises(ValueError, match="empty"):
        write_corpus([], tmp_path)


def test_qa_episode_two_hops(tiny_tokenizer, tmp_path):
    task = Task(
        id="q2",
        question="In which city is the publisher of First for Women based?",
        answer="Hamburg",
    )
    env = QAEnv(task_list=[task], corpus=DOCS, cache_dir=str(tmp_path))
    assert "search(query)" in env.system_prompt(task)

    def script(text, turn):
        if turn == 0:
            return call("search", query="First for Women publisher")
        if turn == 1:
            return call("search", query="Bauer Media Group based")
        return "It is based in \\boxed{Hamburg}" if "Hamburg" in text else "\\boxed{unknown}"

    (traj,) = AgentLoop(
        ScriptedBackend(tiny_tokenizer, script), env, AgentConfig(max_turns=4, max_tokens=4000)
    ).run(specs_for(env, [task], 1))
    assert (traj.final_answer, traj.outcome) == ("Hamburg", 1.0)
    assert sum(m.role == "tool" for m in traj.messages) == 2
