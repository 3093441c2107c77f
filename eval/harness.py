"""Running a benchmark: the attempts (plain, Reagent-C, Best-of-N, beam search), answer
checking, and the per-attempt record.

Used by ``reagent eval`` (:mod:`eval.cli_eval`). Which environment, tasks and corpus a
benchmark gets is :func:`reagent.tasksets.setup_benchmark`'s (the core, so ``reagent
train`` and ``reagent rollout --benchmark`` load the same tasks without importing
``eval``); it and :class:`~reagent.tasksets.BenchmarkSetup` are re-exported here.

Sampling streams: attempt ``a`` (and Best-of-N candidate ``i``) runs in its own agent
loop seeded ``seed + 1009 * a + i``, and one backend call never holds two samples of the
same question. OpenAI-compatible servers take one seed per request, so two identical
prompts with one seed in one batch would come back identical; here they cannot.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from eval.best_of_n import SCORE_KEY, Attempt, best_of_n
from reagent.process import process_stats
from reagent.agent import AgentConfig, AgentLoop, EpisodeSpec
from reagent.critique import judge_critiques, revise_decision, revision_specs
from reagent.envs.base import Environment, initial_messages
from reagent.records import Task, Trajectory
from reagent.tasksets import TOY, BenchmarkSetup, setup_benchmark

__all__ = ["Attempt", "BenchmarkSetup", "run_attempts", "setup_benchmark"]

VERDICTS = ("correct", "incorrect", "could_not_judge")


# ---------------------------------------------------------------- attempts


def stream_loop(
    backend: Any,
    env: Environment,
    config: AgentConfig,
    attempt: int,
    candidate: int = 0,
    policy_name: str = "",
) -> AgentLoop:
    """The agent loop of one sampling stream (see the module docstring)."""
    seeded = dataclasses.replace(config, seed=config.seed + 1009 * attempt + candidate)
    return AgentLoop(backend, env, seeded, policy_name=policy_name)


def attempt_specs(
    env: Environment, tasks: list[Task], attempt: int, suffix: str = ""
) -> list[EpisodeSpec]:
    """Attempt ``attempt`` of each task, with the id ``{task_id}#{attempt}{suffix}``."""
    return [
        EpisodeSpec(task=t, messages=initial_messages(env, t), id=f"{t.id}#{attempt}{suffix}")
        for t in tasks
    ]


def run_attempts(
    backend: Any,
    setup: BenchmarkSetup,
    config: AgentConfig,
    tasks: list[Task],
    attempt: int,
    *,
    judge: Any = None,
    critique: bool = False,
    best_of: int = 1,
    policy_name: str = "",
    scorer: Any = None,
    beam: int = 0,
    expand: int = 1,
    revise_below: float | None = None,
) -> list[Attempt]:
    """Attempt ``attempt`` of each of ``tasks``: plain, Reagent-C, Best-of-N or step-level
    beam search (``beam`` = width, ``expand`` = K), ranked by ``scorer`` (a
    :mod:`reagent.scorers` scorer; Best-of-N's default: the judge's score).

    Reagent-C revises the first attempts :func:`reagent.critique.revise_decision` picks
    (never one whose judgment failed; with ``revise_below``, only those scored below it
    with a non-empty critique); the others keep their first attempt as the final one."""
    env = setup.env
    if beam:
        from eval.beam_search import beam_search

        loop = stream_loop(backend, env, config, attempt, 0, policy_name)
        return beam_search(loop, scorer, attempt_specs(env, tasks, attempt), beam, expand)
    if best_of > 1:
        from reagent.scorers import JudgeScorer

        return best_of_n(
            lambda i: stream_loop(backend, env, config, attempt, i, policy_name),
            scorer if scorer is not None else JudgeScorer(judge),
            attempt_specs(env, tasks, attempt),
            best_of,
        )
    loop = stream_loop(backend, env, config, attempt, 0, policy_name)
    firsts = loop.run(attempt_specs(env, tasks, attempt))
    if not critique:
        return [Attempt(final=t) for t in firsts]
    critiques = judge_critiques(judge, firsts)
    skips = [revise_decision(t.judge, revise_below) for t in firsts]
    todo = [i for i, s in enumerate(skips) if s is None]
    revised = loop.run(revision_specs([firsts[i] for i in todo], [critiques[i] for i in todo],
                                      {t.id: t for t in tasks}))
    finals = dict(zip(todo, revised))
    return [Attempt(final=finals.get(i, f), initial=f, revise_skipped=skips[i])
            for i, f in enumerate(firsts)]


