"""Experiment trackers, chosen by ``report_to: [jsonl, tensorboard, wandb]`` as TRL and verl users expect.

The one place metrics leave a training run: every trainer logs through
:class:`reagent.train.runtime.MetricsLogger`, which builds its sinks here. Every sink has
``write(step, metrics)``, ``truncate_after(step)`` (a resumed run drops what was logged
after its checkpoint, so the redone steps appear once) and ``close()``.

- ``jsonl``: one line per step in ``OUTPUT_DIR/metrics.jsonl`` (``{"step", "time", ...}``;
  a non-finite float is written as ``null``), the file ``reagent view RUN_DIR`` draws;
  truncation rewrites it atomically (temp file, rename).
- ``tensorboard``: scalars under ``OUTPUT_DIR/tensorboard`` (needs the ``tensorboard``
  package); on resume the writer is reopened with ``purge_step`` so TensorBoard hides
  the events of the redone steps.
- ``wandb``: optional; never imported unless asked for. Offline or online and the
  project are wandb's own settings (``WANDB_MODE=offline``, ``WANDB_PROJECT``, ...);
  this module sets none of them. Its files go under ``OUTPUT_DIR``. A wandb run cannot
  take back logged steps: after a resume the redone steps are logged again with the
  same step numbers.

The default, :data:`DEFAULT_REPORT_TO` (jsonl and tensorboard), skips tensorboard with a
note when its package is missing (it is a ``dev`` extra); a tracker named explicitly whose
package is missing raises :class:`ImportError` naming the package, before training starts.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Protocol

from reagent.config import cfg

TRACKERS = ("jsonl", "tensorboard", "wandb")
DEFAULT_REPORT_TO = ("jsonl", "tensorboard")


def report_to_field() -> Any:
    """The ``report_to`` field of every trainer's config (checked by :func:`validate_report_to`)."""
    return cfg(list(DEFAULT_REPORT_TO), help="experiment trackers: jsonl (metrics.jsonl), tensorboard, "
               "wandb (optional; WANDB_MODE=offline needs no account); [] for none")


class Sink(Protocol):
    def write(self, step: int, metrics: dict[str, Any]) -> None: ...

    def truncate_after(self, step: int) -> None: ...

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


class JsonlSink:
    """One JSON object a line: ``{"step", "time", **metrics}``; non-finite floats -> null."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        line = json.dumps({"step": step, "time": round(time.time(), 3), **_finite(metrics)}, default=str)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def truncate_after(self, step: int) -> None:
        """Keep lines of steps <= ``step``; written to a temp file and renamed (atomic)."""
        if not self.path.exists():
            return
        keep = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        tmp.replace(self.path)

    def close(self) -> None:
        pass


class TensorBoardSink:
    """Numeric metrics as TensorBoard scalars (strings and ``None`` are not scalars and are left out)."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError("report_to includes 'tensorboard' but the 'tensorboard' package is not "
                              f"installed ({e}); pip install tensorboard, or drop it from report_to") from None
        self.log_dir = str(log_dir)
        self._writer = SummaryWriter(self.log_dir)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        for k, v in _scalars(metrics).items():
            self._writer.add_scalar(k, v, step)
        self._writer.flush()

    def truncate_after(self, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer.close()
        self._writer = SummaryWriter(self.log_dir, purge_step=step + 1)

    def close(self) -> None:
        self._writer.close()


class WandbSink:
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

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        self._run.log(_scalars(metrics), step=step, commit=True)

    def truncate_after(self, step: int) -> None:
        pass  # wandb keeps what it logged (module docstring)

    def close(self) -> None:
        self._run.finish()


def make_sinks(report_to: list[str] | tuple[str, ...] | str, output_dir: str | Path,
               run_name: str | None = None, config: dict | None = None,
               filename: str = "metrics.jsonl") -> list[Sink]:
    """The sinks named in ``report_to``, writing under ``output_dir`` (module docstring)."""
    lenient = tuple(report_to) == DEFAULT_REPORT_TO if not isinstance(report_to, str) else False
    sinks: list[Sink] = []
    try:
        for name in validate_report_to(report_to):
            if name == "jsonl":
                sinks.append(JsonlSink(Path(output_dir) / filename))
            elif name == "tensorboard":
                try:
                    sinks.append(TensorBoardSink(Path(output_dir) / "tensorboard"))
                except ImportError:
                    if not lenient:
                        raise
                    print("report_to: tensorboard is not installed; logging without it "
                          "(pip install tensorboard)", flush=True)
            else:
                sinks.append(WandbSink(output_dir, run_name, config))
    except Exception:
        for sink in sinks:  # the sinks already opened
            sink.close()
        raise
    return sinks
