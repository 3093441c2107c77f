"""Tools an agent can call: sandboxed python, search, browse, file reading.

The tool classes and :func:`build_tools` are imported on first use, so code that only
needs the protocol (``reagent.tools.base``) does not pay for httpx, numpy or bm25s.
"""

from importlib import import_module

from reagent.tools.base import Tool, run_tool_call, run_tool_calls, tool_schema

_LAZY = {
    "PythonTool": "python_exec",
    "PythonSandboxConfig": "python_exec",
    "SearchTool": "search",
    "BM25Backend": "search",
    "HTTPSearchBackend": "search",
    "BrowseTool": "browse",
    "BrowseConfig": "browse",
    "FileReaderTool": "file_reader",
    "ToolsConfig": "factory",
    "build_tools": "factory",
}

__all__ = [
    "BM25Backend",
    "BrowseConfig",
    "BrowseTool",
    "FileReaderTool",
    "HTTPSearchBackend",
    "PythonSandboxConfig",
    "PythonTool",
    "SearchTool",
    "Tool",
    "ToolsConfig",
    "build_tools",
    "run_tool_call",
    "run_tool_calls",
    "tool_schema",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"reagent.tools.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'reagent.tools' has no attribute '{name}'")