# ---------------------------------------------------------------- checking and records


def verdict_of(score: float | None) -> str:
    if score is None:
        return "could_not_judge"
    return "correct" if score >= 1.0 else "incorrect"


def check_answers(
    setup: BenchmarkSetup, trajs: list[Trajectory], answer_checker: Any = None
) -> list[float | None]:
    """Each final answer's score under the benchmark's checker; no answer scores 0.0.

    ``toy`` uses the environment's own outcome; the rest go through
    :func:`eval.metrics.score_predictions` (math-verify, EM over aliases, the GAIA
    normaliser then the LLM judge, or the LLM judge alone). None: could not judge.
    """
    if setup.checker == TOY:
        return [t.outcome if t.final_answer is not None else 0.0 for t in trajs]
    from eval.metrics import score_predictions

    scores: list[float | None] = [0.0] * len(trajs)
    answered = [i for i, t in enumerate(trajs) if t.final_answer is not None]
    if answered:
        tasks = {t.id: t for t in setup.tasks}
        got = score_predictions(
            setup.checker,
            [trajs[i].final_answer for i in answered],
            [tasks[trajs[i].task_id].answer for i in answered],
            [tasks[trajs[i].task_id].question for i in answered],
            judge=answer_checker,
        )
        for i, s in zip(answered, got):
            scores[i] = s
    return scores


WITHHELD = "[withheld: this benchmark's text must not be written to disk]"


def slim(traj: Trajectory, withhold: str | None = None) -> dict:
    """A trajectory for an eval record: messages and verdicts, without token ids and masks.

    ``withhold`` (the question of a ``do_not_publish`` task, i.e. xbench) is replaced in
    every message, so the decrypted benchmark text never reaches the records file.
    """
    d = traj.to_dict()
    for key in ("token_ids", "loss_mask"):
        d.pop(key, None)
    if withhold:
        for m in d["messages"]:
            if isinstance(m.get("content"), str):
                m["content"] = m["content"].replace(withhold, WITHHELD)
    return d


def attempt_record(
    setup: BenchmarkSetup,
    task: Task,
    attempt: int,
    a: Attempt,
    score: float | None,
    initial_score: float | None = None,
    made_by: dict | None = None,
) -> dict:
    """The ``records.jsonl`` line of one attempt; ``id`` is ``{task_id}#{attempt}`` (resume key).

    Tasks marked ``do_not_publish`` (xbench) keep their question and reference out of it.
    """
    secret = task.question if task.meta.get("do_not_publish") else None
    rec: dict[str, Any] = {
        "id": f"{task.id}#{attempt}",
        "task_id": task.id,
        "benchmark": setup.name,
        "attempt": attempt,
        "question": WITHHELD if secret else task.question,
        "reference": WITHHELD if secret else task.answer,
        "answer": a.final.final_answer,
        "verdict": verdict_of(score),
        "score": score,
        "checker": setup.checker,
        "stop_reason": a.final.stop_reason,
        "turns": a.final.extra.get("turns"),
        "process": process_stats(task, a.final),
        "trajectory": slim(a.final, secret),
    }
    if a.initial is not None:
        judge = a.initial.judge
        rec["method"] = "critique"
        rec["initial"] = {
            "answer": a.initial.final_answer,
            "score": initial_score,
            "verdict": verdict_of(initial_score),
            "critique": (judge.critique if judge else "") or "",
            "judge_status": judge.status if judge else None,
            "judge_score": judge.score if judge else None,
            "revised": a.revise_skipped is None,
            "revise_skipped": a.revise_skipped,
            "process": process_stats(task, a.initial),
        }
        if a.revise_skipped is None:  # else the final attempt is this one, recorded once above
            rec["initial"]["trajectory"] = slim(a.initial, secret)
    elif a.candidates:
        rec["method"] = "best_of_n"
        rec["picked"] = a.picked
        rec["candidates"] = [
            {
                "id": c.id,
                "answer": c.final_answer,
                "env_outcome": c.outcome,
                "judge_score": c.judge.score if c.judge else None,
                "judge_status": c.judge.status if c.judge else None,
                "scorer_score": c.rewards.get(SCORE_KEY),
            }
            for c in a.candidates
        ]
    else:
        rec["method"] = "plain"
    if made_by:
        rec["made_by"] = made_by
    return rec
