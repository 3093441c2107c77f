"""Parsing and rendering of Qwen/Hermes tool calls, malformed ones included."""

from reagent.records import ToolCall
from reagent.toolcalls import parse_tool_calls, render_tool_calls, strip_tool_calls
from reagent.tools.base import run_tool_call


def test_several_calls_parse_in_order():
    text = ('<think>need two</think>\n<tool_call>\n{"name": "lookup", "arguments": {"account": "A"}}\n'
            '</tool_call>\n<tool_call>{"name": "calc", "arguments": {"expr": "1+2"}}</tool_call>')
    calls = parse_tool_calls(text)
    assert [c.name for c in calls] == ["lookup", "calc"]
    assert calls[0].parsed_arguments == {"account": "A"}
    assert all(c.error is None and c.id for c in calls)
    assert strip_tool_calls(text) == "<think>need two</think>"


def test_render_then_parse_round_trip():
    calls = [ToolCall(id="1", name="f", arguments='{"x": 1}'), ToolCall(id="2", name="g", arguments="{}")]
    back = parse_tool_calls(render_tool_calls(calls))
    assert [(c.name, c.parsed_arguments) for c in back] == [("f", {"x": 1}), ("g", {})]


def test_malformed_calls_carry_errors_not_exceptions():
    cases = {
        '<tool_call>{"name": "f", "arguments": {"x": 1}</tool_call>': "invalid JSON",
        '<tool_call>["f"]</tool_call>': "JSON object",
        '<tool_call>{"arguments": {}}</tool_call>': "no 'name'",
        '<tool_call>{"name": "f", "arguments": [1]}</tool_call>': "must be a JSON object",
        '<tool_call>{"name": "f", "arguments": {}}': "not closed",
        '<tool_call>{"name": "f", "arguments": "{bad"}</tool_call>': "invalid JSON in arguments",
    }
    for text, expected in cases.items():
        (call,) = parse_tool_calls(text)
        assert call.error and expected in call.error, (text, call.error)
        assert call.parsed_arguments == {}
        # The agent is told what was wrong instead of the loop crashing.
        assert run_tool_call({}, call).startswith("Error:")


def test_double_encoded_arguments_are_accepted():
    (call,) = parse_tool_calls('<tool_call>{"name": "f", "arguments": "{\\"x\\": 2}"}</tool_call>')
    assert call.error is None and call.parsed_arguments == {"x": 2}


def test_no_calls_in_plain_text():
    assert parse_tool_calls("The answer is \\boxed{3}.") == []


class Echo:
    name = "echo"
    description = "echo"
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def __call__(self, text):
        if text == "boom":
            raise RuntimeError("exploded")
        return text


def test_tool_errors_become_text():
    tools = {"echo": Echo()}
    ok = ToolCall(id="1", name="echo", arguments='{"text": "hi"}')
    assert run_tool_call(tools, ok) == "hi"
    assert "unknown tool 'nope'" in run_tool_call(tools, ToolCall(id="2", name="nope", arguments="{}"))
    assert "missing required argument" in run_tool_call(tools, ToolCall(id="3", name="echo", arguments="{}"))
    assert "exploded" in run_tool_call(tools, ToolCall(id="4", name="echo", arguments='{"text": "boom"}'))
    assert "bad arguments" in run_tool_call(
        tools, ToolCall(id="5", name="echo", arguments='{"text": "a", "zzz": 1}'))
