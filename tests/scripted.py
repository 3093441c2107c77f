"""The scripted stand-ins of the tests: a token backend and an OpenAI-compatible server.

:class:`ScriptedBackend` is a deterministic token backend for agent-loop tests: it
writes the demonstrator's turns. It is a real :class:`TokenBackend` over the real tokenizer: prompts arrive as token
ids, replies leave as token ids ending with eos, so masks and continuations are
exercised exactly as with a model. The reply for each prompt is chosen by reading
the prompt back, which is what makes the loop's bookkeeping observable.

:class:`ScriptedServer` is the one scripted OpenAI-compatible HTTP server every test
that needs one uses (backends, answer checking, annotation, evaluation).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from reagent.generation.base import Generation, SamplingParams, TokenBackend


class ScriptedBackend(TokenBackend):
    """``script(prompt_text, turn) -> reply text``; turn counts assistant turns so far.

    ``turn_marker`` (the assistant header) and ``end_token`` default to ChatML; pass
    Llama 3's (``<|start_header_id|>assistant<|end_header_id|>``, ``<|eot_id|>``) for it.
    """

    def __init__(self, tokenizer, script, turn_marker: str = "<|im_start|>assistant",
                 end_token: str = "<|im_end|>"):
        self.tokenizer = tokenizer
        self.script = script
        self.turn_marker, self.end_token = turn_marker, end_token
        self.batch_sizes: list[int] = []

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        self.batch_sizes.append(len(prompts))
        out = []
        for i, ids in enumerate(prompts):
            limit = params.for_row(i, len(prompts)).max_new_tokens
            text = self.tokenizer.decode(ids)
            turn = text.count(self.turn_marker) - 1
            reply = self.script(text, turn)
            reply_ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"]
            if len(reply_ids) > limit:
                out.append(Generation(text=self.tokenizer.decode(reply_ids[:limit]),
                                      token_ids=reply_ids[:limit], finish_reason="length"))
                continue
            ids_out = reply_ids + [self.tokenizer.convert_tokens_to_ids(self.end_token)]
            out.append(Generation(text=reply, token_ids=ids_out, finish_reason="stop"))
        return out


class SlowScripted(ScriptedBackend):
    """A scripted policy whose every non-empty generate call takes ``delay_s`` (a GPU
    forward's time), for overlap tests and benchmarks. ``mixed_calls`` counts calls that
    held a revised prompt (one containing ``revised_mark``) beside a first attempt."""

    def __init__(self, tokenizer, script, delay_s: float, revised_mark: str = "CRITIQUEMARK"):
        super().__init__(tokenizer, script)
        self.delay_s, self.revised_mark = delay_s, revised_mark
        self.mixed_calls = 0

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        if prompts:
            time.sleep(self.delay_s)
        revised = [self.revised_mark in self.tokenizer.decode(p) for p in prompts]
        self.mixed_calls += any(revised) and not all(revised)
        return super().generate(prompts, params)


def staggered_solver(max_extra: int = 5):
    """A script for the toy env whose episodes end at different turns: the k-th episode to
    start plans ``k % max_extra`` more lookups, writes the plan into its first turn (which
    later prompts carry), then answers ``\\boxed{turn}``."""
    plans = itertools.count()

    def lookup() -> str:
        return '<tool_call>\n' + json.dumps({"name": "lookup", "arguments": {"account": "A"}}) + '\n</tool_call>'

    def script(text: str, turn: int) -> str:
        if turn == 0:
            return f"Plan: {next(plans) % max_extra} lookups.\n" + lookup()
        wanted = int(re.search(r"Plan: (\d+) lookups", text).group(1))
        return lookup() if turn <= wanted else f"\\boxed{{{turn}}}"
    return script


class _Backlogged(ThreadingHTTPServer):
    """A listen backlog for bursts: socketserver's default of 5 makes the kernel drop the
    connects of a burst of 64 requests, which the clients retry about a second later (a
    1-second server then looked like a 3-second one); real servers (uvicorn, vLLM) listen
    with a backlog of 2048."""

    request_queue_size = 256


class ScriptedServer:
    """The one scripted OpenAI-compatible server of the tests, on 127.0.0.1 (a real
    ``ThreadingHTTPServer``: the ``openai`` client, its retries and our thread pools are
    exercised end to end).

    ``reply(body)`` answers each ``POST /v1/chat/completions`` with the text of the
    assistant message (``str``), a dict of choice fields (``content``, ``finish_reason``,
    ``tool_calls``, ``stop_reason``), or ``(status, message)`` to fail the request.
    ``GET /v1/models`` lists ``model``; other paths are 404. It records every request
    body and its headers and the most requests it served at once. Use it as
    ``with ScriptedServer(reply) as srv: ... srv.url`` (``http://127.0.0.1:PORT/v1``).
    """

    def __init__(self, reply, delay_s: float = 0.0, model: str = "scripted-teacher"):
        self.reply, self.delay_s, self.model = reply, delay_s, model
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
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
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    out = server.reply(body)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                if isinstance(out, tuple):
                    self._send(out[0], {"error": {"message": out[1], "type": "scripted"}})
                    return
                fields = {"content": out} if isinstance(out, str) else dict(out)
                message = {"role": "assistant", "content": fields.get("content")}
                for key in ("reasoning_content", "reasoning"):  # reasoning servers (split_reasoning)
                    if key in fields:
                        message[key] = fields[key]
                if fields.get("tool_calls"):
                    message["tool_calls"] = fields["tool_calls"]
                choice = {"index": 0, "finish_reason": fields.get("finish_reason", "stop"), "message": message}
                if "stop_reason" in fields:
                    choice["stop_reason"] = fields["stop_reason"]
                self._send(200, {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                    "model": body.get("model") or server.model, "choices": [choice],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

        self.httpd = _Backlogged(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        return self.url

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def split_reasoning(text: str, field: str = "reasoning_content") -> dict:
    """A reply as a reasoning server sends it: the ``<think>`` block's inside in ``field``
    (``reasoning_content`` for vLLM/SGLang, ``reasoning`` for others), the rest in ``content``."""
    head, sep, tail = text.partition("</think>")
    if not sep:
        return {"content": text}
    return {field: head.split("<think>", 1)[-1], "content": tail}
