"""Judging overlapped with rollouts: each episode goes to the judge the moment it ends.

Without overlap a Reagent-R/U step is rollout, then judge, then (Reagent-U) revision
rollout, then judge again: the judge idles while the policy generates and the policy
idles while the judge answers. With a judge behind HTTP (its own GPUs: ``vllm serve``)
both can run at once. :class:`StreamingJudge` plugs into the agent loop's hooks:

* ``on_finish(traj)``: the agent loop calls it when an episode ends, while the rest of
  its batch still generates; the episode is sent to the judge on a worker thread at once;
* ``more(wait)``: under Reagent-U the loop asks it, before every turn, for revisions to
  add to the running batch; an initial episode's revision spec is made as soon as its
  critique arrives (``revision_for`` decides whether it is revised at all), so revisions
  start while other episodes are still generating or being judged.

A step then takes about max(rollout, judge) instead of their sum (``benchmarks/judge.py
overlap`` measures it). The judgments are the same as without overlap (each episode is
judged on its own, greedily); what changes is only *when* revisions join the batch, so a
revised episode's sampling stream depends on the turn it joined at (the initial
episodes' do not change). A local judge shares the policy's device, so the trainer runs
it after the rollout as before.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from reagent.agent import EpisodeSpec
from reagent.critique import attempt_view
from reagent.records import Judgment, Trajectory


class StreamingJudge:
    """Judges episodes as they finish on ``workers`` threads; feeds revisions back.

    ``judge`` has ``score(list[Trajectory]) -> list[Judgment]`` (thread-safe: an
    :class:`~rrm.judge.HTTPJudge`). ``n_initial`` is how many initial episodes the
    rollout starts with. ``revision_for(traj) -> EpisodeSpec | None`` (Reagent-U) is called
    with each judged initial episode (``traj.judge`` set) and returns its revision, or None.
    """

    def __init__(self, judge, n_initial: int, workers: int,
                 revision_for: Callable[[Trajectory], EpisodeSpec | None] | None = None):
        self.judge, self.revision_for = judge, revision_for
        self.pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="judge")
        self.futures: dict[str, Future] = {}
        self.n_context: dict[str, int] = {}  # revised episode id -> context messages to hide
        self.arrived: queue.Queue = queue.Queue()
        self.waiting = n_initial if revision_for is not None else 0

    def on_finish(self, traj: Trajectory) -> None:
        n = self.n_context.get(traj.id, 0)
        view = traj if n == 0 else attempt_view(traj, n)
        future = self.pool.submit(self.judge.score, [view])
        self.futures[traj.id] = future
        if self.revision_for is not None and traj.stage == "initial":
            future.add_done_callback(lambda f, t=traj: self.arrived.put((t, f)))

    def more(self, wait: bool) -> list[EpisodeSpec] | None:
        """Revisions whose critique has arrived; None once every initial episode is settled."""
        if self.waiting == 0:
            return None
        specs: list[EpisodeSpec] = []
        while self.waiting:
            try:
                traj, future = self.arrived.get(block=wait and not specs)
            except queue.Empty:
                break
            self.waiting -= 1
            traj.judge = future.result()[0]
            spec = self.revision_for(traj)
            if spec is not None:
                self.n_context[spec.id] = len(spec.messages)
                specs.append(spec)
        return specs if specs or self.waiting else None

    def judgments(self, trajs: list[Trajectory]) -> list[Judgment]:
        """Every episode's judgment, in order (waits for those still out); sets ``traj.judge``."""
        out = [self.futures[t.id].result()[0] for t in trajs]
        for t, j in zip(trajs, out):
            t.judge = j
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
