"""build_tools: names to tool objects from one flat ToolsConfig."""

from __future__ import annotations

import json

import pytest

import reagent.tools as tools_pkg
from reagent.records import ToolCall
from reagent.tools import run_tool_call, tool_schema
from reagent.tools.factory import TOOL_BUILDERS, ToolsConfig, build_tools


@pytest.fixture
def config(tmp_path) -> ToolsConfig:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"id": "d1", "title": "Paris", "text": "Paris is in France."}) + "\n"
    )
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("hello")
    return ToolsConfig(
        python_timeout_s=5,
        search_corpus=str(corpus),
        search_cache_dir=str(tmp_path / "cache"),
        file_root=str(tmp_path / "files"),
        browse_max_chars=1234,
    )


def test_builds_every_tool_with_a_schema(config):
    tools = build_tools(list(TOOL_BUILDERS), config)
    assert list(tools) == ["python", "search", "browse", "file_reader"]
    for name, tool in tools.items():
        assert tool.name == name and len(tool.description) > 80
        schema = tool_schema(tool)["function"]
        assert schema["parameters"]["type"] == "object" and schema["parameters"]["required"]
        assert set(schema["parameters"]["required"]) <= set(schema["parameters"]["properties"])
    assert tools["python"].config.timeout_s == 5 and tools["browse"].config.max_chars == 1234
    assert "5 s wall time" in tools["python"].description


def test_tools_run_through_the_agent_loop_entry_point(config):
    tools = build_tools(["python", "search", "file_reader"], config)
    call = ToolCall(name="python", arguments=json.dumps({"code": "print(6 * 7)"}))
    assert run_tool_call(tools, call) == "42"
    assert run_tool_call(
        tools, ToolCall(name="search", arguments='{"query": "France"}')
    ).startswith("[1] Paris")
    assert (
        run_tool_call(tools, ToolCall(name="file_reader", arguments='{"path": "a.txt"}')) == "hello"
    )


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown tool.*calculator.*available: python"):
        build_tools(["calculator"])
    with pytest.raises(ValueError, match="search_corpus"):
        build_tools(["search"], ToolsConfig())
    with pytest.raises(ValueError, match="search_url"):
        build_tools(["search"], ToolsConfig(search_backend="http"))
    with pytest.raises(ValueError, match="file_root"):
        build_tools(["file_reader"], ToolsConfig())
    with pytest.raises(ValueError, match="search_backend"):
        ToolsConfig(search_backend="google")


def test_package_exports_are_lazy_names():
    assert tools_pkg.build_tools is build_tools and tools_pkg.ToolsConfig is ToolsConfig
    with pytest.raises(AttributeError):
        tools_pkg.NoSuchTool  # noqa: B018
