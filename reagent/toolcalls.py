"""Tool-call text formats: how a model family writes a call, and how it is read back.

- ``hermes`` (Qwen2.5, Qwen3, the tiny models): an assistant turn may hold several
  ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`` blocks after its text.
- ``llama3_json`` (Llama 3.1/3.2/3.3 custom tools): the whole turn is one JSON object
  ``{"name": ..., "parameters": {...}}`` (optionally after ``<|python_tag|>``); the
  template allows one call per turn and drops any text beside it.

:func:`tool_format_for` picks the format from a tokenizer's chat template unless a
config names it. Parsing never raises: broken JSON, a missing name or non-object
arguments become a :class:`ToolCall` with ``error`` set, so the agent loop can return
the error to the model as the tool result. :func:`assistant_text` is what a model of
the family generates for a message, the inverse of :func:`split_assistant_text`.
"""

from __future__ import annotations

import json
import re

from reagent.records import ToolCall, new_id

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
PYTHON_TAG = "<|python_tag|>"
TOOL_FORMATS = ("hermes", "llama3_json")


def tool_format_for(tokenizer, override: str | None = None) -> str:
    """``override`` when given (validated), else the format the chat template writes.

    A template that renders ``"parameters"`` around the call and ends turns with
    ``<|eot_id|>`` is Llama 3's JSON format; anything else (no tokenizer included) is hermes.
    """
    if override not in (None, "auto"):
        if override not in TOOL_FORMATS:
            raise ValueError(f"tool_format must be auto or one of {', '.join(TOOL_FORMATS)}, "
                             f"got {override!r}")
        return override
    template = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(template, str):
        template = str(template)
    if '"parameters": ' in template and "<|eot_id|>" in template:
        return "llama3_json"
    return "hermes"


def one_call_per_turn(fmt: str) -> bool:
    """Whether the format (and its template) allow only one call in an assistant turn."""
    return fmt == "llama3_json"


def parse_tool_calls(text: str, fmt: str = "hermes") -> list[ToolCall]:
    """Every tool call in an assistant message, malformed ones included (with ``error``)."""
    if fmt == "llama3_json":
        return _parse_llama(text)
    calls = []
    for match in _BLOCK.finditer(text or ""):
        raw = match.group(1).strip()
        closed = match.group(0).endswith(TOOL_CALL_CLOSE)
        calls.append(_parse_one(raw, closed))
    return calls


def _is_llama_call(text: str) -> bool:
    body = (text or "").strip()
    return body.startswith(PYTHON_TAG) or body.startswith("{")


def _parse_llama(text: str) -> list[ToolCall]:
    """A Llama 3 turn is a call when it is (or tries to be) one JSON object; else it is prose."""
    if not _is_llama_call(text):
        return []
    body = text.strip().removeprefix(PYTHON_TAG).strip()
    return [_parse_one(body, True, args_key="parameters")]


def _parse_one(raw: str, closed: bool, args_key: str = "arguments") -> ToolCall:
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
    args = obj.get(args_key, obj.get("arguments" if args_key != "arguments" else "parameters", {}))
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args)
        except (ValueError, RecursionError) as e:
            return ToolCall(id=call_id, name=name, arguments=args,
                            error=f"invalid JSON in arguments: {getattr(e, 'msg', 'too deep or too long a number')}")
    if not isinstance(args, dict):
        return ToolCall(id=call_id, name=name, arguments=json.dumps(args), error="'arguments' must be a JSON object")
    return ToolCall(id=call_id, name=name, arguments=json.dumps(args, ensure_ascii=False))


def strip_tool_calls(text: str, fmt: str = "hermes") -> str:
    """The assistant text with every tool-call block removed (the prose and reasoning)."""
    if fmt == "llama3_json":
        return "" if _is_llama_call(text) else (text or "").strip()
    return _BLOCK.sub("", text or "").strip()


def render_tool_call(call: ToolCall, fmt: str = "hermes") -> str:
    """One call as the model writes it; a malformed call is rendered as its raw text."""
    if fmt == "llama3_json":
        if call.error or call.name is None:
            return call.arguments
        return json.dumps({"name": call.name, "parameters": call.parsed_arguments}, ensure_ascii=False)
    if call.error or call.name is None:
        return f"{TOOL_CALL_OPEN}\n{call.arguments}\n{TOOL_CALL_CLOSE}"
    body = json.dumps({"name": call.name, "arguments": call.parsed_arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}\n{body}\n{TOOL_CALL_CLOSE}"


def render_tool_calls(calls: list[ToolCall], fmt: str = "hermes") -> str:
    return "\n".join(render_tool_call(c, fmt) for c in calls)


def assistant_text(content: str | None, calls: list[ToolCall] | None, fmt: str = "hermes") -> str:
    """The text a model of the family generates for one assistant turn (before its end token).

    hermes: the content, a newline, then the call blocks one per line (what Qwen's
    templates render). llama3_json: the call's JSON alone (the template drops any text
    beside a call), or the content when there is no call.
    """
    content = content or ""
    if not calls:
        return content
    if fmt == "llama3_json":
        if len(calls) != 1:
            raise ValueError(f"llama3_json allows one tool call per turn, got {len(calls)}")
        return render_tool_call(calls[0], fmt)
    rendered = render_tool_calls(calls, fmt)
    return f"{content}\n{rendered}" if content else rendered


def split_assistant_text(text: str, fmt: str = "hermes") -> tuple[str, list[ToolCall]]:
    """``(content, calls)`` of a generated turn: the text before the first call and the calls."""
    calls = parse_tool_calls(text, fmt)
    if not calls:
        return text, []
    if fmt == "llama3_json":
        return "", calls
    first = (text or "").find(TOOL_CALL_OPEN)
    return text[:first].rstrip("\n"), calls
