"""Best-of-N: sample N trajectories per attempt, keep the one the scorer rates highest.

The scorer is a generative judge (Agent-RRM, ``--scorer judge``): each candidate is
judged on its own and the highest ``<score>`` wins; a candidate the judge could not
score ranks below every scored one, and ties go to the earlier sample, so the pick is
deterministic given the samples. Only the pick is graded; every candidate's answer,
environment outcome and judge score stay in the record, so the gap between the pick and
the best candidate (the scorer's selection error) can be read off the records.

``--scorer prm`` (a process reward model's value at the last step) is reserved: no PRM
exists in the project yet, and asking for one fails at once with a clear error rather
than silently falling back to the judge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reagent.agent import AgentLoop, EpisodeSpec
from reagent.records import Judgment, Trajectory

SCORERS = ("judge", "prm")
CANDIDATE_SEP = "~"


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
    """Raise a ValueError naming the fix for an unknown or not-yet-available scorer."""
    if scorer == "prm":
        raise ValueError(
            "--scorer prm: no PRM available yet (process reward models are a later "
            "issue); use --scorer judge with --judge-model DIR or --judge-base-url URL"
        )
    if scorer not in SCORERS:
        raise ValueError(f"scorer={scorer!r} is not one of {', '.join(SCORERS)}")


def pick_best(judgments: list[Judgment]) -> int:
    """Index of the highest-scored judgment; unscored ones rank last; ties -> the earliest."""
    if not judgments:
        raise ValueError("pick_best of no candidates")
    keyed = [
        (j.score if j.score is not None else float("-inf"), -i) for i, j in enumerate(judgments)
    ]
    return -max(keyed)[1]


def best_of_n(
    loop_for: Callable[[int], AgentLoop], judge: Any, specs: list[EpisodeSpec], n: int
) -> list[Attempt]:
    """One :class:`Attempt` per spec, its ``final`` the judge's pick of ``n``.

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
    judgments = judge.score([t for g in groups for t in g])
    attempts = []
    for j, group in enumerate(groups):
        verdicts = judgments[j * n : (j + 1) * n]
        for traj, verdict in zip(group, verdicts):
            traj.judge = verdict
        best = pick_best(verdicts)
        attempts.append(Attempt(final=group[best], candidates=group, picked=best))
    return attempts
