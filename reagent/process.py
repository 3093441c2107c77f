"""Process quality of an episode: how the agent worked, not only whether it was right.

The toy ledger task's rules checker (:mod:`reagent.envs.toy_checker`) names each flaw of
an episode. Some flaws cost the answer (guessing, wrong arithmetic, no answer); the
rest are *answer-neutral* (irrelevant lookups, repeated calls, non-existent accounts,
malformed calls, unknown tools, ``calc`` on one number): an outcome reward cannot see
them, a process judge can, so they are where a judge's signal should show (issue 19).

:func:`process_stats` is one episode's counts, written into each eval record;
:func:`process_metrics` averages them (``reagent eval`` results, the GRPO trainer's
``process/...`` metrics on the toy task, the efficacy study in ``benchmarks/``). It lives
in the core so the trainer and ``eval`` share it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from reagent.records import Task, Trajectory

# Flaws of the rules checker that do not change the answer.
ANSWER_NEUTRAL = ("irrelevant_lookup", "repeated_call", "missing_account", "malformed_call",
                  "unknown_tool", "needless_calc")


def process_stats(task: Task, traj: Trajectory) -> dict[str, Any]:
    """Flaws by kind (toy tasks only: ``{}`` elsewhere), answer-neutral flaw count, tool
    calls, and generated tokens (``None`` when the backend gave no token ids)."""
    calls = sum(len(m.tool_calls or []) for m in traj.messages if m.role == "assistant")
    tokens = sum(traj.loss_mask) if traj.loss_mask is not None else None
    flaws: Counter[str] = Counter()
    if "asked" in task.meta and "kind" in task.meta:
        from reagent.envs.toy_checker import check_process

        flaws.update(check_process(task, traj).flaws)
    out: dict[str, Any] = {"tool_calls": calls, "tokens": tokens, "flaws": dict(sorted(flaws.items()))}
    if flaws or "asked" in task.meta:
        out["answer_neutral_flaws"] = sum(flaws[k] for k in ANSWER_NEUTRAL)
    return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def process_metrics(stats: Iterable[dict | None]) -> dict[str, Any]:
    """Means per trajectory over the records' ``process`` dicts (missing ones skipped):
    ``process/answer_neutral_flaws``, ``process/flaws/{kind}``, ``process/tool_calls``,
    ``process/tokens``; ``{}`` when no record has process stats."""
    stats = [s for s in stats if isinstance(s, dict)]
    if not stats:
        return {}
    m: dict[str, Any] = {"process/tool_calls": _mean([s["tool_calls"] for s in stats]),
                         "process/tokens": _mean([s["tokens"] for s in stats if s.get("tokens") is not None])}
    toy = [s for s in stats if "answer_neutral_flaws" in s]
    if toy:
        m["process/answer_neutral_flaws"] = _mean([s["answer_neutral_flaws"] for s in toy])
        kinds = sorted({k for s in toy for k in s["flaws"]})
        for k in kinds:
            m[f"process/flaws/{k}"] = _mean([s["flaws"].get(k, 0) for s in toy])
    return m
