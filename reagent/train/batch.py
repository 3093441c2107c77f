"""From judged trajectories to a training batch: rewards, groups, advantages, tensors.

Reward of trajectory i: ``R_i = outcome_i + lambda * score_i`` (Reagent-R/U), or the
outcome alone (GRPO). Under Reagent-U the G initial and G revised rollouts of a prompt
share one group id, so the advantage is taken over the pooled 2G rewards.

A reward that could not be computed is never trained on as 0, and rewards inside a group
are always of one kind, so advantages compare like with like:

* judge failure under ``on_judge_failure=outcome_only``: if any member of a group has no
  judge score, *every* member of that group is rewarded by its outcome alone (counted in
  ``judge/groups_outcome_only``). Rewarding the failed one with ``outcome + lambda*0``
  beside ``outcome + lambda*0.8`` would hand it a large negative advantage, and turn a
  group that is all-equal by outcome into a made-up training signal.
* under ``drop`` the failed members leave their group (the caller's ``keep``) before the
  advantage, and the group's degeneracy is judged on the members that stay.
* a trajectory whose outcome is ``None`` (the backend failed, nothing to grade) gets
  ``total = None`` and never enters a loss (counted in ``episodes/outcome_none``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from reagent.records import Trajectory
from reagent.train.algos import compute_advantages, degenerate_groups
from reagent.train.prefix_pack import Packed


@dataclass
class Batch:
    """Padded tensors for the update; shapes (N, L) and (N,)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    trajectories: list[Trajectory] = field(default_factory=list)
    # the same rows packed with their group's shared prompt run once (reagent.train.prefix_pack)
    packed: Packed | None = None

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def slice(self, start: int, end: int) -> Batch:
        pick = lambda t: None if t is None else t[start:end]  # noqa: E731
        return Batch(self.input_ids[start:end], self.attention_mask[start:end], self.loss_mask[start:end],
                     self.advantages[start:end], pick(self.old_logp), pick(self.ref_logp),
                     self.trajectories[start:end])


def assign_rewards(trajs: list[Trajectory], scores: list[float | None], lam: float,
                   truncated: str, truncation_penalty: float, *, keep: list[bool] | None = None,
                   group_ids: list[int] | None = None, judged: bool = False) -> dict:
    """Write ``rewards = {outcome, judge, total}`` into each trajectory; return counts.

    ``judged``: the run uses a judge (so a missing score is a failure, not "no judge");
    ``keep`` and ``group_ids``: which trajectories stay (``drop`` removes failed ones) and
    their groups, for the group-wise outcome-only rule of the module docstring.
    """
    keep = keep if keep is not None else [True] * len(trajs)
    group_ids = group_ids if group_ids is not None else [0] * len(trajs)
    # A member without an outcome leaves the loss anyway, so its judgment cannot matter.
    outcome_only = {g for t, g, s, k in zip(trajs, group_ids, scores, keep)
                    if judged and k and s is None and t.outcome is not None}
    for traj, score, g in zip(trajs, scores, group_ids):
        if traj.outcome is None:
            traj.rewards = {"outcome": None, "judge": score, "total": None}
            continue
        use_judge = judged and g not in outcome_only and score is not None
        total = traj.outcome + (lam * score if use_judge else 0.0)
        if traj.truncated and truncated == "penalise":
            total = truncation_penalty
        traj.rewards = {"outcome": traj.outcome, "judge": score, "total": total}
        if judged and g in outcome_only:
            traj.rewards["judge_ignored"] = True
    return {"judge/groups_outcome_only": len({g for g, k in zip(group_ids, keep) if k} & outcome_only),
            "episodes/outcome_none": sum(t.outcome is None for t in trajs)}


def select_and_advantage(trajs: list[Trajectory], group_ids: list[int], estimator: str,
                         keep_degenerate: bool, truncated: str) -> tuple[list[Trajectory], torch.Tensor, dict]:
    """Advantages per trajectory; drop degenerate groups and (truncated=mask) truncated episodes.

    Trajectories without a reward (``total is None``: no outcome) are left out first.

    Advantages are computed over whole groups first, so masking a truncated episode
    afterwards does not shift its group's baseline.
    """
    gradable = [i for i, t in enumerate(trajs) if t.rewards["total"] is not None]
    trajs, group_ids = [trajs[i] for i in gradable], [group_ids[i] for i in gradable]
    rewards = torch.tensor([t.rewards["total"] for t in trajs], dtype=torch.float64)
    groups = torch.tensor(group_ids, dtype=torch.long)
    adv = compute_advantages(estimator, rewards, groups)
    degenerate = degenerate_groups(rewards, groups)
    keep = torch.ones(len(trajs), dtype=torch.bool) if keep_degenerate else ~degenerate
    if truncated == "mask":
        keep &= torch.tensor([not t.truncated for t in trajs])
    n_groups = len(set(group_ids))
    n_degenerate = len({g for g, d in zip(group_ids, degenerate.tolist()) if d})
    stats = {"groups/total": n_groups, "groups/degenerate_frac": n_degenerate / max(n_groups, 1),
             "groups/dropped_frac": 0.0 if keep_degenerate else n_degenerate / max(n_groups, 1)}
    for t, a in zip(trajs, adv.tolist()):
        t.rewards["advantage"] = a
    kept = [t for t, k in zip(trajs, keep.tolist()) if k]
    return kept, adv[keep].float(), stats


def padding_batch(pad_id: int) -> Batch:
    """A one-row, all-masked micro-batch: zero weight in the loss, but a full forward and
    backward, so a rank with fewer micro-batches keeps the collectives in step."""
    return Batch(torch.full((1, 2), pad_id, dtype=torch.long), torch.ones((1, 2), dtype=torch.long),
                 torch.zeros((1, 2)), torch.zeros(1))


def length_buckets(lengths: list[int], size: int) -> list[list[int]]:
    """Indices in micro-batches of at most ``size`` rows of similar length (sorted, then cut),
    so each micro-batch pads only to its own longest row. The loss is a sum over rows
    divided by a whole-batch normaliser, so the grouping does not change the gradient."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[b:b + size] for b in range(0, len(order), size)]


def collate(trajs: list[Trajectory], advantages: torch.Tensor, pad_id: int) -> Batch:
    """Right-padded (N, L) tensors from the kept token ids and loss masks; advantages are
    (N,) or (N, L') token-level with L' >= L (cut to this batch's L)."""
    length = max(len(t.token_ids) for t in trajs)
    n = len(trajs)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    attn = torch.zeros((n, length), dtype=torch.long)
    mask = torch.zeros((n, length), dtype=torch.float32)
    for i, t in enumerate(trajs):
        k = len(t.token_ids)
        ids[i, :k] = torch.tensor(t.token_ids)
        attn[i, :k] = 1
        mask[i, :k] = torch.tensor(t.loss_mask, dtype=torch.float32)
    if advantages.dim() == 2:  # token-level (process rewards), padded to the whole batch's length
        advantages = advantages[:, :length]
    return Batch(ids, attn, mask, advantages, trajectories=trajs)
