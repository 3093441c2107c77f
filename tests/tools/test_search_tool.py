"""The search tool: local BM25 (ranking, index cache) and the HTTP backend on a local server."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from reagent.tools.search import BM25Backend, HTTPSearchBackend, SearchTool, snippet, tokenize

DOCS = [
    {
        "id": "paris",
        "title": "Paris",
        "text": "Paris is the capital and most populous city of France.",
    },
    {
        "id": "berlin",
        "title": "Berlin",
        "text": "Berlin is the capital of Germany and its largest city.",
    },
    {"id": "cat", "title": "Cat", "text": "The cat is a small domesticated carnivorous mammal."},
    {
        "id": "eiffel",
        "title": "Eiffel Tower",
        "text": "The Eiffel Tower is a wrought-iron tower in Paris, "
        "completed in 1889 for the World's Fair. " + "Filler. " * 80,
    },
]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n")
    return path


def test_tokenize_lowercases_and_drops_stopwords():
    assert tokenize("The Capital of FRANCE, in 1889!") == ["capital", "france", "1889"]


def test_bm25_ranks_and_formats(corpus, tmp_path):
    tool = SearchTool(BM25Backend(corpus, tmp_path / "cache"))
    text = tool(query="capital of Germany")
    assert text.startswith("[1] Berlin\nberlin\nBerlin is the capital of Germany")
    assert "[2] Paris" in text and "Cat" not in text
    assert tool(query="Eiffel tower completed", top_k=1).count("[") == 1
    hit = tool(query="wrought-iron tower")
    assert hit.startswith("[1] Eiffel Tower\neiffel\n") and len(hit.split("\n")[2]) <= 310
    assert tool(query="the of and") == "No results for 'the of and'."
    assert tool(query="zebra") == "No results for 'zebra'."
    assert tool(query="").startswith("Error:") and tool(query="x", top_k="many").startswith(
        "Error:"
    )


def test_bm25_index_is_cached_and_rebuilt_when_the_corpus_changes(corpus, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = BM25Backend(corpus, cache)
    assert not first.loaded_from_cache and first.index_dir.is_dir()

    def no_rebuild(self):
        raise AssertionError("the index was rebuilt instead of loaded")

    with monkeypatch.context() as m:
        m.setattr(BM25Backend, "_build", no_rebuild)
        second = BM25Backend(corpus, cache)
    assert second.loaded_from_cache and second.index_dir == first.index_dir
    assert [r.url for r in second.search("capital France", 2)] == ["paris", "berlin"]

    with corpus.open("a") as f:  # a new document: new mtime and size, new key
        f.write(
            json.dumps({"id": "lyon", "title": "Lyon", "text": "Lyon is a city in France."}) + "\n"
        )
    os.utime(corpus, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = BM25Backend(corpus, cache)
    assert not third.loaded_from_cache and third.index_dir != first.index_dir
    assert not first.index_dir.exists()  # the stale index was removed
    assert "lyon" in [r.url for r in third.search("Lyon", 3)]


def test_bm25_reports_bad_corpus_lines(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(DOCS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        BM25Backend(bad, tmp_path / "cache")
    with pytest.raises(FileNotFoundError):
        BM25Backend(tmp_path / "missing.jsonl", tmp_path / "cache")


def test_snippet_centres_on_the_query():
    text = "lorem " * 100 + "the needle is here " + "ipsum " * 100
    piece = snippet(text, ["needle"], chars=100)
    assert (
        "needle" in piece
        and piece.startswith("...")
        and piece.endswith("...")
        and len(piece) <= 106
    )


class _SearchAPI(BaseHTTPRequestHandler):
    """Answers like Serper; behaviour per request chosen by the query text."""

    requests: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"body": body, "key": self.headers.get("X-API-KEY")})
        query = body["q"]
        if query == "slow":
            time.sleep(1.0)
        if query == "boom":
            self._send(500, b"internal error")
        elif query == "garbage":
            self._send(200, b"<html>not json</html>")
        else:
            organic = [
                {
                    "title": f"Result {i} for {query}",
                    "link": f"https://example.org/{i}",
                    "snippet": f"snippet {i}",
                }
                for i in range(body["num"] + 3)
            ]
            self._send(200, json.dumps({"organic": organic}).encode())

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def search_api():
    _SearchAPI.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SearchAPI)
    server.daemon_threads = True  # do not wait for the deliberately slow handler
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/search"
    server.shutdown()
    server.server_close()


def test_http_backend_sends_query_and_key(search_api, monkeypatch):
    monkeypatch.setenv("TEST_SEARCH_KEY", "k-123")
    tool = SearchTool(HTTPSearchBackend(search_api, api_key_env="TEST_SEARCH_KEY", timeout=5))
    text = tool(query="reasoning reward models", top_k=2)
    assert _SearchAPI.requests == [
        {"body": {"q": "reasoning reward models", "num": 2}, "key": "k-123"}
    ]
    assert text == (
        "[1] Result 0 for reasoning reward models\nhttps://example.org/0\nsnippet 0\n\n"
        "[2] Result 1 for reasoning reward models\nhttps://example.org/1\nsnippet 1"
    )


def test_http_backend_errors_become_text(search_api):
    tool = SearchTool(HTTPSearchBackend(search_api, api_key="k", timeout=0.3))
    assert tool(query="boom").startswith(
        "Error: search failed: the search service answered HTTP 500"
    )
    assert tool(query="garbage").startswith(
        "Error: search failed: the search service sent an unreadable answer"
    )
    assert (
        tool(query="slow") == "Error: search failed: the search service did not answer within 0.3 s"
    )
    closed = SearchTool(HTTPSearchBackend("http://127.0.0.1:9/search", timeout=1))
    assert closed(query="x").startswith("Error: search failed: could not reach the search service")
    with pytest.raises(ValueError, match="http"):
        HTTPSearchBackend("ftp://example.org")
