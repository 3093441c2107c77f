"""Total deadlines for HTTP requests made with httpx (judge, teacher, checker, backend, tools).

httpx's timeouts are per operation: ``timeout=5`` bounds the connect and *each* read, so a
server that sends one byte a second is never late and can hold a request for as long as
it likes (a 1 byte/s page held a ``timeout_s=3`` browse call for 45 s; a slow-drip judge
took 40 s per request with ``--timeout 5``). :class:`DeadlineTransport` makes the timeout
a bound on the whole request: the per-operation timeouts are cut to the time left, and
the body is checked against the deadline after every chunk it delivers, so a drip ends
with ``httpx.ReadTimeout`` within about one chunk of the deadline. What it cannot cut
short is a server dripping its *headers*; those are bounded per read only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx


class DeadlineTransport(httpx.BaseTransport):
    """An httpx transport that gives each request at most ``total_s`` seconds, end to end."""

    def __init__(self, total_s: float, transport: httpx.BaseTransport | None = None):
        if not total_s > 0:
            raise ValueError(f"total_s must be > 0, got {total_s!r}")
        self.total_s = float(total_s)
        self._inner = transport or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.total_s
        timeouts = dict(request.extensions.get("timeout") or {})
        request.extensions["timeout"] = {
            k: self.total_s if v is None else min(v, self.total_s)
            for k, v in {**dict.fromkeys(("connect", "read", "write", "pool")), **timeouts}.items()
        }
        response = self._inner.handle_request(request)
        if time.monotonic() > deadline:
            response.close()
            raise httpx.ReadTimeout(f"no answer within {self.total_s:g} s", request=request)
        response.stream = _DeadlineStream(response.stream, deadline, self.total_s, request)
        return response

    def close(self) -> None:
        self._inner.close()


class _DeadlineStream(httpx.SyncByteStream):
    def __init__(self, stream, deadline: float, total_s: float, request: httpx.Request):
        self._stream, self._deadline, self._total_s, self._request = (
            stream, deadline, total_s, request)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise httpx.ReadTimeout(
                    f"the answer was not complete within {self._total_s:g} s",
                    request=self._request)
            yield chunk

    def close(self) -> None:
        self._stream.close()


def deadline_client(total_s: float, **kwargs) -> httpx.Client:
    """An ``httpx.Client`` whose every request ends within ``total_s`` seconds."""
    return httpx.Client(transport=DeadlineTransport(total_s), timeout=total_s, **kwargs)
