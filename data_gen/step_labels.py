"""Step labels for process reward models: TD+GAE (AgentPRM) and Monte-Carlo targets.

* ``td_gae`` (Xi et al. 2025): Q targets and advantages from the trajectory's own
  outcome and a value model's step values, by :func:`rrm.prm_losses.td_gae_targets`
  - no generation at all. **Bootstrap**: with no PRM yet (``value_model=None``) the
  values are 0, so ``Q_t = (gamma*lam)^(n-1-t) * outcome`` (with ``lam = 1`` the
  discounted outcome of the trajectory itself: a one-rollout MC target). Train a
  first PRM on those, then relabel with ``--value-model`` that PRM; each round costs
  one forward pass per trajectory.
* ``mc`` (Choudhury 2025): ``Q_t`` = mean over ``N`` continuations of the discounted
  outcome, each continuation sampled by the policy from the state after step t
  (the conversation through step t's assistant turn and its tool results). The last
  step's Q is the trajectory's own outcome (nothing is left to sample). All prefixes
  of all trajectories run through the batched agent loop together, ``batch_size``
  episodes at a time, one backend call per turn. A continuation's discount is
  ``gamma^c`` for the ``c`` turns it took; a continuation whose outcome could not be
  computed (backend error) is left out of the mean, and a step with none left has no
  label (the record is skipped and counted). Each continuation may take up to
  ``max_turns`` further turns. The advantage of step t >= 1 is
  ``Q_t - Q_{t-1} / gamma`` (the state value before step t is ``Q_{t-1}/gamma`` under
  sparse rewards); step 0 has no earlier estimate and gets 0 (the progress loss
  leaves step 0 out).

Every record carries the method, its parameters and its cost: ``tokens_generated``
(policy tokens sampled for it; 0 for td_gae) and ``tokens_scored`` (tokens the value
model read).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from reagent.agent import AgentConfig, AgentLoop, EpisodeSpec
from reagent.records import StepLabel, Task, Trajectory
from reagent.steps import agent_steps
from rrm.prm_losses import td_gae_targets

METHODS = ("td_gae", "mc")


@dataclass
class LabelReport:
    labelled: int = 0
    skipped: Counter = field(default_factory=Counter)
    tokens_generated: int = 0
    tokens_scored: int = 0

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.most_common())
        return (f"labelled {self.labelled} trajectories; {self.tokens_generated} tokens generated, "
                f"{self.tokens_scored} scored" + (f"; skipped {skipped}" if skipped else ""))


def usable(trajs: list[Trajectory], report: LabelReport) -> list[Trajectory]:
    """Trajectories with an outcome and at least one step; the others are counted, not labelled."""
    keep = []
    for t in trajs:
        if t.outcome is None:
            report.skipped["no outcome"] += 1
        elif not agent_steps(t.messages):
            report.skipped["no assistant turn"] += 1
        else:
            keep.append(t)
    return keep


def _record(traj: Trajectory, method: str, params: dict, q: list[float], adv: list[float],
            cost: dict, values: list[float] | None = None) -> StepLabel:
    steps = [{"q": float(a), "advantage": float(b)} for a, b in zip(q, adv)]
    if values is not None:
        for s, v in zip(steps, values):
            s["value"] = float(v)
    return StepLabel(trajectory_id=traj.id, method=method, params=params, steps=steps,
                     trajectory=traj.to_dict(), extra={"cost": cost, "outcome": traj.outcome})


def label_td_gae(trajs: list[Trajectory], gamma: float, lam: float, scorer=None,
                 report: LabelReport | None = None) -> list[StepLabel]:
    """TD+GAE labels; ``scorer`` (an :class:`rrm.prm.PRMScorer`) gives V, else V = 0 (bootstrap)."""
    report = report if report is not None else LabelReport()
    trajs = usable(trajs, report)
    counts = [len(agent_steps(t.messages)) for t in trajs]
    values: list[list[float] | None] = [[0.0] * n for n in counts]
    if scorer is not None:
        values = scorer.score_steps(trajs)
    params = {"gamma": gamma, "lam": lam, "value_model": getattr(scorer, "name", None) if scorer else None,
              "bootstrap": "V=0" if scorer is None else "PRM values"}
    keep = [i for i, v in enumerate(values) if v is not None and len(v) == counts[i]]
    if len(keep) < len(trajs):
        report.skipped["value model could not score"] += len(trajs) - len(keep)
    if not keep:
        return []
    width = max(counts[i] for i in keep)
    v = torch.zeros(len(keep), width, dtype=torch.float64)
    mask = torch.zeros(len(keep), width)
    for r, i in enumerate(keep):
        v[r, :counts[i]] = torch.tensor(values[i], dtype=torch.float64)
        mask[r, :counts[i]] = 1
    outcomes = torch.tensor([trajs[i].outcome for i in keep], dtype=torch.float64)
    q, adv = td_gae_targets(outcomes, v, mask, gamma, lam)
    out = []
    for r, i in enumerate(keep):
        n = counts[i]
        scored = scorer.lengths[i] if scorer is not None else 0
        report.tokens_scored += scored
        out.append(_record(trajs[i], "td_gae", params, q[r, :n].tolist(), adv[r, :n].tolist(),
                           {"tokens_generated": 0, "tokens_scored": scored}, values[i] if scorer else None))
    report.labelled += len(out)
    return out


def continuation_specs(traj: Trajectory, task: Task, rollouts: int) -> list[EpisodeSpec]:
    """``rollouts`` episodes from the state after each non-final step of ``traj``."""
    steps = agent_steps(traj.messages)
    return [EpisodeSpec(task=task, messages=list(traj.messages[:s.state_end]), id=f"{traj.id}@{s.index}#{k}",
                        extra={"label_of": traj.id, "after_step": s.index})
            for s in steps[:-1] for k in range(rollouts)]


def label_mc(trajs: list[Trajectory], tasks: dict[str, Task], loop: AgentLoop, rollouts: int, gamma: float,
             batch_size: int, report: LabelReport | None = None, progress=None) -> list[StepLabel]:
    """Monte-Carlo labels; continuations of all trajectories run together in the agent loop."""
    report = report if report is not None else LabelReport()
    trajs = usable(trajs, report)
    missing = [t for t in trajs if t.task_id not in tasks]
    if missing:
        report.skipped["task not found"] += len(missing)
        trajs = [t for t in trajs if t.task_id in tasks]
    specs = [s for t in trajs for s in continuation_specs(t, tasks[t.task_id], rollouts)]
    returns: dict[tuple[str, int], list[float]] = {}
    generated: Counter = Counter()
    for start in range(0, len(specs), batch_size):
        for cont in loop.run(specs[start:start + batch_size]):
            key = (cont.extra["label_of"], cont.extra["after_step"])
            generated[key[0]] += _generated_tokens(cont)
            if cont.outcome is not None:
                returns.setdefault(key, []).append(gamma ** cont.extra.get("turns", 1) * cont.outcome)
        if progress is not None:
            progress(min(start + batch_size, len(specs)), len(specs))
    params = {"rollouts": rollouts, "gamma": gamma, "policy": loop.policy_name,
              "max_turns": loop.config.max_turns, "temperature": loop.config.temperature}
    out = []
    for t in trajs:
        n = len(agent_steps(t.messages))
        q = [returns.get((t.id, i)) for i in range(n - 1)]
        if any(not r for r in q):
            report.skipped["a step with no scored continuation"] += 1
            continue
        qs = [sum(r) / len(r) for r in q] + [float(t.outcome)]
        adv = [0.0] + [qs[i] - qs[i - 1] / gamma for i in range(1, n)]
        report.tokens_generated += generated[t.id]
        out.append(_record(t, "mc", params, qs, adv, {"tokens_generated": generated[t.id], "tokens_scored": 0}))
    report.labelled += len(out)
    return out


def _generated_tokens(traj: Trajectory) -> int:
    """Policy tokens sampled in an episode: the loss mask with a token backend, else the estimate."""
    if traj.loss_mask is not None:
        return int(sum(traj.loss_mask))
    return int(traj.extra.get("generated_tokens", 0))


def agent_config(max_turns: int, max_tokens: int, max_new_tokens: int, temperature: float, seed: int) -> AgentConfig:
    return AgentConfig(max_turns=max_turns, max_tokens=max_tokens, max_new_tokens=max_new_tokens,
                       temperature=temperature, seed=seed)
