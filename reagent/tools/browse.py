"""The ``browse`` tool: fetch a web page and return its readable text.

One call: HTTP GET (httpx) within a total deadline of ``timeout_s`` (connect, redirects
and every read together, so a server dripping a byte a second cannot hold it), redirects followed by hand up to
``max_redirects`` (each hop re-checked), only ``http``/``https`` URLs, and at most
``max_bytes`` of body read (the stream is closed past it). HTML becomes text through
trafilatura (main content, tables kept); when it finds nothing, a plain tag strip is
used instead. Plain text and JSON pass through; other content types are refused.

The text is cut to ``max_chars``. When a summariser is configured
(``summarizer_base_url`` + ``summarizer_model``, any OpenAI-compatible chat endpoint)
and the page is longer than ``summarize_min_chars``, the page (up to
``summarizer_max_input_chars``) is instead condensed toward the caller's ``goal``; if
that call fails the cut text is returned with a note.

By default URLs whose host resolves to a loopback, private, link-local or reserved
address are refused (``block_private_hosts``), so a model cannot reach internal
services such as cloud metadata endpoints; turn it off to browse a local mirror.
"""

from __future__ import annotations

import html as html_lib
import ipaddress
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import httpx

from reagent.config import cfg
from reagent.http_deadline import deadline_client
from reagent.tools.base import ToolSetupError

SUMMARY_PROMPT = (
    "You read a web page for an assistant that is working on this goal:\n{goal}\n\n"
    "Write down everything on the page that helps with the goal: facts, numbers, names, "
    "dates, quotes, and where on the page they appear. Do not add anything the page does "
    "not say. If nothing on the page is relevant, say so in one sentence.\n\n"
    "Page URL: {url}\nPage text:\n{text}"
)
TEXT_TYPES = (
    "text/plain",
    "application/json",
    "text/csv",
    "text/markdown",
    "application/xml",
    "text/xml",
)


@dataclass
class BrowseConfig:
    timeout_s: float = cfg(15.0, help="seconds allowed for the whole fetch of a page: connecting, "
                           "redirects and reading the body together")
    max_bytes: int = cfg(
        2_000_000, help="bytes of a response body read at most; the rest is never downloaded"
    )
    max_redirects: int = cfg(5, help="redirects followed before giving up")
    max_chars: int = cfg(
        8000, help="characters of page text returned (the rest is cut with a marker)"
    )
    user_agent: str = cfg(
        "Mozilla/5.0 (compatible; reagent-browse/0.1)", help="User-Agent header sent"
    )
    block_private_hosts: bool = cfg(
        True,
        help="refuse hosts resolving to loopback/private/link-local/reserved "
        "addresses; set False to browse a local mirror",
    )
    summarizer_base_url: str = cfg(
        "",
        help="OpenAI-compatible base URL (…/v1) used to condense long pages "
        "toward the goal; empty = no summarisation",
    )
    summarizer_model: str = cfg("", help="model name sent to the summariser")
    summarizer_api_key_env: str = cfg(
        "", help="name of the env var holding the summariser's API key"
    )
    summarize_min_chars: int = cfg(
        8000, help="pages longer than this are summarised (when a summariser is set)"
    )
    summarizer_max_input_chars: int = cfg(
        30000, help="characters of page text sent to the summariser"
    )
    summarizer_max_tokens: int = cfg(1024, help="max_tokens of the summary")
    summarizer_timeout_s: float = cfg(60.0, help="seconds allowed for the summariser's answer")

    def __post_init__(self) -> None:
        for name in (
            "timeout_s",
            "max_bytes",
            "max_chars",
            "summarizer_max_input_chars",
            "summarizer_timeout_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"BrowseConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_redirects < 0:
            raise ValueError(f"BrowseConfig.max_redirects must be >= 0, got {self.max_redirects}")
        if bool(self.summarizer_base_url) != bool(self.summarizer_model):
            raise ValueError(
                "BrowseConfig: set both summarizer_base_url and summarizer_model, or neither "
                f"(got base_url={self.summarizer_base_url!r}, model={self.summarizer_model!r})"
            )


class BrowseError(RuntimeError):
    """A page could not be fetched or read; the message is shown to the agent."""


class ExtractorMissing(ToolSetupError):
    """The HTML extractor's packages are not installed: the operator's problem, not the page's.

    Raised (never turned into agent text) so that a run fails at once with the package to
    install, instead of every page of every episode silently reading as an error.
    """


# (module to import, package that provides it) for the HTML extractor; lxml >= 5.2 moved its
# HTML cleaner, which jusText (a trafilatura dependency) imports, into lxml_html_clean.
EXTRACTOR_MODULES = (("trafilatura", "trafilatura"), ("lxml.html.clean", "lxml_html_clean"))


def check_extractor() -> None:
    """Raise :class:`ExtractorMissing` naming the package when the HTML extractor cannot load."""
    import importlib

    for module, package in EXTRACTOR_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ExtractorMissing(
                f"the browse tool needs the package '{package}' to read HTML pages "
                f"(import {module} failed: {e}); install it with: pip install {package}"
            ) from None


@dataclass
class Page:
    url: str  # after redirects
    content_type: str
    body: bytes
    encoding: str | None
    truncated: bool  # body hit max_bytes


def html_to_text(html: str, url: str | None = None) -> str:
    """Main text of an HTML page (trafilatura), or all visible text when that finds nothing."""
    check_extractor()
    import trafilatura  # slow to import; only needed here

    text = trafilatura.extract(
        html, url=url, include_tables=True, include_comments=False, favor_recall=True
    )
    return text.strip() if text and text.strip() else strip_tags(html)


def strip_tags(html: str) -> str:
    html = re.sub(r"(?is)<(script|style|noscript|template|svg)\b.*?</\1\s*>", " ", html)
    html = re.sub(r"(?is)<!--.*?-->", " ", html)
    html = re.sub(r"(?i)<(br|/p|/div|/h[1-6]|/li|/tr|/table|/section|/article)\b[^>]*>", "\n", html)
    text = html_lib.unescape(re.sub(r"(?s)<[^>]+>", " ", html))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def page_title(html: str) -> str:
    m = re.search(r"(?is)<title[^>]*>(.*?)</title>", html)
    return " ".join(html_lib.unescape(m.group(1)).split()) if m else ""


def cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return (
        text[:max_chars].rstrip()
        + f"\n[... truncated: {len(text) - max_chars:,} more characters not shown]"
    )


MAX_SHOWN = 200  # characters of a URL quoted back in error text


def _shown(url: Any) -> str:
    text = str(url)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text):,} characters)"


