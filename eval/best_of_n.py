"""Best-of-N: sample N trajectories per attempt, keep the one the scorer rates highest.

The scorer is any :mod:`reagent.scorers` scorer, chosen with ``--scorer``: ``judge``
(the generative Agent-RRM judge, its ``<score>``), ``prm`` (the AgentPRM value head,
promise + progress), ``pvm`` (promise only) or ``orm`` (outcome model); the value-head
scorers aggregate step values with ``--aggregate`` (default ``last``, see
:mod:`reagent.scorers`). All candidates of all questions of a chunk are scored in one
call. A candidate that could not be scored ranks below every scored one, and ties go
to the earlier sample, so the pick is deterministic given the samples. Only the pick is
graded; every candidate's answer, environment outcome and score stay in the record
(``scorer_score``; ``judge_score`` too for the judge), so the gap between the pick and
the best candidate can be read off the records.

The curve of accuracy against N (:func:`bon_curve`, written by :func:`write_bon_curve`
as ``best_of_n.md``/``.json``/``.png``): for n = 1, 2, 4, ..., N, the scorer's pick
among the first n candidates of each record, graded by the candidate's environment
outcome (correct when >= 1), averaged over records; beside it pass@n, the share of
records with a correct candidate among the first n (what a perfect scorer reaches).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reagent.agent import AgentLoop, EpisodeSpec
from reagent.records import Trajectory

SCORERS = ("judge", "prm", "pvm", "orm")
CANDIDATE_SEP = "~"
SCORE_KEY = "best_of_n_score"  # where a candidate's score is kept (traj.rewards)
CURVE = "best_of_n"  # best_of_n.md / .json / .png


@dataclass
class Attempt:
    """One attempt at one task: the trajectory graded, and what led to it (defined here,
    below :mod:`eval.harness`, which imports it: no import circle)."""

    final: Trajectory
    initial: Trajectory | None = None  # Reagent-C: the first attempt the judge critiqued
    candidates: list[Trajectory] = field(default_factory=list)  # Best-of-N: all samples
    picked: int | None = None
    revise_skipped: str | None = None  # Reagent-C: why the first attempt was kept (not revised)


def check_scorer(scorer: str) -> None:
    """Raise a ValueError naming the valid scorers for an unknown one."""
    if scorer not in SCORERS:
        raise ValueError(f"scorer={scorer!r} is not one of {', '.join(SCORERS)}")


def pick_best(scores: list[float | None]) -> int:
    """Index of the highest score; unscored (None) ones rank last; ties -> the earliest."""
    if not scores:
        raise ValueError("pick_best of no candidates")
    keyed = [(s if s is not None else float("-inf"), -i) for i, s in enumerate(scores)]
    return -max(keyed)[1]


def best_of_n(
    loop_for: Callable[[int], AgentLoop], scorer: Any, specs: list[EpisodeSpec], n: int
) -> list[Attempt]:
    """One :class:`Attempt` per spec, its ``final`` the scorer's pick of ``n``.

    ``loop_for(i)`` is the agent loop of candidate ``i`` (its own sampling stream); the
    candidates of spec ``s`` have ids ``{s.id}~{i}``.
    """
    if n < 1:
        raise ValueError(f"best_of must be >= 1, got {n}")
    per_candidate = []
    for i in range(n):
        cand_specs = [
            EpisodeSpec(
                task=s.task,
                messages=list(s.messages),
                id=f"{s.id}{CANDIDATE_SEP}{i}",
                stage=s.stage,
                parent_id=s.parent_id,
                extra=dict(s.extra),
            )
            for s in specs
        ]
        per_candidate.append(loop_for(i).run(cand_specs))
    groups = [[per_candidate[i][j] for i in range(n)] for j in range(len(specs))]
    scores = scorer([t for g in groups for t in g])
    attempts = []
    for j, group in enumerate(groups):
        mine = scores[j * n : (j + 1) * n]
        for traj, score in zip(group, mine):
            traj.rewards[SCORE_KEY] = score
        best = pick_best(mine)
        attempts.append(Attempt(final=group[best], candidates=group, picked=best))
    return attempts


def bon_curve(records: list[dict]) -> list[dict]:
    """``[{"n", "accuracy", "pass@n", "records"}]`` for n = 1, 2, 4, ..., N (see module doc).

    Records are ``reagent eval`` lines with ``candidates`` (each with ``env_outcome`` and
    ``scorer_score``); a record with fewer than n candidates does not count at n.
    """
    from eval.report import _k_values  # 1, 2, 4, ..., N: the pass@k columns' own ladder

    picks = [r for r in records if r.get("candidates")]
    if not picks:
        return []
    rows = []
    for n in _k_values(max(len(r["candidates"]) for r in picks)):
        have = [r["candidates"][:n] for r in picks if len(r["candidates"]) >= n]
        right = [[(c.get("env_outcome") or 0.0) >= 1.0 for c in cands] for cands in have]
        chosen = [ok[pick_best([c.get("scorer_score") for c in cands])] for cands, ok in zip(have, right)]
        rows.append({"n": n, "accuracy": sum(chosen) / len(have), "pass@n": sum(any(ok) for ok in right) / len(have),
                     "records": len(have)})
    return rows


def write_bon_curve(out: str | Path, records: list[dict], label: str = "") -> list[dict]:
    """``best_of_n.json``, ``best_of_n.md`` (table) and ``best_of_n.png`` (curve) in ``out``."""
    rows = bon_curve(records)
    if not rows:
        return rows
    out = Path(out)
    (out / f"{CURVE}.json").write_text(json.dumps({"scorer": label, "curve": rows}, indent=2))
    lines = [f"Best-of-N accuracy{f' ({label})' if label else ''}", "",
             "| N | accuracy | pass@N | records |", "|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['accuracy']:.3f} | {r['pass@n']:.3f} | {r['records']} |" for r in rows]
    (out / f"{CURVE}.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    ns = [r["n"] for r in rows]
    ax.plot(ns, [r["accuracy"] for r in rows], marker="o", label=f"Best-of-N ({label or 'scorer'})")
    ax.plot(ns, [r["pass@n"] for r in rows], marker="x", linestyle="--", label="pass@N (oracle)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("N (samples per question)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / f"{CURVE}.png", dpi=120)
    plt.close(fig)
    return rows
