"""An OpenAI-compatible server for a local model, batching concurrent requests.

``reagent serve --model DIR --port P`` lets a judge (or any local model) run as its
own service, on CPU or GPU, behind the same API as ``vllm serve``:

* ``POST /v1/chat/completions`` (messages, ``max_tokens``/``max_completion_tokens``,
  ``temperature``, ``top_p``, ``top_k``, ``stop``, ``seed``, ``n``, ``stream``) with
  ``usage`` token counts and ``finish_reason`` ``stop``/``length``;
* ``GET /v1/models`` and ``GET /health`` (which also reports batching counters).

Requests that arrive while the model is busy, or within ``max_wait_ms`` of each other,
are generated together in one left-padded batch by
:class:`~reagent.generation.hf.HFBackend` (requests with different sampling settings
are batched per setting; ``max_tokens`` alone does not split a batch, each row keeps
its own limit). Generation runs in one worker thread, so the event loop keeps
accepting requests meanwhile.

Stop strings follow the OpenAI API: the returned text ends *before* the stop string,
and, as vLLM does, ``choices[i].stop_reason`` names the string that matched, so
:class:`~reagent.generation.openai_backend.OpenAIChatBackend` can restore it.

On GPUs ``vllm serve DIR`` is the production server (continuous batching, paged
attention); it speaks the same API, so :class:`rrm.judge.HTTPJudge` and every other
client work against either without change. This server is for CPU machines, tests and
models vLLM does not load.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request  # at module level: FastAPI resolves the handler's annotations here

from reagent.generation.base import Generation, SamplingParams

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)


class RequestError(ValueError):
    """A bad request; answered with HTTP ``status`` and an OpenAI-style error body."""

    def __init__(self, message: str, status: int = 400, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param


@dataclass
class _Pending:
    prompt: list[int]
    params: SamplingParams
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters shown on ``/health``: how well concurrent requests were batched."""

    requests: int = 0
    sequences: int = 0
    batches: int = 0
    max_batch: int = 0
    errors: int = 0
    started: float = field(default_factory=time.time)


