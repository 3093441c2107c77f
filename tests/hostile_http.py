"""A plain ``http.server`` that misbehaves on purpose, for the total-deadline and fault tests.

* ``drip``: every GET or POST gets a valid answer (an OpenAI chat completion whose text is a
  well-formed judgment, or a short text page) whose headers arrive at once and whose body
  arrives one byte every ``interval_s``: never late by any per-read timeout, endless in total;
* ``models500``: ``GET /v1/models`` answers HTTP 500 (everything else 404).

Loopback only; the serving threads are daemons and stop writing when the client hangs up.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JUDGMENT = "<think>fine</think>\n<critique>- none</critique>\n<score>0.8</score>"


class HostileServer:
    def __init__(self, mode: str, interval_s: float = 0.2):
        if mode not in ("drip", "models500"):
            raise ValueError(f"mode {mode!r} is not one of drip, models500")
        self.mode, self.interval_s = mode, interval_s
        self.requests = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                server.requests += 1
                if server.mode == "models500":
                    status = 500 if self.path.rstrip("/").endswith("/models") else 404
                    self._send(status, b'{"error": {"message": "scripted failure"}}')
                else:
                    self._drip(b"a page that arrives one byte at a time " * 5, "text/plain")

            def do_POST(self):  # noqa: N802
                server.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if server.mode == "models500":
                    self._send(404, b'{"error": {"message": "not here"}}')
                    return
                answer = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": JUDGMENT}}]}
                self._drip(json.dumps(answer).encode(), "application/json")

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _drip(self, payload: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    for i in range(len(payload)):
                        self.wfile.write(payload[i:i + 1])
                        self.wfile.flush()
                        time.sleep(server.interval_s)
                except OSError:
                    pass  # the client gave up: what a deadline is for

        return Handler

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
