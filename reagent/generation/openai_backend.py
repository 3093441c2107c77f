"""Any OpenAI-compatible chat endpoint (vLLM/SGLang servers, hosted APIs) as a ChatBackend.

Used for teachers, remote judges and evaluation, where text is all we need.
Requests run in a thread pool of ``concurrency`` workers owned by the backend, so at
most ``concurrency`` requests are in flight however many threads call ``chat``.

Retries are ours, not the client's (the client is built with ``max_retries=0``):
connection errors, timeouts, 408/409/429 and 5xx are retried up to ``max_retries``
times with exponential backoff (``backoff_s * 2**attempt``, jittered, capped at
``max_backoff_s``; a ``Retry-After`` header is honoured up to that cap). Doing it here
keeps the policy visible and testable, and lets tests use millisecond backoffs.

A request that still fails, or fails with an error not worth retrying (400, 401,
404, ...), becomes ``Generation(text="", finish_reason="error", error="...")``:
one bad request never raises out of a batch, and is never mistaken for an empty answer.

Mapping of :class:`SamplingParams`: ``temperature``, ``top_p``, ``max_tokens``
(from ``max_new_tokens``), ``stop`` and ``seed`` are standard fields; ``top_k`` has no
OpenAI field and goes in ``extra_body`` (vLLM/SGLang servers read it; only set it for
them). Stop strings are kept in the output as the contract says: when the server
reports which stop string ended the text (vLLM's ``stop_reason``) and the text does
not already end with it, it is appended; hosted APIs do not report it, so there the
text ends just before the stop string. Tool calls the server returns in
``message.tool_calls`` are rendered into the text in the Hermes ``<tool_call>``
format that :func:`reagent.toolcalls.parse_tool_calls` reads, so the agent loop parses
both backends' output the same way.
"""

from __future__ import annotations

import importlib
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reagent.generation.base import ChatBackend, Generation, SamplingParams
from reagent.http_deadline import deadline_transport
from reagent.records import ToolCall
from reagent.toolcalls import render_tool_calls

_RETRY_STATUS = {408, 409, 429}


class OpenAIChatBackend(ChatBackend):
    """``chat(conversations, params, tools)`` against ``{base_url}/chat/completions``.

    ``base_url`` is given as OpenAI clients take it, e.g. ``http://127.0.0.1:8000/v1``.
    ``api_key_env`` names the environment variable holding the key; ``None`` or an
    unset variable sends the placeholder ``"EMPTY"``, which local servers accept.
    ``timeout`` is seconds per request attempt, end to end (a server dripping its answer
    a byte at a time is cut off; see :mod:`reagent.http_deadline`). ``extra_body`` is merged into every request
    (server-specific options such as ``{"chat_template_kwargs": {...}}``).
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 60.0, max_retries: int = 3,
                 backoff_s: float = 1.0, max_backoff_s: float = 30.0,
                 extra_body: dict | None = None):
        import openai

        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url
        self.model = model
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.extra_body = dict(extra_body or {})
        api_key = (os.environ.get(api_key_env) if api_key_env else None) or "EMPTY"
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0,
            http_client=openai.DefaultHttpxClient(transport=deadline_transport(
                timeout, _client_http_module(openai))))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency,
                                                thread_name_prefix="openai-backend")
            return self._pool

    def close(self) -> None:
        """Stop the worker threads and close the HTTP connections."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        self.client.close()

    def chat(self, conversations: list[list[dict]], params: SamplingParams,
             tools: list[dict] | None = None) -> list[Generation]:
        if not conversations:
            return []
        n = len(conversations)
        # Request i gets seed + i: identical prompts in one batch (a GRPO group) must sample
        # independently, as on the token backends; and its own max_tokens (row limits).
        requests = []
        for i in range(n):
            request = self._request_kwargs(params.for_row(i, n), tools)
            if "seed" in request and params.row_seeds is None:
                request["seed"] += i
            requests.append(request)
        pool = self._executor()
        return list(pool.map(self._one, conversations, requests))

    def _request_kwargs(self, params: SamplingParams, tools: list[dict] | None) -> dict:
        kwargs: dict[str, Any] = {"model": self.model, "temperature": params.temperature,
                                  "top_p": params.top_p, "max_tokens": params.max_new_tokens}
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if tools:
            kwargs["tools"] = tools
        extra = dict(self.extra_body)
        if params.top_k > 0:
            extra["top_k"] = params.top_k
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def _one(self, messages: list[dict], request: dict) -> Generation:
        last_error = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.chat.completions.create(messages=messages, **request)
            except Exception as e:  # noqa: BLE001 - every failure becomes an "error" Generation
                last_error = _describe(e)
                delay = self._retry_delay(e, attempt)
                if delay is None:
                    break
                time.sleep(delay)
                continue
            try:
                return _to_generation(response, request.get("stop") or [])
            except Exception as e:  # noqa: BLE001 - a malformed response is not worth a retry
                return Generation(text="", finish_reason="error",
                                  error=f"could not read the response: {_describe(e)}")
        return Generation(text="", finish_reason="error", error=last_error)

    def _retry_delay(self, error: Exception, attempt: int) -> float | None:
        """Seconds to wait before the next try, or ``None`` when not to retry."""
        if attempt >= self.max_retries:
            return None
        openai = self._openai
        retry_after = None
        if isinstance(error, openai.APIStatusError):
            if error.status_code not in _RETRY_STATUS and error.status_code < 500:
                return None
            retry_after = _retry_after_s(error)
        elif not isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
            return None
        delay = self.backoff_s * (2 ** attempt) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_backoff_s)

    def __del__(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)


def _client_http_module(openai: Any) -> Any:
    """The httpx-compatible module the openai client is built on (httpx, or its httpx2 fork)."""
    base = next(c for c in openai.DefaultHttpxClient.__mro__[1:] if c.__name__ == "Client")
    return importlib.import_module(base.__module__.split(".")[0])


def _retry_after_s(error: Any) -> float | None:
    try:
        return float(error.response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    prefix = f"HTTP {status}: " if status is not None else ""
    return f"{prefix}{type(error).__name__}: {error}"


def _to_generation(response: Any, stops: list[str]) -> Generation:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return Generation(text="", finish_reason="error", error=f"response has no choices: "
                          f"{str(response)[:500]}")
    choice = choices[0]
    message = choice.message
    text = message.content or ""
    stop_reason = getattr(choice, "stop_reason", None)  # vLLM: the stop string that matched
    if isinstance(stop_reason, str) and stop_reason in stops and not text.endswith(stop_reason):
        text += stop_reason
    calls = getattr(message, "tool_calls", None) or []
    if calls:
        rendered = render_tool_calls([ToolCall.from_dict(c.model_dump()) for c in calls])
        text = f"{text}\n{rendered}" if text else rendered
    reason = "length" if choice.finish_reason == "length" else "stop"
    return Generation(text=text, finish_reason=reason)