class Batcher:
    """Collects pending prompts and generates them in batches on one worker thread."""

    def __init__(self, backend: Any, max_batch: int = 32, max_wait_ms: float = 10.0):
        self.backend = backend
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def submit(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        """Queue prompts and wait for their generations (in order)."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called (the app's lifespan starts it)")
        loop = asyncio.get_running_loop()
        futures = []
        for p in prompts:
            fut = loop.create_future()
            self._queue.put_nowait(_Pending(p, params, fut))
            futures.append(fut)
        return list(await asyncio.gather(*futures))

    async def _loop(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self._queue.empty():  # whatever queued while the model was busy
                    batch.append(self._queue.get_nowait())
                    continue
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        # requests that differ only in max_tokens share a batch: each row keeps its own limit
        groups: dict[str, list[_Pending]] = {}
        for item in batch:
            key = repr(dataclasses.replace(item.params, max_new_tokens=0, row_max_new_tokens=None))
            groups.setdefault(key, []).append(item)
        for items in groups.values():
            items = [it for it in items if not it.future.done()]  # client gone: skip
            if not items:
                continue
            self.stats.batches += 1
            self.stats.max_batch = max(self.stats.max_batch, len(items))
            self.stats.sequences += len(items)
            try:
                limits = [it.params.max_new_tokens for it in items]
                params = dataclasses.replace(items[0].params, max_new_tokens=max(limits),
                                             row_max_new_tokens=limits)
                gens = await asyncio.to_thread(self.backend.generate, [it.prompt for it in items], params)
            except Exception as e:  # report to every waiting request
                self.stats.errors += 1
                log.exception("generation failed for a batch of %d", len(items))
                for it in items:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            for it, g in zip(items, gens):
                if not it.future.done():
                    it.future.set_result(g)


def _stop_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value
    raise RequestError("'stop' must be a string or a list of strings", param="stop")


def _number(body: dict, key: str, default: float, kind: type = float) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"'{key}' must be a number, got {value!r}", param=key)
    return kind(value)


def sampling_from_request(body: dict, default_max_tokens: int) -> tuple[SamplingParams, int]:
    """(SamplingParams, n) from an OpenAI chat request body, validated."""
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = default_max_tokens if max_tokens is None else max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestError(f"'max_tokens' must be a positive integer, got {max_tokens!r}",
                           param="max_tokens")
    params = SamplingParams(
        max_new_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0),
        top_p=_number(body, "top_p", 1.0),
        top_k=max(_number(body, "top_k", 0, int), 0),
        stop=_stop_list(body.get("stop")),
        seed=None if body.get("seed") is None else _number(body, "seed", 0, int),
    )
    if params.temperature < 0 or not 0 < params.top_p <= 1:
        raise RequestError("need temperature >= 0 and 0 < top_p <= 1")
    n = _number(body, "n", 1, int)
    if not 1 <= n <= 64:
        raise RequestError(f"'n' must be between 1 and 64, got {n}", param="n")
    return params, n


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """Text before the first stop string, and that string (OpenAI semantics)."""
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    return (text, None) if best is None else (text[: best[0]], best[1])


def create_app(backend: Any, model_name: str, *, max_batch: int = 32, max_wait_ms: float = 10.0,
               default_max_tokens: int = 1024, max_model_len: int | None = None):
    """The FastAPI app serving ``backend`` (an :class:`HFBackend`) as ``model_name``."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse

    from reagent.tokenization import encode_prompt

    batcher = Batcher(backend, max_batch=max_batch, max_wait_ms=max_wait_ms)
    tokenizer = backend.tokenizer
    if max_model_len is None:
        config = getattr(backend.model, "config", None)
        max_model_len = getattr(config, "max_position_embeddings", None)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title=f"reagent serve: {model_name}", lifespan=lifespan)
    app.state.batcher = batcher

    def error(message: str, status: int, param: str | None = None) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": param,
                                       "code": status}}, status_code=status)

    @app.get("/health")
    async def health() -> dict:
        s = batcher.stats
        return {"status": "ok", "model": model_name, "requests": s.requests,
                "sequences": s.sequences, "batches": s.batches, "max_batch": s.max_batch,
                "errors": s.errors, "uptime_s": round(time.time() - s.started, 1)}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{
            "id": model_name, "object": "model", "created": int(batcher.stats.started),
            "owned_by": "reagent", "max_model_len": max_model_len}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        try:
            body = await request.json()
        except json.JSONDecodeError as e:
            return error(f"request body is not JSON: {e}", 400)
        try:
            return await _chat(body)
        except RequestError as e:
            return error(str(e), e.status, e.param)
        except Exception as e:  # a generation failure: the server's error
            log.exception("chat completion failed")
            return error(f"{type(e).__name__}: {e}", 500)

    async def _chat(body: Any):
        if not isinstance(body, dict):
            raise RequestError("request body must be a JSON object")
        requested = body.get("model")
        if requested and requested != model_name:
            raise RequestError(f"The model `{requested}` does not exist; this server serves "
                               f"`{model_name}`", status=404, param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("'messages' must be a non-empty list", param="messages")
        params, n = sampling_from_request(body, default_max_tokens)
        try:
            prompt = encode_prompt(tokenizer, messages)
        except Exception as e:  # the template rejected the messages
            raise RequestError(f"cannot apply the chat template: {e}", param="messages") from e
        if max_model_len is not None and len(prompt) + params.max_new_tokens > max_model_len:
            raise RequestError(
                f"prompt ({len(prompt)} tokens) + max_tokens ({params.max_new_tokens}) exceeds "
                f"the model's context length {max_model_len}", param="max_tokens")
        batcher.stats.requests += 1
        gens = await batcher.submit([prompt] * n, params)
        created = int(time.time())
        rid = "chatcmpl-" + uuid.uuid4().hex[:24]
        choices = []
        for i, g in enumerate(gens):
            text, matched = cut_at_stop(g.text, params.stop)
            choice = {"index": i, "message": {"role": "assistant", "content": text},
                      "finish_reason": "stop" if matched else g.finish_reason,
                      "stop_reason": matched, "logprobs": None}
            choices.append(choice)
        completion_tokens = sum(len(g.token_ids) for g in gens)
        usage = {"prompt_tokens": len(prompt), "completion_tokens": completion_tokens,
                 "total_tokens": len(prompt) + completion_tokens}
        if body.get("stream"):
            return StreamingResponse(_stream(rid, created, choices, usage),
                                     media_type="text/event-stream")
        return {"id": rid, "object": "chat.completion", "created": created, "model": model_name,
                "choices": choices, "usage": usage}

    def _stream(rid: str, created: int, choices: list[dict], usage: dict):
        # Generation is not incremental here: the whole text goes in one delta chunk.
        def chunk(delta: dict, index: int, finish: str | None) -> str:
            obj = {"id": rid, "object": "chat.completion.chunk", "created": created,
                   "model": model_name,
                   "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(obj)}\n\n"

        for c in choices:
            yield chunk({"role": "assistant", "content": ""}, c["index"], None)
            yield chunk({"content": c["message"]["content"]}, c["index"], None)
            yield chunk({}, c["index"], c["finish_reason"])
        yield "data: [DONE]\n\n"

    return app


def load_app(model_dir: str | Path, served_model_name: str | None = None, *,
             device: str = "auto", dtype: str = "auto", max_batch: int = 32,
             max_wait_ms: float = 10.0, default_max_tokens: int = 1024, prefix_cache: bool = True):
    """An app serving the local model directory ``model_dir``. ``prefix_cache``: a batch's
    shared leading tokens (a judge's system prompt) are prefilled once and read once per
    decode step (:class:`~reagent.generation.hf.HFBackend`), like vLLM's prefix caching."""
    from reagent.generation.hf import HFBackend

    backend = HFBackend(model_dir, device=device, dtype=dtype, batch_size=max_batch, prefix_cache=prefix_cache)
    return create_app(backend, served_model_name or str(model_dir), max_batch=max_batch,
                      max_wait_ms=max_wait_ms, default_max_tokens=default_max_tokens)


class ServerThread:
    """Run an app with uvicorn in a background thread (tests, notebooks, in-process judges).

    ``port=0`` binds a free port; ``url`` is the OpenAI base URL (``.../v1``).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True, name="reagent-serve")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 30.0) -> Self:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
