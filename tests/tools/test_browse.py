"""The browse tool against pages served on 127.0.0.1, and a scripted summariser endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reagent.tools.browse import BrowseConfig, BrowseTool, html_to_text

ARTICLE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>The Ledger Problem &amp; Its Solution</title>
<script>var tracking = "SECRET_TRACKER_CODE";</script><style>body { color: red; }</style></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/about">About</a></li>
<li><a href="/blog">Blog</a></li></ul></nav>
<header><h1>The Ledger Problem</h1><p class="byline">By A. Writer, 3 March 2024</p></header>
<main><article>
<h2>Background</h2>
<p>Double-entry bookkeeping records every transaction twice, once as a debit and once as a credit,
so that the books always balance. The method was described by Luca Pacioli in 1494.</p>
<p>Auditors rely on this property: if the two sides differ, an error has been made somewhere in the
ledger, and the difference often points to the transaction that was recorded wrongly.</p>
<table><tr><th>Account</th><th>Balance</th></tr><tr><td>Cash</td><td>1,250</td></tr>
<tr><td>Receivables</td><td>730</td></tr></table>
<p>In the toy task an agent must look up each balance with a tool before it adds them up,
and it is rewarded only when the boxed total is right.</p>
</article></main>
<footer><p>Copyright 2024 Example Corp. All rights reserved. Privacy policy. Cookie settings.</p>
</footer>
</body></html>"""

LONG_PAGE = (
    "<html><head><title>Long</title></head><body><article>"
    + "".join(
        f"<p>Paragraph {i}: the annual rainfall in town {i} was {100 + i} millimetres.</p>"
        for i in range(300)
    )
    + "</article></body></html>"
)


class _Site(BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path
        if path == "/article":
            self._send(200, ARTICLE.encode(), "text/html; charset=utf-8")
        elif path == "/long":
            self._send(200, LONG_PAGE.encode(), "text/html")
        elif path.startswith("/hop/"):  # /hop/N redirects N more times, then lands on the article
            n = int(path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{n - 1}" if n > 1 else "/article")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/big":  # 5 MB of text, sent in pieces
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(5_000_000))
            self.end_headers()
            try:
                for _ in range(50):
                    self.wfile.write(b"z" * 100_000)
            except OSError:
                pass  # the client stopped reading: expected
        elif path == "/image":
            self._send(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png")
        else:
            self._send(404, b"<html><body>Not here</body></html>", "text/html")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if type(self).summarizer_fails:
            self._send(500, b'{"error": "overloaded"}', "application/json")
            return
        answer = {
            "id": "c1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Town 7 had 107 millimetres."},
                }
            ],
        }
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def site():
    _Site.calls = []
    _Site.summarizer_fails = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def local(**kw) -> BrowseTool:
    return BrowseTool(BrowseConfig(block_private_hosts=False, timeout_s=5, **kw))


def test_extracts_the_article_text(site):
    text = local()(url=f"{site}/article")
    assert text.startswith(f"Title: The Ledger Problem & Its Solution\nURL: {site}/article\n")
    assert "Luca Pacioli in 1494" in text and "boxed total is right" in text
    assert "Receivables" in text and "730" in text  # tables are kept
    assert "SECRET_TRACKER_CODE" not in text and "color: red" not in text
    assert "Cookie settings" not in text  # boilerplate (footer) is dropped


def test_follows_redirects_up_to_the_limit(site):
    tool = local(max_redirects=3)
    ok = tool(url=f"{site}/hop/3")
    assert f"URL: {site}/article" in ok and "Pacioli" in ok
    assert tool(url=f"{site}/hop/4").startswith("Error: too many redirects: gave up after 3")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/file.txt", "javascript:alert(1)"]
)
def test_refuses_other_schemes(url):
    text = local()(url=url)
    assert text.startswith("Error: only http and https URLs can be opened") and url in text


def test_refuses_private_hosts_by_default(site):
    text = BrowseTool()(url=f"{site}/article")
    assert text.startswith("Error: refusing to fetch") and "127.0.0.1" in text


