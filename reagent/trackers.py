"""Experiment trackers, chosen by ``report_to: [jsonl, tensorboard, wandb]`` as TRL and verl users expect.

Every sink has the same two methods, ``log(step, metrics)`` and ``close()``, and
:class:`Trackers` fans one call out to all of them, so a training loop logs once
and has no backend branches. Only the main process should build real sinks
(``is_main=False`` gives an empty :class:`Trackers`).

- ``jsonl``: one line per step in ``OUTPUT_DIR/metrics.jsonl`` (``{"step", "time", ...}``;
  a non-finite float is written as ``null``), the file ``reagent view RUN_DIR`` draws.
- ``tensorboard``: scalars under ``OUTPUT_DIR/tensorboard`` (needs the ``tensorboard``
  package, which ``torch.utils.tensorboard`` writes with).
- ``wandb``: optional; never imported unless asked for. Offline or online and the
  project are wandb's own settings (``WANDB_MODE=offline``, ``WANDB_PROJECT``, ...);
  this module sets none of them. Its files go under ``OUTPUT_DIR``.

A sink asked for whose package is missing raises :class:`ImportError` naming the
package and the install command, before any training starts.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Protocol

TRACKERS = ("jsonl", "tensorboard", "wandb")


class Tracker(Protocol):
    def log(self, step: int, metrics: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def validate_report_to(report_to: list[str] | tuple[str, ...] | str) -> list[str]:
    """The chosen tracker names, checked; a string is one name (``"none"`` or ``[]`` means none)."""
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    names = [n for n in names if n not in ("none", "")]
    bad = [n for n in names if n not in TRACKERS]
    if bad:
        raise ValueError(f"report_to={names}: unknown tracker {', '.join(map(repr, bad))}; "
                         f"choose from {', '.join(TRACKERS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"report_to={names}: a tracker is listed twice")
    return names


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class JsonlTracker:
    """Appends ``{"step", "time", **metrics}`` per call; a resumed run appends to the same file."""

    def __init__(self, output_dir: str | Path, filename: str = "metrics.jsonl"):
        self.path = Path(output_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        line = json.dumps({"step": step, "time": round(time.time(), 3), **_finite(metrics)}, default=str)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def close(self) -> None:
        pass


class TensorBoardTracker:
    """Numeric metrics as TensorBoard scalars (strings and ``None`` are not scalars and are left out)."""

    def __init__(self, output_dir: str | Path, subdir: str = "tensorboard"):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError("report_to includes 'tensorboard' but the 'tensorboard' package is not "
                              f"installed ({e}); pip install tensorboard, or drop it from report_to") from None
        self.logdir = Path(output_dir) / subdir
        self._writer = SummaryWriter(str(self.logdir))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for k, v in _scalars(metrics).items():
            self._writer.add_scalar(k, v, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandbTracker:
    """A Weights & Biases run; ``wandb.init`` reads its own settings (mode, project, entity, key)."""

    def __init__(self, output_dir: str | Path, run_name: str | None = None, config: dict | None = None):
        try:
            import wandb
        except ImportError:
            raise ImportError("report_to includes 'wandb' but the 'wandb' package is not installed; "
                              "pip install wandb (set WANDB_MODE=offline to log without an account), "
                              "or drop it from report_to") from None
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(dir=str(output_dir), name=run_name, config=config or {}, reinit="create_new")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self._run.log(_scalars(metrics), step=step, commit=True)

    def close(self) -> None:
        self._run.finish()


class Trackers:
    """All chosen sinks behind one ``log``/``close``; a sink that fails to log is reported once, not fatal."""

    def __init__(self, sinks: list[Tracker] | None = None):
        self.sinks = list(sinks or [])
        self.failures: dict[str, str] = {}

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for sink in self.sinks:
            name = type(sink).__name__
            try:
                sink.log(step, metrics)
            except Exception as e:  # a tracker outage must not kill a long training run
                if name not in self.failures:
                    print(f"trackers: {name} failed to log step {step}: {e!r}; training continues")
                self.failures[name] = repr(e)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_trackers(report_to: list[str] | str, output_dir: str | Path, run_name: str | None = None,
                  config: dict | None = None, is_main: bool = True) -> Trackers:
    """The sinks named in ``report_to`` writing under ``output_dir``; none on non-main ranks."""
    names = validate_report_to(report_to)
    if not is_main:
        return Trackers()
    trackers = Trackers()
    try:
        for name in names:
            if name == "jsonl":
                trackers.sinks.append(JsonlTracker(output_dir))
            elif name == "tensorboard":
                trackers.sinks.append(TensorBoardTracker(output_dir))
            else:
                trackers.sinks.append(WandbTracker(output_dir, run_name, config))
    except Exception:
        trackers.close()  # the sinks already opened
        raise
    return trackers
