"""InversePRM step labels: demonstration steps against the current policy's steps.

InversePRM (Choudhury 2025) learns a process reward from demonstrations alone, with no
outcome labels, by iterating: roll out the policy; train the PRM to tell demonstration
steps from policy steps; RL the policy with the PRM as its reward. This module makes
the PRM's training data for one iteration: every agent step (:mod:`reagent.steps`) of a
demonstration gets target q = 1, every step of a policy rollout q = 0 (advantage 0), as
``method: inverse`` :class:`reagent.records.StepLabel` records that ``reagent train-prm
--beta 0`` trains on (MSE to 0/1: a least-squares discriminator, whose optimum is the
share of demonstrations among the trajectories that reach a state like this one).

Objective and what keeps it from collapsing: the classes are balanced (the larger side
is subsampled, seeded) so a constant output is not a good fit; policy steps are fresh
each iteration, so as the policy moves toward the demonstrations the discriminator must
find the differences that remain (an adversarial-imitation loop, as in GAIL); and the
trainer uses the PRM's rewards group-normalised (:mod:`reagent.train.process_reward`),
so a PRM that drifts to one value for everything gives zero advantage rather than a
biased one.

The iteration itself is ``reagent train-prm --method inverse`` (:mod:`rrm.inverse_prm`),
which also mixes every earlier iteration's policy steps into the negatives.
"""

from __future__ import annotations

import random

from reagent.records import StepLabel, Trajectory
from reagent.steps import agent_steps


def _label(traj: Trajectory, q: float, params: dict) -> StepLabel | None:
    n = len(agent_steps(traj.messages))
    if n == 0:
        return None
    return StepLabel(trajectory_id=traj.id, method="inverse", params=params,
                     steps=[{"q": q, "advantage": 0.0} for _ in range(n)], trajectory=traj.to_dict())


def discriminator_labels(demos: list[Trajectory], policy: list[Trajectory], seed: int = 0
                         ) -> tuple[list[StepLabel], dict]:
    """Balanced step labels (demonstrations q = 1, policy q = 0) and counts of what was kept/skipped.

    Trajectories with no assistant turn are skipped (counted); the larger side is
    subsampled to the size of the smaller one."""
    rng = random.Random(seed)
    dem = [t for t in demos if agent_steps(t.messages)]
    pol = [t for t in policy if agent_steps(t.messages)]
    skipped = len(demos) - len(dem) + len(policy) - len(pol)
    n = min(len(dem), len(pol))
    if n == 0:
        raise ValueError(f"InversePRM needs demonstrations and policy rollouts with an assistant turn "
                         f"(got {len(dem)} and {len(pol)})")
    dem, pol = rng.sample(dem, n), rng.sample(pol, n)
    params = {"demos": n, "policy": n, "balanced": True, "seed": seed}
    labels = [_label(t, 1.0, params) for t in dem] + [_label(t, 0.0, params) for t in pol]
    rng.shuffle(labels)
    return [x for x in labels if x is not None], {"pairs": n, "skipped_no_turn": skipped}
