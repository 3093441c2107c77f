"""Total deadlines for HTTP requests (judge, teacher, checker, backend, tools).

httpx's timeouts are per operation: ``timeout=5`` bounds the connect and *each* read, so a
server that sends one byte a second is never late and can hold a request for as long as
it likes (a 1 byte/s page held a ``timeout_s=3`` browse call for 45 s; a slow-drip judge
took 40 s per request with ``--timeout 5``). :func:`deadline_transport` makes the timeout
a bound on the whole request: the per-operation timeouts are cut to the total, and the
body is checked against the deadline after every chunk it delivers, so a drip ends with
``ReadTimeout`` within about one chunk of the deadline. What it cannot cut short is a
server dripping its *headers*; those are bounded per read only.

The transport is built for an httpx-compatible module passed in, because the ``openai``
client ships its own fork (``httpx2``) whose classes are not httpx's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx


def deadline_transport(total_s: float, http: ModuleType = httpx) -> Any:
    """An ``http.BaseTransport`` giving each request at most ``total_s`` seconds, end to end."""
    if not total_s > 0:
        raise ValueError(f"total_s must be > 0, got {total_s!r}")
    return _classes(http)(float(total_s), http.HTTPTransport())


def deadline_client(total_s: float, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose every request ends within ``total_s`` seconds."""
    return httpx.Client(transport=deadline_transport(total_s), timeout=total_s, **kwargs)


@functools.cache
def _classes(http: ModuleType) -> type:
    class DeadlineStream(http.SyncByteStream):
        def __init__(self, stream, deadline: float, total_s: float, request):
            self._stream, self._deadline, self._total_s, self._request = (
                stream, deadline, total_s, request)

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._stream:
                if time.monotonic() > self._deadline:
                    raise http.ReadTimeout(
                        f"the answer was not complete within {self._total_s:g} s",
                        request=self._request)
                yield chunk

        def close(self) -> None:
            self._stream.close()

    class DeadlineTransport(http.BaseTransport):
        def __init__(self, total_s: float, inner):
            self.total_s, self._inner = total_s, inner

        def handle_request(self, request):
            deadline = time.monotonic() + self.total_s
            given = dict(request.extensions.get("timeout") or {})
            request.extensions["timeout"] = {
                k: self.total_s if given.get(k) is None else min(given[k], self.total_s)
                for k in ("connect", "read", "write", "pool")}
            response = self._inner.handle_request(request)
            if time.monotonic() > deadline:
                response.close()
                raise http.ReadTimeout(f"no answer within {self.total_s:g} s", request=request)
            response.stream = DeadlineStream(response.stream, deadline, self.total_s, request)
            return response

        def close(self) -> None:
            self._inner.close()

    return DeadlineTransport
