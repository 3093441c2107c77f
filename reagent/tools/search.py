"""The ``search`` tool: top-k results for a query, from a local BM25 index or a web search API.

Two backends, one output format (numbered results with title, url/id and snippet):

- :class:`BM25Backend` ranks the documents of a JSONL corpus (``{"id", "title",
  "text"}`` a line) with BM25 (``bm25s`` defaults: Lucene variant, ``k1=1.5``, ``b=0.75``).
  Tokens are
  lowercase ``\\w+`` runs minus a short English stopword list; the title is indexed with
  the text. The index is built once and cached in ``cache_dir`` under a key made of the
  corpus path, modification time and size (and the tokenizer version), so a later
  construction on an unchanged corpus only loads it; documents are read back from the
  corpus by byte offset, so the corpus itself is never held in memory.
- :class:`HTTPSearchBackend` posts Serper-style JSON (``{"q": query, "num": k}`` with the
  key in ``X-API-KEY``) and reads ``{"organic": [{"title", "link", "snippet"}]}``.

Backends raise :class:`SearchError` with a readable message; :class:`SearchTool`
turns every failure into ``Error: ...`` text for the agent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import httpx
import numpy as np

from reagent.http_deadline import deadline_client

TOKENIZER_VERSION = "1"  # bump when tokenize() changes: it is part of the cache key
# fmt: off
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "he",
    "her", "his", "i", "if", "in", "into", "is", "it", "its", "of", "on", "or", "she", "so",
    "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "to", "was", "we", "were", "what", "when", "where", "which", "who", "whom", "why", "will",
    "with", "you", "your",
})
# fmt: on
_WORD = re.compile(r"\w+")


class SearchError(RuntimeError):
    """A search failed; the message is shown to the agent."""


class CorpusError(ValueError):
    """A corpus line is not a ``{"id", "title", "text"}`` object; the message names the line."""


@dataclass
class SearchResult:
    title: str
    url: str  # a URL for web results, the document id for a local corpus
    snippet: str


class SearchBackend(Protocol):
    def search(self, query: str, k: int) -> list[SearchResult]: ...


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens without stopwords; used for both documents and queries."""
    return [t for t in _WORD.findall(text.lower()) if t not in STOPWORDS]


def snippet(text: str, query_tokens: list[str], chars: int = 300) -> str:
    """About ``chars`` characters of ``text`` around the first query term it contains."""
    text = " ".join(text.split())
    if len(text) <= chars:
        return text
    lower = text.lower()
    hits = [m.start() for t in query_tokens if (m := re.search(rf"\b{re.escape(t)}\b", lower))]
    start = max(0, min(hits) - chars // 3) if hits else 0
    start = min(start, len(text) - chars)
    if start > 0:  # begin on a word boundary
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 30 else start
    piece = text[start : start + chars].rstrip()
    return ("..." if start > 0 else "") + piece + ("..." if start + chars < len(text) else "")


class BM25Backend:
    """BM25 over a local JSONL corpus, with the index cached on disk (see module docstring)."""

    def __init__(
        self, corpus_path: str | Path, cache_dir: str | Path | None = None, snippet_chars: int = 300
    ):
        import bm25s  # imported here: only the local backend needs it

        self._bm25s = bm25s
        self.corpus_path = Path(corpus_path).resolve()
        if not self.corpus_path.is_file():
            raise FileNotFoundError(f"search corpus not found: {self.corpus_path}")
        self.snippet_chars = snippet_chars
        self.cache_dir = Path(cache_dir) if cache_dir else self.corpus_path.parent / ".bm25_cache"
        self.index_dir = self.cache_dir / f"bm25-{self.cache_key()}"
        self.loaded_from_cache = self.index_dir.is_dir()
        if not self.loaded_from_cache:
            self._build()
        self.retriever = bm25s.BM25.load(str(self.index_dir), mmap=True, show_progress=False)
        self.offsets = np.load(self.index_dir / "offsets.npy", mmap_mode="r")

    def cache_key(self) -> str:
        st = self.corpus_path.stat()
        ident = f"{self.corpus_path}|{st.st_mtime_ns}|{st.st_size}|tok{TOKENIZER_VERSION}"
        return hashlib.sha256(ident.encode()).hexdigest()[:16]

    def _build(self) -> None:
        """Tokenise the corpus once, index it, and move the index into place atomically."""
        vocab: dict[str, int] = {}
        ids: list[list[int]] = []
        offsets: list[int] = []
        with open(self.corpus_path, "rb") as f:
            for line_no, line in enumerate(iter(f.readline, b""), start=1):
                offset = f.tell() - len(line)
                if not line.strip():
                    continue
                doc = _parse_doc(line, line_no, self.corpus_path)
                tokens = tokenize(f"{doc['title']} {doc['text']}")
                ids.append([vocab.setdefault(t, len(vocab)) for t in tokens])
                offsets.append(offset)
        if not offsets:
            raise ValueError(f"search corpus {self.corpus_path} has no documents")
        retriever = self._bm25s.BM25()
        retriever.index(
            self._bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False
        )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=self.cache_dir))
        try:
            retriever.save(str(tmp), show_progress=False)
            np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
            (tmp / "source.json").write_text(
                json.dumps(
                    {
                        "corpus": str(self.corpus_path),
                        "documents": len(offsets),
                        "tokenizer": TOKENIZER_VERSION,
                    }
                )
            )
            os.rename(tmp, self.index_dir)  # another process may have won the race: keep theirs
        except OSError:
            if not self.index_dir.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._remove_stale()

    def _remove_stale(self) -> None:
        """Drop indexes of earlier versions of this corpus file."""
        for other in self.cache_dir.glob("bm25-*"):
            try:
                source = json.loads((other / "source.json").read_text())["corpus"]
            except (OSError, ValueError, KeyError):
                continue
            if other != self.index_dir and source == str(self.corpus_path):
                shutil.rmtree(other, ignore_errors=True)

    def document(self, index: int) -> dict:
        with open(self.corpus_path, "rb") as f:
            f.seek(int(self.offsets[index]))
            return _parse_doc(f.readline(), index + 1, self.corpus_path)

    def search(self, query: str, k: int) -> list[SearchResult]:
        tokens = [t for t in tokenize(query) if t in self.retriever.vocab_dict]
        if not tokens:
            return []
        k = min(k, len(self.offsets))
        docs, scores = self.retriever.retrieve([tokens], k=k, show_progress=False, n_threads=1)
        results = []
        for index, score in zip(docs[0], scores[0]):
            if score <= 0:
                break
            doc = self.document(int(index))
            results.append(
                SearchResult(
                    doc["title"], doc["id"], snippet(doc["text"], tokens, self.snippet_chars)
                )
            )
        return results