def test_caps_the_bytes_read(site):
    tool = local(max_bytes=100_000, max_chars=500)
    page = tool.fetch(f"{site}/big")
    assert page.truncated and len(page.body) == 100_000
    text = tool(url=f"{site}/big")
    assert "only its beginning was read" in text and "99,500 more characters not shown" in text


def test_http_errors_and_unreadable_types_become_text(site):
    assert local()(url=f"{site}/missing").startswith(f"Error: {site}/missing answered HTTP 404")
    assert "cannot read as text" in local()(url=f"{site}/image")
    assert local()(url="http://127.0.0.1:9/").startswith("Error: could not fetch")
    assert local()(url="").startswith("Error:")


def test_long_pages_are_summarised_toward_the_goal(site, monkeypatch):
    monkeypatch.setenv("TEST_SUMMARIZER_KEY", "sk-local")
    tool = local(
        summarizer_base_url=f"{site}/v1",
        summarizer_model="judge-small",
        summarizer_api_key_env="TEST_SUMMARIZER_KEY",
        summarize_min_chars=2000,
    )
    text = tool(url=f"{site}/long", goal="rainfall in town 7")
    assert text.endswith("Town 7 had 107 millimetres.") and "Summary toward the goal" in text
    [call] = _Site.calls
    assert call["path"] == "/v1/chat/completions" and call["auth"] == "Bearer sk-local"
    assert call["body"]["model"] == "judge-small"
    prompt = call["body"]["messages"][0]["content"]
    assert "rainfall in town 7" in prompt and "Paragraph 7: the annual rainfall" in prompt

    assert "Summary" not in tool(url=f"{site}/article", goal="x")  # short page: no summariser call
    assert len(_Site.calls) == 1


def test_failed_summary_falls_back_to_the_text(site):
    _Site.summarizer_fails = True
    tool = local(
        summarizer_base_url=f"{site}/v1",
        summarizer_model="m",
        summarize_min_chars=2000,
        max_chars=300,
    )
    text = tool(url=f"{site}/long", goal="rainfall")
    assert (
        "summarising failed" in text
        and "Paragraph 0" in text
        and "more characters not shown" in text
    )


def test_html_fallback_when_extraction_finds_nothing():
    assert html_to_text("<html><body><div>Only <b>this</b></div></body></html>") == "Only this"


def test_config_is_checked():
    with pytest.raises(ValueError, match="summarizer_model"):
        BrowseConfig(summarizer_base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="max_bytes"):
        BrowseConfig(max_bytes=0)


def test_missing_extractor_is_a_setup_error_naming_the_package(monkeypatch):
    """Without lxml_html_clean the tool refuses to be built, and a call never becomes page text."""
    import sys

    from reagent.records import ToolCall
    from reagent.tools.base import ToolSetupError, run_tool_call
    from reagent.tools.browse import ExtractorMissing, Page, check_extractor

    check_extractor()  # installed here: nothing raised
    tool = BrowseTool(BrowseConfig(block_private_hosts=False))
    monkeypatch.setitem(sys.modules, "lxml.html.clean", None)  # as if the package were missing
    with pytest.raises(ExtractorMissing, match="pip install lxml_html_clean"):
        BrowseTool()
    with pytest.raises(ToolSetupError, match="lxml_html_clean"):
        html_to_text("<html><body><p>x</p></body></html>")
    page = Page(url="http://127.0.0.1:9/x", content_type="text/html", body=b"<p>x</p>",
                encoding="utf-8", truncated=False)
    monkeypatch.setattr(tool, "fetch", lambda url: page)
    call = ToolCall(id="c1", name="browse", arguments='{"url": "http://127.0.0.1:9/x"}')
    with pytest.raises(ExtractorMissing):
        run_tool_call({"browse": tool}, call)


@pytest.mark.parametrize("url", ["http://" + "x" * 100_000, "ftp://" + "x" * 100_000,
                                 "http://127.0.0.1/" + "x" * 100_000])
def test_error_text_does_not_echo_a_huge_url(url):
    out = BrowseTool(BrowseConfig(timeout_s=3))(url=url)
    assert out.startswith("Error:") and len(out) < 600