def _check_host(url: str) -> None:
    """Refuse a URL whose host resolves to an address a model should not reach."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as e:
        raise BrowseError(f"cannot resolve host '{_shown(host)}': {e}") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if (
            addr.is_loopback
            or addr.is_private
            or addr.is_link_local
            or addr.is_reserved
            or addr.is_multicast
            or addr.is_unspecified
        ):
            raise BrowseError(
                f"refusing to fetch '{_shown(url)}': host '{_shown(host)}' is a local or private "
                f"address ({addr})"
            )


class BrowseTool:
    """Fetches a URL and returns its text, optionally condensed toward a goal (module docstring)."""

    name = "browse"
    description = (
        "Open a web page (http or https URL) and read its main text. Optionally give a goal: what "
        "you want to find on the page, so that long pages can be condensed to the relevant parts. "
        "Long pages are cut; tables are kept as text."
    )
    parameters: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "The http(s) URL to open."},
            "goal": {
                "type": "string",
                "description": "What information you are looking for on the page.",
            },
        },
        "required": ["url"],
    }

    def __init__(self, config: BrowseConfig | None = None):
        self.config = config or BrowseConfig()
        check_extractor()  # fail when the tool is built, not on every page of a run

    def __call__(self, url: Any = "", goal: Any = None, **_: Any) -> str:
        if not isinstance(url, str) or not url.strip():
            return "Error: browse needs a non-empty 'url' string"
        goal = goal if isinstance(goal, str) and goal.strip() else None
        try:
            return self.read(url.strip(), goal)
        except BrowseError as e:
            return f"Error: {e}"
        except ExtractorMissing:
            raise
        except Exception as e:  # noqa: BLE001 - the agent gets text, never an exception
            return f"Error: browsing {_shown(url)} failed: {type(e).__name__}: {_shown(e)}"

    def read(self, url: str, goal: str | None = None) -> str:
        """The page's text as the agent sees it; raises :class:`BrowseError`."""
        page = self.fetch(url)
        title, text = self._to_text(page)
        header = (f"Title: {title}\n" if title else "") + f"URL: {page.url}\n"
        if page.truncated:
            header += (
                f"(page larger than {self.config.max_bytes:,} bytes: only its beginning was read)\n"
            )
        if not text.strip():
            return header + "\n(the page has no readable text)"
        c = self.config
        if c.summarizer_base_url and len(text) > c.summarize_min_chars:
            try:
                summary = self.summarize(text, goal, page.url)
                return (
                    header
                    + f"Summary toward the goal ({len(text):,} characters of page text read):"
                    + f"\n\n{summary}"
                )
            except Exception as e:  # noqa: BLE001 - fall back to the plain text
                header += f"(summarising failed: {type(e).__name__}: {e}; showing the page text)\n"
        return header + "\n" + cut(text, c.max_chars)

    def fetch(self, url: str) -> Page:
        c = self.config
        headers = {
            "User-Agent": c.user_agent,
            "Accept": "text/html,text/plain,application/json;q=0.9,*/*;q=0.5",
        }
        deadline = time.monotonic() + c.timeout_s
        with httpx.Client(headers=headers, follow_redirects=False) as client:
            for _hop in range(c.max_redirects + 1):
                scheme = urlsplit(url).scheme.lower()
                if scheme not in ("http", "https"):
                    raise BrowseError(
                        f"only http and https URLs can be opened, not "
                        f"'{_shown(scheme or url)}' ({_shown(url)})"
                    )
                if c.block_private_hosts:
                    _check_host(url)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowseError(f"{_shown(url)} did not answer within {c.timeout_s:g} s")
                try:
                    with client.stream("GET", url, timeout=left) as response:
                        if response.is_redirect:  # a 3xx with a Location header
                            url = urljoin(str(response.url), response.headers["location"])
                            continue
                        if response.status_code >= 400:
                            raise BrowseError(
                                f"{_shown(url)} answered HTTP {response.status_code} "
                                f"{_shown(response.reason_phrase)}".rstrip()
                            )
                        body, truncated = _read_capped(response, c.max_bytes, deadline)
                        content_type = (
                            response.headers.get("content-type", "").split(";")[0].strip().lower()
                        )
                        return Page(
                            str(response.url),
                            content_type,
                            body,
                            response.charset_encoding,
                            truncated,
                        )
                except httpx.TimeoutException:
                    raise BrowseError(
                        f"{_shown(url)} did not answer within {c.timeout_s:g} s") from None
                except httpx.HTTPError as e:
                    raise BrowseError(
                        f"could not fetch {_shown(url)}: {type(e).__name__}: {_shown(e)}") from None
        raise BrowseError(
            f"too many redirects: gave up after {c.max_redirects} (last location: {_shown(url)})"
        )

    def _to_text(self, page: Page) -> tuple[str, str]:
        try:
            raw = page.body.decode(page.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            raw = page.body.decode("utf-8", errors="replace")
        kind = page.content_type
        if kind in ("text/html", "application/xhtml+xml") or (not kind and raw.lstrip()[:1] == "<"):
            return page_title(raw), html_to_text(raw, page.url)
        if kind.startswith("text/") or kind in TEXT_TYPES or not kind:
            return "", raw.strip()
        raise BrowseError(f"{_shown(page.url)} is '{_shown(kind)}', which browse cannot read as text")

    def summarize(self, text: str, goal: str | None, url: str) -> str:
        """Condense ``text`` toward ``goal`` with the configured OpenAI-compatible endpoint."""
        c = self.config
        key = os.environ.get(c.summarizer_api_key_env, "") if c.summarizer_api_key_env else ""
        prompt = SUMMARY_PROMPT.format(
            goal=goal or "understand the main content of the page",
            url=url,
            text=text[: c.summarizer_max_input_chars],
        )
        with deadline_client(c.summarizer_timeout_s) as client:
            response = client.post(
                c.summarizer_base_url.rstrip("/") + "/chat/completions",
                headers={"Authorization": f"Bearer {key}"} if key else {},
                json={
                    "model": c.summarizer_model,
                    "messages": [{"role": "user", "content": prompt}],
                    "temperature": 0.0,
                    "max_tokens": c.summarizer_max_tokens,
                },
            )
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        if not isinstance(content, str) or not content.strip():
            raise ValueError("the summariser returned no text")
        return content.strip()


def _read_capped(response: httpx.Response, max_bytes: int,
                 deadline: float = float("inf")) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of the body; True when more was on offer (the rest is never read).

    Raises ``httpx.ReadTimeout`` once ``deadline`` (``time.monotonic()``) has passed, so a
    body dripping in slowly is bounded in total, not only per read.
    """
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the page did not finish in time", request=response.request)
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True
    return b"".join(chunks), False
