"""Tools an agent can call: sandboxed python, search, browse, file reading."""

from reagent.tools.base import Tool, run_tool_call, run_tool_calls, tool_schema

__all__ = ["Tool", "run_tool_call", "run_tool_calls", "tool_schema"]
