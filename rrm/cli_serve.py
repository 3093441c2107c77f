"""``reagent serve``: an OpenAI-compatible server for a local model (see :mod:`rrm.serve`).

    reagent serve --model DIR --port 8000
    # then: reagent judge --base-url http://127.0.0.1:8000/v1 --traces t.jsonl --out j.jsonl

On GPUs, ``vllm serve DIR --port 8000`` is the production server; it speaks the same
API, so clients (``reagent judge --base-url``, the trainers' HTTP judge) need no change.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from reagent.config import add_config_args, cfg, load_config


@dataclass
class ServeConfig:
    model: str = cfg(None, help="local model directory to serve")
    host: str = cfg("127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network")
    port: int = cfg(8000, help="TCP port")
    served_model_name: str | None = cfg(None, help="name clients use (default: the directory)")
    max_batch: int = cfg(32, help="most sequences generated together in one batch")
    max_wait_ms: float = cfg(10.0, help="how long the first request waits for others to batch")
    default_max_tokens: int = cfg(1024, help="max_tokens when a request gives none")
    device: str = cfg("auto", help="cpu, cuda, cuda:1 or auto")
    dtype: str = cfg("auto", help="auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32")
    prefix_cache: bool = cfg(True, help="prefill a batch's shared leading tokens (a judge's system "
                                        "prompt) once and read them once per decode step")

    def __post_init__(self):
        if not self.model:
            raise ValueError("--model is required")
        if self.max_batch < 1 or self.max_wait_ms < 0:
            raise ValueError(f"need max_batch >= 1 and max_wait_ms >= 0, got {self.max_batch} "
                             f"and {self.max_wait_ms}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, ServeConfig)


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from rrm.serve import load_app

    config = load_config(ServeConfig, args)
    app = load_app(config.model, config.served_model_name, device=config.device,
                   dtype=config.dtype, max_batch=config.max_batch,
                   max_wait_ms=config.max_wait_ms, default_max_tokens=config.default_max_tokens,
                   prefix_cache=config.prefix_cache)
    print(f"serving {config.model} at http://{config.host}:{config.port}/v1", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")
    return 0
