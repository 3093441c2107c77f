"""One scorer interface over trajectories, used by Best-of-N, beam search and the trainer.

A scorer is a callable ``scorer(trajs) -> list[float | None]`` (trajectory level) with a
method ``scorer.score_steps(trajs) -> list[list[float] | None]`` (one value per agent
step, :mod:`reagent.steps`). ``None`` means "could not score" (the judge failed, the
trajectory was too long to encode), never a silent zero: Best-of-N ranks it below every
scored candidate and the trainer does not train on it.

Implementations (duck-typed on what they wrap, so this core module imports nothing
from ``rrm``):

* :class:`JudgeScorer` -- the generative judge (Agent-RRM): the trajectory score is the
  judge's ``<score>``; the value of step t is the judge's score of the trajectory cut
  after step t (its prefix through that step's tool results), all prefixes judged in
  one batched call. The verdicts of the whole trajectories are kept on
  ``traj.judge``.
* :class:`StepValueScorer` -- a value-head model with ``score_steps`` (``rrm.prm.PRMScorer``):
  the AgentPRM PRM (promise + progress, Xi et al. 2025), the PVM (promise only,
  ``beta = 0``) and the ORM (trained on the last step against the outcome) are the same
  head trained three ways; :func:`rrm.prm.load_value_scorer` loads one and checks
  that the checkpoint was trained as the kind asked for.

Aggregation of step values into a trajectory score (:data:`AGGREGATES`):

* ``last`` -- the value at the last step. The default for the value-head scorers: the
  AgentPRM head estimates Q(s_t, a_t), the expected final outcome, so the last step's
  Q is the model's estimate of success (Choudhury 2025 and Xi et al. 2025 rank
  Best-of-N candidates by it); the ORM is only trained there, so ``last`` is its only
  meaningful choice.
* ``min`` -- the weakest step (Math-Shepherd, Wang et al. 2024; a chain is as good as
  its worst step).
* ``mean`` -- the average step value.
* ``product`` -- the product of step values, the probability every step is right when
  values are per-step correctness probabilities (Lightman et al. 2023, PRM800K).
  Values outside [0, 1] are clamped first so the product stays a probability.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from reagent.records import Trajectory
from reagent.steps import agent_steps


class Scorer(Protocol):
    name: str

    def __call__(self, trajs: list[Trajectory]) -> list[float | None]: ...

    def score_steps(self, trajs: list[Trajectory]) -> list[list[float] | None]: ...


def _last(v: Sequence[float]) -> float:
    return float(v[-1])


def _min(v: Sequence[float]) -> float:
    return float(min(v))


def _mean(v: Sequence[float]) -> float:
    return float(sum(v) / len(v))


def _product(v: Sequence[float]) -> float:
    return float(math.prod(min(1.0, max(0.0, x)) for x in v))


AGGREGATES: dict[str, Callable[[Sequence[float]], float]] = {
    "last": _last, "min": _min, "mean": _mean, "product": _product,
}


def aggregate(values: Sequence[float] | None, how: str = "last") -> float | None:
    """One trajectory score from its step values; ``None`` for no values (could not score)."""
    if how not in AGGREGATES:
        raise ValueError(f"aggregate={how!r} is not one of {', '.join(AGGREGATES)}")
    if not values:
        return None
    return AGGREGATES[how](values)


def step_prefixes(traj: Trajectory) -> list[Trajectory]:
    """The trajectory cut after each agent step (through that step's tool results)."""
    out = []
    for step in agent_steps(traj.messages):
        cut = Trajectory.from_dict({**traj.to_dict(), "id": f"{traj.id}@{step.index}",
                                    "messages": [m.to_dict() for m in traj.messages[:step.state_end]]})
        out.append(cut)
    return out


class JudgeScorer:
    """The generative judge as a scorer: ``judge.score(trajs) -> list[Judgment]``."""

    def __init__(self, judge: Any, name: str = "judge"):
        self.judge, self.name = judge, name

    def __call__(self, trajs: list[Trajectory]) -> list[float | None]:
        verdicts = self.judge.score(trajs)
        if len(verdicts) != len(trajs):
            raise RuntimeError(f"judge returned {len(verdicts)} verdicts for {len(trajs)} trajectories")
        for traj, verdict in zip(trajs, verdicts):
            traj.judge = verdict
        return [v.score for v in verdicts]

    def score_steps(self, trajs: list[Trajectory]) -> list[list[float] | None]:
        cuts = [step_prefixes(t) for t in trajs]
        flat = [c for group in cuts for c in group]
        verdicts = self.judge.score(flat) if flat else []
        out: list[list[float] | None] = []
        k = 0
        for group in cuts:
            scores = [v.score for v in verdicts[k:k + len(group)]]
            k += len(group)
            out.append(None if not group or any(s is None for s in scores) else [float(s) for s in scores])
        return out


class StepValueScorer:
    """A model with ``score_steps`` (the value-head PRM, PVM or ORM) as a scorer."""

    def __init__(self, model: Any, aggregate_by: str = "last", name: str = "prm"):
        if aggregate_by not in AGGREGATES:
            raise ValueError(f"aggregate={aggregate_by!r} is not one of {', '.join(AGGREGATES)}")
        self.model, self.aggregate_by, self.name = model, aggregate_by, name

    def score_steps(self, trajs: list[Trajectory]) -> list[list[float] | None]:
        return self.model.score_steps(trajs)

    def __call__(self, trajs: list[Trajectory]) -> list[float | None]:
        return [aggregate(v, self.aggregate_by) for v in self.score_steps(trajs)]


class FunctionScorer:
    """A plain ``(trajs) -> list[float | None]`` function as a trajectory-level scorer
    (oracles in tests and benchmarks, rule-based rewards); it has no step values."""

    def __init__(self, fn: Callable[[list[Trajectory]], list[float | None]], name: str = "function"):
        self.fn, self.name = fn, name

    def __call__(self, trajs: list[Trajectory]) -> list[float | None]:
        return list(self.fn(trajs))

    def score_steps(self, trajs: list[Trajectory]) -> list[list[float] | None]:
        raise NotImplementedError(f"scorer {self.name!r} scores whole trajectories only")
