"""A scripted OpenAI-compatible server on 127.0.0.1 and toy trace fixtures.

The server is a real HTTP server (``http.server``, one thread per request) speaking
``POST /v1/chat/completions`` and ``GET /v1/models``, so the teacher path is exercised
end to end through the ``openai`` client, its retries and our thread pool. What it
answers is a Python function of the request, so every output record can be predicted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reagent.envs.toy import ToyEnv
from reagent.envs.toy_demos import demonstrations
from reagent.jsonl import write_records
from reagent.records import Trajectory

# request body -> reply text (or the message's fields as a dict), or (HTTP status, error
# message) to fail the request
Reply = Callable[[dict], "str | dict | tuple[int, str]"]


class ScriptedServer:
    """``with ScriptedServer(reply, delay_s) as srv: srv.url`` -> ``http://127.0.0.1:P/v1``."""

    def __init__(self, reply: Reply, delay_s: float = 0.0, model: str = "scripted-teacher"):
        self.reply, self.delay_s, self.model = reply, delay_s, model
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [
                        {"id": server.model, "object": "model", "created": 0, "owned_by": "test"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    out = server.reply(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                if isinstance(out, tuple):
                    self._send(out[0], {"error": {"message": out[1], "type": "scripted"}})
                    return
                self._send(200, {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                    "model": body.get("model") or server.model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 # a dict reply is the message itself (e.g. reasoning_content)
                                 "message": {"role": "assistant",
                                             **(out if isinstance(out, dict) else {"content": out})}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def toy_traces(n: int, seed: int = 0, env_seed: int = 0) -> list[Trajectory]:
    """Demonstrator episodes (clean and flawed) on the first ``n`` toy training tasks."""
    env = ToyEnv(seed=env_seed)
    return demonstrations(env, env.tasks("train", n), flaw_rate=0.5, seed=seed)


@pytest.fixture
def traces_file(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    write_records(path, toy_traces(12))
    return path
