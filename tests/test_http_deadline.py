"""Total deadlines: a server dripping its answer a byte at a time cannot hold a call.

Each drip below would take 40-60 s to finish; per-read timeouts never fire on it. The
calls must end with a timeout error near their deadline instead (bounds are generous:
they assert "cut off", not a speed).
"""

from __future__ import annotations

import time

import httpx
import pytest

from reagent.generation.base import SamplingParams
from reagent.generation.openai_backend import OpenAIChatBackend
from reagent.http_deadline import deadline_client, deadline_transport
from reagent.tools.browse import BrowseConfig, BrowseTool
from tests.hostile_http import HostileServer


@pytest.fixture
def drip():
    with HostileServer("drip", interval_s=0.25) as server:
        yield server


def test_browse_is_cut_at_its_total_deadline(drip):
    tool = BrowseTool(BrowseConfig(block_private_hosts=False, timeout_s=1))
    start = time.monotonic()
    out = tool(url=f"{drip.url}/page")
    assert out.startswith("Error:") and "did not answer within 1 s" in out, out
    assert time.monotonic() - start < 10  # the drip alone takes 50 s


def test_openai_backend_request_is_cut_at_its_timeout(drip):
    backend = OpenAIChatBackend(f"{drip.url}/v1", "m", api_key_env=None, timeout=1,
                                max_retries=1, backoff_s=0.01)
    start = time.monotonic()
    [gen] = backend.chat([[{"role": "user", "content": "judge"}]], SamplingParams())
    backend.close()
    assert gen.finish_reason == "error" and "Timeout" in gen.error, gen
    assert drip.requests == 2  # the timeout was retried once, as a timeout should be
    assert time.monotonic() - start < 15


def test_deadline_client_and_transport(drip):
    with deadline_client(1) as client, pytest.raises(httpx.ReadTimeout):
        client.get(f"{drip.url}/page")
    with pytest.raises(ValueError, match="total_s must be > 0"):
        deadline_transport(0)


def test_answer_checker_and_search_api_are_cut_at_their_timeout(drip):
    from reagent.rewards.llm_judge import LLMAnswerChecker
    from reagent.tools.search import HTTPSearchBackend, SearchError

    start = time.monotonic()
    with LLMAnswerChecker(f"{drip.url}/v1", "m", max_retries=0, timeout=1) as checker:
        check = checker.check("What is 6*7?", "42", "42")
    assert check.verdict == "could_not_judge" and "Timeout" in (check.error or ""), check
    with pytest.raises(SearchError, match="did not answer within 1 s"):
        HTTPSearchBackend(f"{drip.url}/search", timeout=1).search("q", 3)
    assert time.monotonic() - start < 15  # each drip alone takes ~50 s
