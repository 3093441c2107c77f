"""The Qwen/Hermes tool-call text format.

An assistant turn may hold several ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
blocks. Parsing never raises: a block with broken JSON, a missing name or non-object
arguments becomes a :class:`ToolCall` with ``error`` set, so the agent loop can
return the error to the model as the tool result.
"""

from __future__ import annotations

import json
import re

from reagent.records import ToolCall, new_id

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


def parse_tool_calls(text: str) -> list[ToolCall]:
    """Every tool call in an assistant message, malformed ones included (with ``error``)."""
    calls = []
    for match in _BLOCK.finditer(text or ""):
        raw = match.group(1).strip()
        closed = match.group(0).endswith(TOOL_CALL_CLOSE)
        calls.append(_parse_one(raw, closed))
    return calls


def _parse_one(raw: str, closed: bool) -> ToolCall:
    call_id = "call_" + new_id()
    if not closed:
        return ToolCall(id=call_id, arguments=raw, error="tool call is not closed with </tool_call>")
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        return ToolCall(id=call_id, arguments=raw, error=f"invalid JSON in tool call: {e.msg} (column {e.colno})")
    except (ValueError, RecursionError):  # a 4,300-digit int, '[' * 100000
        return ToolCall(id=call_id, arguments=raw, error="invalid JSON in tool call: too deep or too long a number")
    if not isinstance(obj, dict):
        return ToolCall(id=call_id, arguments=raw, error="tool call must be a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return ToolCall(id=call_id, arguments=raw, error="tool call has no 'name' string")
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args)
        except (ValueError, RecursionError) as e:
            return ToolCall(id=call_id, name=name, arguments=args,
                            error=f"invalid JSON in arguments: {getattr(e, 'msg', 'too deep or too long a number')}")
    if not isinstance(args, dict):
        return ToolCall(id=call_id, name=name, arguments=json.dumps(args), error="'arguments' must be a JSON object")
    return ToolCall(id=call_id, name=name, arguments=json.dumps(args, ensure_ascii=False))


def strip_tool_calls(text: str) -> str:
    """The assistant text with every tool-call block removed (the prose and reasoning)."""
    return _BLOCK.sub("", text or "").strip()


def render_tool_call(call: ToolCall) -> str:
    """One call as the model writes it; a malformed call is rendered as its raw text."""
    if call.error or call.name is None:
        return f"{TOOL_CALL_OPEN}\n{call.arguments}\n{TOOL_CALL_CLOSE}"
    body = json.dumps({"name": call.name, "arguments": call.parsed_arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}\n{body}\n{TOOL_CALL_CLOSE}"


def render_tool_calls(calls: list[ToolCall]) -> str:
    return "\n".join(render_tool_call(c) for c in calls)
