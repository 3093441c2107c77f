"""Build the agent's tools by name from one flat config.

``ToolsConfig`` is flat (``python_*``, ``search_*``, ``browse_*``, ``file_*`` keys) so it
reads from YAML, flags and ``key=value`` overrides like every other config; each tool's
own settings are cut out of it by prefix. :data:`TOOL_BUILDERS` is a plain dict from
tool name to constructor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reagent.config import cfg
from reagent.tools.base import Tool
from reagent.tools.browse import BrowseConfig, BrowseTool
from reagent.tools.file_reader import FileReaderTool
from reagent.tools.python_exec import PythonSandboxConfig, PythonTool
from reagent.tools.search import BM25Backend, HTTPSearchBackend, SearchTool

SEARCH_BACKENDS = ("bm25", "http")


@dataclass
class ToolsConfig:
    python_timeout_s: float = cfg(15.0, help="python: wall-clock limit per call, seconds")
    python_memory_mb: int = cfg(1024, help="python: address-space limit, MiB")
    python_max_output_chars: int = cfg(
        2000, help="python: characters of output returned (middle cut)"
    )
    python_sandbox_user: str = cfg(
        "nobody",
        help="python: as root each call runs as its own uid; '' = root (no uid switch)",
    )
    python_namespaces: bool = cfg(
        True, help="python: use Linux namespaces (network, mounts, PIDs) when possible"
    )
    python_isolation: str = cfg(
        "auto", help="python: 'auto' (bubblewrap if it works here, else in-house), 'bwrap', 'inhouse'"
    )
    search_backend: str = cfg(
        "bm25", help="search: 'bm25' (local corpus) or 'http' (Serper-style web API)"
    )
    search_corpus: str = cfg("", help="search/bm25: JSONL corpus with {id, title, text} per line")
    search_cache_dir: str = cfg(
        "", help="search/bm25: where the index is cached; empty = beside the corpus"
    )
    search_url: str = cfg(
        "", help="search/http: endpoint URL, e.g. https://google.serper.dev/search"
    )
    search_api_key_env: str = cfg(
        "SERPER_API_KEY", help="search/http: name of the env var holding the API key"
    )
    search_timeout_s: float = cfg(10.0, help="search/http: request timeout, seconds")
    search_top_k: int = cfg(5, help="search: results returned when the model does not say")
    browse_timeout_s: float = cfg(15.0, help="browse: connect/read timeout, seconds")
    browse_max_bytes: int = cfg(2_000_000, help="browse: response bytes read at most")
    browse_max_redirects: int = cfg(5, help="browse: redirects followed at most")
    browse_max_chars: int = cfg(8000, help="browse: characters of page text returned")
    browse_block_private_hosts: bool = cfg(
        True, help="browse: refuse loopback/private/link-local hosts"
    )
    browse_summarizer_base_url: str = cfg(
        "",
        help="browse: OpenAI-compatible base URL for goal-directed "
        "summaries of long pages; empty = off",
    )
    browse_summarizer_model: str = cfg("", help="browse: summariser model name")
    browse_summarizer_api_key_env: str = cfg(
        "", help="browse: env var holding the summariser's API key"
    )
    file_root: str = cfg("", help="file_reader: folder the model may read files from")
    file_max_chars: int = cfg(20_000, help="file_reader: characters returned per call")

    def __post_init__(self) -> None:
        if self.search_backend not in SEARCH_BACKENDS:
            raise ValueError(
                f"ToolsConfig.search_backend='{self.search_backend}' is not one of "
                f"{', '.join(SEARCH_BACKENDS)}"
            )

    def python_config(self) -> PythonSandboxConfig:
        return _by_prefix(self, "python_", PythonSandboxConfig)

    def browse_config(self) -> BrowseConfig:
        return _by_prefix(self, "browse_", BrowseConfig)


def _by_prefix(config: Any, prefix: str, cls: type) -> Any:
    """``cls`` from the ``prefix``-ed fields of ``config`` that it has; the rest keep defaults."""
    return cls(
        **{
            f.name: getattr(config, prefix + f.name)
            for f in dataclasses.fields(cls)
            if hasattr(config, prefix + f.name)
        }
    )


def _search(config: ToolsConfig) -> Tool:
    if config.search_backend == "http":
        if not config.search_url:
            raise ValueError("search_backend='http' needs search_url (the search API endpoint)")
        backend = HTTPSearchBackend(
            config.search_url,
            api_key_env=config.search_api_key_env or None,
            timeout=config.search_timeout_s,
        )
    else:
        if not config.search_corpus:
            raise ValueError(
                "search_backend='bm25' needs search_corpus (a JSONL file of {id, title, text})"
            )
        backend = BM25Backend(config.search_corpus, config.search_cache_dir or None)
    return SearchTool(backend, top_k=config.search_top_k)


def _file_reader(config: ToolsConfig) -> Tool:
    if not config.file_root:
        raise ValueError(
            "the file_reader tool needs file_root (the folder holding the task's files)"
        )
    return FileReaderTool(config.file_root, max_chars=config.file_max_chars)


TOOL_BUILDERS: dict[str, Callable[[ToolsConfig], Tool]] = {
    "python": lambda c: PythonTool(c.python_config()),
    "search": _search,
    "browse": lambda c: BrowseTool(c.browse_config()),
    "file_reader": _file_reader,
}


def build_tools(names: list[str], config: ToolsConfig | None = None) -> dict[str, Tool]:
    """The named tools, keyed by name; unknown names and missing settings raise ``ValueError``."""
    config = config or ToolsConfig()
    unknown = [n for n in names if n not in TOOL_BUILDERS]
    if unknown:
        raise ValueError(
            f"unknown tool(s): {', '.join(unknown)}; available: {', '.join(TOOL_BUILDERS)}"
        )
    return {name: TOOL_BUILDERS[name](config) for name in names}
