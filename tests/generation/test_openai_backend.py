"""OpenAIChatBackend against a scripted OpenAI-compatible server on 127.0.0.1.

The server (:class:`tests.scripted.ScriptedServer`) answers by the last user
message (``ok``, ``fail500:N`` = N failures then success, ``always500``, ``bad400``,
``rate429:N``, ``long``, ``tools``, ``stopped``); it records every request body and
the largest number of requests it was serving at once.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from reagent.generation.base import SamplingParams
from reagent.generation.openai_backend import OpenAIChatBackend
from reagent.toolcalls import parse_tool_calls
from tests.scripted import ScriptedServer


class CommandServer(ScriptedServer):
    """The scripted server, its reply chosen by the last user message; ``hits`` counts
    the requests of each command."""

    def __init__(self, delay_s: float = 0.0):
        self.hits: Counter = Counter()
        super().__init__(self.respond, delay_s=delay_s)

    def respond(self, body: dict):
        command = body["messages"][-1]["content"]
        with self.lock:
            self.hits[command] += 1
            n = self.hits[command]
        name, _, arg = command.partition(":")
        if name == "fail500" and n <= int(arg):
            return 500, "scripted failure"
        if name == "rate429" and n <= int(arg):
            return 429, "slow down"
        if name == "always500":
            return 500, "always failing"
        if name == "bad400":
            return 400, "bad request"
        if name == "long":
            return {"content": f"echo {command}", "finish_reason": "length"}
        if name == "tools":
            return {"content": None, "finish_reason": "tool_calls", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {
                    "name": "lookup", "arguments": json.dumps({"account": "alpha"})}}]}
        if name == "stopped":
            return {"content": "the answer is 4", "stop_reason": "</answer>"}
        return f"echo {command}"


def conv(command: str) -> list[dict]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": command}]


def backend(server: ScriptedServer, **kwargs) -> OpenAIChatBackend:
    kwargs.setdefault("backoff_s", 0.001)
    return OpenAIChatBackend(server.base_url, "tiny", api_key_env=None, timeout=10, **kwargs)


def test_concurrency_never_exceeds_the_bound():
    with CommandServer(delay_s=0.05) as server:
        b = backend(server, concurrency=3)
        outs = b.chat([conv(f"ok{i}") for i in range(12)], SamplingParams())
        b.close()
    assert [g.text for g in outs] == [f"echo ok{i}" for i in range(12)]  # order kept
    assert 2 <= server.max_in_flight <= 3


def test_retries_on_500_and_429_then_succeed():
    with CommandServer() as server:
        b = backend(server, max_retries=3)
        outs = b.chat([conv("fail500:2"), conv("rate429:1")], SamplingParams())
    assert [(g.text, g.finish_reason, g.error) for g in outs] == [
        ("echo fail500:2", "stop", None), ("echo rate429:1", "stop", None)]
    assert server.hits["fail500:2"] == 3 and server.hits["rate429:1"] == 2


def test_failure_after_retries_is_an_error_generation_not_an_exception():
    with CommandServer() as server:
        b = backend(server, max_retries=2)
        outs = b.chat([conv("always500"), conv("ok"), conv("bad400")], SamplingParams())
    failed, ok, bad = outs
    assert failed.finish_reason == "error" and failed.text == ""
    assert "500" in failed.error and "always failing" in failed.error
    assert server.hits["always500"] == 3  # the first try + 2 retries
    assert (ok.text, ok.finish_reason) == ("echo ok", "stop")
    assert bad.finish_reason == "error" and "400" in bad.error
    assert server.hits["bad400"] == 1  # a client error is not retried


def test_unreachable_server_gives_error():
    with CommandServer() as server:
        url = server.base_url
    b = OpenAIChatBackend(url, "tiny", api_key_env=None, timeout=2, max_retries=1,
                          backoff_s=0.001)
    out = b.chat([conv("ok")], SamplingParams())[0]
    assert out.finish_reason == "error" and "Connection" in out.error


def test_sampling_params_and_tools_are_sent():
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"account": {"type": "string"}}}}}]
    params = SamplingParams(max_new_tokens=17, temperature=0.4, top_p=0.9, top_k=20,
                            stop=["</answer>"], seed=11)
    with CommandServer() as server:
        backend(server).chat([conv("ok")], params, tools=tools)
        backend(server).chat([conv("ok2")], SamplingParams())
    sent, plain = server.requests
    assert sent["model"] == "tiny"
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.4, 0.9, 17)
    assert (sent["stop"], sent["seed"], sent["top_k"]) == (["</answer>"], 11, 20)
    assert sent["tools"] == tools
    assert not {"stop", "seed", "top_k", "tools"} & set(plain)


def test_length_tool_calls_and_stop_strings_in_the_output():
    with CommandServer() as server:
        outs = backend(server).chat([conv("long"), conv("tools"), conv("stopped")],
                                    SamplingParams(stop=["</answer>"]))
    long, tools, stopped = outs
    assert long.finish_reason == "length"
    calls = parse_tool_calls(tools.text)
    assert [(c.name, c.parsed_arguments, c.error) for c in calls] == [
        ("lookup", {"account": "alpha"}, None)]
    assert tools.finish_reason == "stop"
    assert stopped.text == "the answer is 4</answer>"


def test_bad_arguments():
    with pytest.raises(ValueError, match="concurrency"):
        OpenAIChatBackend("http://127.0.0.1:1/v1", "m", concurrency=0)
