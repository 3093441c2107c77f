"""Judges and teachers served with a reasoning parser: the verdict split into
``reasoning_content`` (or ``reasoning``) + ``content`` is rebuilt whole.

Without the rebuild the ``<think>`` analysis is lost and every verdict parses as
``missing_blocks`` with no score (the issue this pins).
"""

from __future__ import annotations

import json

import pytest

from reagent.cli import main
from reagent.generation.base import SamplingParams
from reagent.generation.openai_backend import OpenAIChatBackend
from reagent.jsonl import write_records
from rrm.prompt import format_judgment
from tests.data_gen.conftest import toy_traces
from tests.scripted import ScriptedServer, split_reasoning


def verdict(body: dict) -> str:
    n = len(body["messages"][-1]["content"])
    return format_judgment(f"the agent looked up {n % 7} accounts", "- none", (n % 10) / 10)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_backend_rebuilds_the_think_block(field):
    with ScriptedServer(lambda body: split_reasoning(verdict(body), field)) as srv:
        backend = OpenAIChatBackend(srv.url, "scripted-teacher", api_key_env=None, max_retries=0)
        conv = [{"role": "user", "content": "judge this"}]
        (gen,) = backend.chat([conv], SamplingParams(max_new_tokens=64))
        backend.close()
    sent = split_reasoning(verdict({"messages": conv}), field)
    assert "<think>" not in sent["content"] and "<critique>" in sent["content"]
    assert gen.text == verdict({"messages": conv})
    with ScriptedServer(lambda body: {"content": verdict(body), field: "ignored"}) as srv:
        backend = OpenAIChatBackend(srv.url, "scripted-teacher", api_key_env=None, max_retries=0)
        (gen,) = backend.chat([conv], SamplingParams(max_new_tokens=64))
        backend.close()
    assert gen.text == verdict({"messages": conv})  # content already holds its <think>


def test_judge_and_annotate_clis_score_a_reasoning_split_verdict(tmp_path):
    traces = tmp_path / "traces.jsonl"
    write_records(traces, toy_traces(4))
    with ScriptedServer(lambda body: split_reasoning(verdict(body))) as srv:
        judged = tmp_path / "judged.jsonl"
        assert main(["judge", "--base-url", srv.url, "--traces", str(traces),
                     "--out", str(judged)]) == 0
        annotated = tmp_path / "annotated.jsonl"
        assert main(["annotate", "--no-progress", "--traces", str(traces), "--base-url", srv.url,
                     "--out", str(annotated)]) == 0
        sent = list(srv.requests)
    rows = [json.loads(line) for line in judged.read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        j = row["judge"]
        assert j["status"] == "ok", j
        assert j["analysis"].startswith("the agent looked up") and j["score"] is not None
    examples = [json.loads(line) for line in annotated.read_text().splitlines() if line.strip()]
    examples = [e for e in examples if "question" in e]
    assert len(examples) == 4
    assert all(e["analysis"].startswith("the agent looked up") and e["score"] is not None
               for e in examples)
    assert len(sent) == 8



def test_rollout_sends_chat_template_kwargs_and_keeps_a_split_thinking(tmp_path):
    """A policy behind a reasoning server: its thinking comes back whole, and the template
    kwargs (Qwen3's enable_thinking) reach the server with every request."""
    reply = split_reasoning("<think>\nno tools needed\n</think>\n\n\\boxed{3}")
    with ScriptedServer(lambda body: reply) as srv:
        out = tmp_path / "traces.jsonl"
        assert main(["rollout", "--base-url", srv.url, "--served-model", "scripted-teacher",
                     "--env", "toy", "--limit", "2", "--n", "1", "--out", str(out),
                     "chat_template_kwargs={enable_thinking: false}"]) == 0
        sent = list(srv.requests)
    assert sent and all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in sent)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row["messages"][-1]["content"] == "<think>\nno tools needed\n</think>\n\n\\boxed{3}"
        assert row["final_answer"] == "3" and row["stop_reason"] == "answered"
