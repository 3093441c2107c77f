"""Run the quickstart's stages as a dependency graph, a few at a time.

A tiny model keeps two CPU cores only half busy with one process (an SFT step is
0.26 s on one thread and 0.22 s on two), while grpo, the judge's training, the evals
and the other variants do not depend on one another. So the scheduler starts up to
``jobs`` ready stages at once, each with ``threads`` torch threads, in plan order (the
judge's path comes first: it is the longest). A stage marked ``alone`` (SFT and the
judge's training, which everything after them waits for) waits for the running ones,
then gets all ``jobs * threads`` threads to itself.
A failed stage lets the running ones finish, then raises with its log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from reagent.quickstart.launch import Stage, StageRun, stage_done, start_stage


def run_plan(root: Path, plan: list[tuple[int, Stage]], jobs: int, launcher: str, threads: int,
             on_done: Callable[[int, Stage, dict], None]) -> dict[int, list[dict]]:
    """Run every stage of ``plan`` (seed, stage) once its ``needs`` are done; skip finished ones."""
    done: dict[tuple[int, str], dict] = {}
    for seed, stage in plan:
        marker = stage_done(root, seed, stage)
        if marker is not None:
            done[(seed, stage.name)] = {**marker, "skipped": True}
            on_done(seed, stage, done[(seed, stage.name)])
    waiting = [(seed, st) for seed, st in plan if (seed, st.name) not in done]
    running: list[tuple[int, Stage, StageRun]] = []
    failure: RuntimeError | None = None
    while waiting or running:
        while failure is None and len(running) < jobs and not any(st.alone for _, st, _ in running):
            ready = next(((seed, st) for seed, st in waiting
                          if all((seed, need) in done for need in st.needs)), None)
            if ready is None or (ready[1].alone and running):
                break
            waiting.remove(ready)
            n = threads * jobs if ready[1].alone else threads
            running.append((*ready, start_stage(root, ready[0], ready[1], launcher, n)))
        if not running:
            if failure is None and waiting:
                names = ", ".join(f"seed{seed}/{st.name}" for seed, st in waiting)
                raise RuntimeError(f"stages whose needs can never be met: {names}")
            break
        finished = [r for r in running if r[2].poll() is not None]
        if not finished:
            time.sleep(0.05)
            continue
        for seed, stage, run in finished:
            running.remove((seed, stage, run))
            try:
                done[(seed, stage.name)] = run.finish()
                on_done(seed, stage, done[(seed, stage.name)])
            except RuntimeError as e:
                failure = failure or e
    if failure is not None:
        raise failure
    by_seed: dict[int, list[dict]] = {}
    for seed, stage in plan:
        by_seed.setdefault(seed, []).append(done[(seed, stage.name)])
    return by_seed