def _parse_doc(line: bytes, line_no: int, path: Path) -> dict:
    try:
        doc = json.loads(line)
    except ValueError as e:
        raise CorpusError(f"{path}:{line_no}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("text", doc.get("contents")), str):
        raise CorpusError(f"{path}:{line_no}: expected an object with a string 'text'")
    return {
        "id": str(doc.get("id", line_no)),
        "title": str(doc.get("title") or ""),
        "text": doc.get("text", doc.get("contents")),
    }


class HTTPSearchBackend:
    """A Serper-compatible web search API; the key comes from config or an env var named there."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 10.0,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"HTTPSearchBackend url must be http(s), got '{url}'")
        self.url = url
        self.api_key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
        self.timeout = timeout

    def search(self, query: str, k: int) -> list[SearchResult]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["X-API-KEY"] = self.api_key
        try:
            with deadline_client(self.timeout) as client:  # timeout: end to end
                response = client.post(self.url, json={"q": query, "num": k}, headers=headers)
        except httpx.TimeoutException:
            raise SearchError(
                f"the search service did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as e:
            raise SearchError(
                f"could not reach the search service: {type(e).__name__}: {e}"
            ) from None
        if response.status_code != 200:
            raise SearchError(
                f"the search service answered HTTP {response.status_code}: {response.text[:200]}"
            )
        try:
            organic = response.json().get("organic", [])
        except (ValueError, AttributeError):
            raise SearchError(
                f"the search service sent an unreadable answer: {response.text[:200]!r}"
            ) from None
        if not isinstance(organic, list):
            raise SearchError("the search service's answer has no 'organic' list")
        return [
            SearchResult(str(r.get("title", "")), str(r.get("link", "")), str(r.get("snippet", "")))
            for r in organic[:k]
            if isinstance(r, dict)
        ]


class SearchTool:
    """The agent-facing search tool over any backend."""

    name = "search"
    description = (
        "Search {where} for a query and get the top results, each with a title, a {ref} and a "
        "short snippet. Use specific keywords; search again with different words if the results "
        "do not answer the question."
    )
    parameters: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "The search query."},
            "top_k": {
                "type": "integer",
                "description": "How many results to return (default 5).",
                "minimum": 1,
                "maximum": 20,
            },
        },
        "required": ["query"],
    }

    def __init__(self, backend: SearchBackend, top_k: int = 5, max_top_k: int = 20):
        self.backend = backend
        self.top_k = top_k
        self.max_top_k = max_top_k
        local = isinstance(backend, BM25Backend)
        self.description = self.description.format(
            where="a local document collection" if local else "the web",
            ref="document id" if local else "URL",
        )

    def __call__(self, query: Any = "", top_k: Any = None, **_: Any) -> str:
        if not isinstance(query, str) or not query.strip():
            return "Error: search needs a non-empty 'query' string"
        try:
            k = self.top_k if top_k is None else int(top_k)
        except (TypeError, ValueError):
            return f"Error: top_k must be an integer, got {top_k!r}"
        k = max(1, min(k, self.max_top_k))
        try:
            results = self.backend.search(query.strip(), k)
        except Exception as e:  # noqa: BLE001 - the agent gets text, never an exception
            return f"Error: search failed: {e}"
        if not results:
            return f"No results for '{query.strip()}'."
        return "\n\n".join(
            f"[{i}] {r.title or '(untitled)'}\n{r.url}\n{r.snippet}"
            for i, r in enumerate(results, start=1)
        )
