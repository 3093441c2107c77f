"""What a tool is, and how the agent loop runs a turn's tool calls.

A tool is a small object with a ``name``, a ``description``, a JSON-schema
``parameters`` object and ``__call__(**arguments) -> str``. Anything that goes
wrong inside a call comes back as text the agent can read (``Error: ...``); the loop
never sees an exception from a tool.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from reagent.records import ToolCall


class Tool(Protocol):
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments object

    def __call__(self, **arguments: Any) -> str: ...


def tool_schema(tool: Tool) -> dict:
    """The OpenAI/Qwen function schema rendered into the system prompt by the chat template."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


class ToolSetupError(RuntimeError):
    """A tool cannot work at all on this machine (e.g. a package is missing).

    Unlike a failed call, this is the operator's problem: it is raised, never shown to the
    agent as a tool result, so a run stops with the fix instead of training on error text.
    """


def run_tool_call(tools: dict[str, Tool], call: ToolCall) -> str:
    """Run one call; malformed calls, unknown tools, bad arguments and crashes become error text.

    :class:`ToolSetupError` is the exception: it propagates.
    """
    if call.error:
        return f"Error: {call.error}"
    tool = tools.get(call.name or "")
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        return f"Error: unknown tool '{call.name}'. Available tools: {known}"
    args = call.parsed_arguments
    missing = [k for k in tool.parameters.get("required", []) if k not in args]
    if missing:
        return f"Error: {call.name} is missing required argument(s): {', '.join(missing)}"
    try:
        return str(tool(**args))
    except TypeError as e:
        return f"Error: bad arguments for {call.name}: {e}"
    except ToolSetupError:
        raise
    except Exception as e:  # noqa: BLE001 - a tool failure is information for the agent
        return f"Error: {call.name} failed: {type(e).__name__}: {e}"


def run_tool_calls(tools: dict[str, Tool], calls: list[ToolCall], pool: ThreadPoolExecutor | None = None) -> list[str]:
    """Run all calls of a turn in parallel, results in call order."""
    if len(calls) <= 1 or pool is None:
        return [run_tool_call(tools, c) for c in calls]
    return list(pool.map(lambda c: run_tool_call(tools, c), calls))
