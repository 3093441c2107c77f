"""Parsing and rendering of tool calls (Qwen/Hermes and Llama 3 JSON), malformed ones included."""

import pytest

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


def test_llama3_json_calls_parse_render_and_stay_data_when_malformed():
    from reagent.toolcalls import assistant_text, split_assistant_text

    text = '{"name": "lookup", "parameters": {"account": "A"}}'
    content, (call,) = split_assistant_text(text, "llama3_json")
    assert content == "" and call.name == "lookup" and call.parsed_arguments == {"account": "A"}
    assert assistant_text(content, [call], "llama3_json") == text  # what Llama writes, exactly
    (tagged,) = parse_tool_calls('<|python_tag|>{"name": "calc", "arguments": {"expr": "1+2"}}',
                                 "llama3_json")
    assert tagged.name == "calc" and tagged.error is None
    (broken,) = parse_tool_calls('{"name": "lookup", "parameters": {"account": ', "llama3_json")
    assert broken.error and broken.arguments.startswith('{"name"')
    (nameless,) = parse_tool_calls('{"parameters": {}}', "llama3_json")
    assert "name" in nameless.error
    assert parse_tool_calls("The total is \\boxed{7}.", "llama3_json") == []
    with pytest.raises(ValueError, match="one tool call per turn"):
        assistant_text("", [call, call], "llama3_json")


def test_tool_format_follows_the_template_unless_configured(tiny_tokenizer):
    from reagent.families import family_template
    from reagent.toolcalls import tool_format_for

    class Tok:
        def __init__(self, template):
            self.chat_template = template

    assert tool_format_for(Tok(family_template("llama3.1"))) == "llama3_json"
    assert tool_format_for(Tok(family_template("qwen3"))) == "hermes"
    assert tool_format_for(Tok(family_template("qwen2.5"))) == "hermes"
    assert tool_format_for(tiny_tokenizer) == "hermes" and tool_format_for(None) == "hermes"
    assert tool_format_for(Tok(family_template("qwen3")), "llama3_json") == "llama3_json"
    with pytest.raises(ValueError, match="tool_format must be auto or one of hermes, llama3_json"):
        tool_format_for(None, "xml")
