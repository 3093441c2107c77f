"""The tasks behind trajectories: from a Task file, or regenerated from toy task ids.

Annotation needs a trajectory's task for two things: its reference answer (kept so the
leakage filter can check critiques against it; never shown to the teacher) and, for the
rules teacher, the toy task's hidden ledger. A trajectory only carries its ``task_id``,
so the task comes from ``--tasks FILE`` or, for the toy environment, is rebuilt:
``ToyEnv(seed).tasks(split, n)`` is deterministic and names its tasks
``toy-{split}-{i}``, so the seed rollout used (``--env-seed``) rebuilds every task.

A wrong seed or file would silently attach the wrong ledger and answer, so every
resolved task's question is compared with the question the trajectory asked and, for a
toy task, every balance a ``lookup`` returned with the task's ledger (toy questions
repeat across tasks, so a question alone can match by chance); a mismatch is an error
that names the ids and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from reagent.envs.toy import ToyEnv
from reagent.jsonl import load_records
from reagent.records import Task, Trajectory

TOY_ID = re.compile(r"^toy-(train|heldout)-(\d+)$")


def toy_tasks(task_ids: Iterable[str], env_seed: int) -> dict[str, Task]:
    """Rebuild the toy tasks among ``task_ids`` (others are ignored)."""
    wanted: dict[str, int] = {}
    ids = set(task_ids)
    for task_id in ids:
        m = TOY_ID.match(task_id)
        if m:
            wanted[m.group(1)] = max(wanted.get(m.group(1), -1), int(m.group(2)))
    env = ToyEnv(seed=env_seed)
    return {t.id: t for split, last in wanted.items() for t in env.tasks(split, last + 1)
            if t.id in ids}


def consistent(task: Task, traj: Trajectory) -> bool:
    """Does the trajectory fit the task: same question and, for a toy task, same balances?"""
    if task.question.strip() != traj.question.strip():
        return False
    ledger = task.meta.get("ledger")
    if not isinstance(ledger, dict):
        return True
    results = {m.tool_call_id: (m.content or "").strip() for m in traj.messages if m.role == "tool"}
    for m in traj.messages:
        for tc in m.tool_calls or []:
            result = results.get(tc.id, "")
            account = tc.parsed_arguments.get("account")
            if (tc.name == "lookup" and result.lstrip("-").isdigit()
                    and ledger.get(str(account)) != int(result)):
                return False
    return True


def resolve_tasks(trajectories: list[Trajectory], tasks_file: str | None = None,
                  env_seed: int = 0) -> dict[str, Task]:
    """task id -> Task for every trajectory whose task can be found; see the module doc."""
    tasks = {t.id: t for t in load_records(tasks_file, Task)} if tasks_file else {}
    missing = {t.task_id for t in trajectories} - tasks.keys()
    tasks.update(toy_tasks(missing, env_seed))
    mismatched = [(t.id, t.task_id) for t in trajectories
                  if t.task_id in tasks and not consistent(tasks[t.task_id], t)]
    if mismatched:
        shown = ", ".join(f"{tid} (task {task})" for tid, task in mismatched[:3])
        origin = f"--tasks {tasks_file}" if tasks_file else f"--env-seed {env_seed}"
        raise ValueError(
            f"{len(mismatched)} trajectories do not match their task from {origin} (other "
            f"question, or balances other than the ledger's): {shown}; pass the --env-seed that rollout "
            "used, or the right --tasks file")
    return tasks
