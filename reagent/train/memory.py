"""Peak memory of a training phase, for the per-step metrics.

On CUDA the allocator's high-water mark since :func:`reset_peak_memory` (what the
update really held: activations, logits, optimizer state); on CPU the process's peak
resident set size, which the OS never resets, so it is the run's peak so far.
"""

from __future__ import annotations

import resource
import sys

import torch


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> dict[str, float]:
    """``memory/peak_allocated_gb`` (CUDA, since the last reset) and ``memory/peak_rss_gb``."""
    out: dict[str, float] = {}
    if torch.cuda.is_available():
        out["memory/peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    out["memory/peak_rss_gb"] = rss / (2**30 if sys.platform == "darwin" else 2**20)
    return out
