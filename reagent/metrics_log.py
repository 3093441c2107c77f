"""Rank-0 metrics logging: one JSONL line per step, TensorBoard when installed.

Loops call ``log(step, metrics)`` unconditionally; only the main process writes, so
training code has no rank branches. A resumed run appends to the same file.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path


class MetricsLogger:
    def __init__(self, output_dir: str | Path, is_main: bool = True, filename: str = "metrics.jsonl",
                 tensorboard: bool = True):
        self.is_main = is_main
        self.path = Path(output_dir) / filename
        self._tb = None
        if not is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self._tb = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.is_main:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": round(time.time(), 3), **clean}) + "\n")
        if self._tb is not None:
            for k, v in clean.items():
                if isinstance(v, (int, float)) and v is not None:
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def truncate_after(self, step: int) -> None:
        """Drop lines of steps after ``step`` (a resumed run redoes them)."""
        if not self.is_main or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def print(self, *args, **kwargs) -> None:
        if self.is_main:
            print(*args, **kwargs, flush=True)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
