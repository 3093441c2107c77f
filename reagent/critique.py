"""How a judge's critique is put in front of the policy for a revised attempt.

Reagent-U (training) and Reagent-C (inference) both condition the second attempt on
the question, the first attempt and the critique. The revision context is the
first episode's messages verbatim followed by one user message built from
``prompts/critique_injection.txt`` — the only place that wording lives, so the
context a policy is trained on and the one it is evaluated with are the same. Only
the revised attempt's own generated tokens are trained on; everything in this
context is prompt.

Everything else about a revision lives here too, used by the GRPO trainer
(Reagent-U), ``reagent rollout --critique`` and evaluation (Reagent-C): the critique a
judgment gives (empty when the judge gave no usable score), the revised episode's
spec and its ``/rev`` id suffix, and the view of a revised attempt the judge scores
(the question and the new attempt, without the first attempt and critique).

Whether to revise at all (Reagent-C with a threshold, :func:`revise_decision`) lives here
as well: a judgment that failed never yields a revision (the trainer does the same), and
with a threshold only an attempt the judge scored below it, with a critique that names
something ("No flaws found."-style critiques count as empty), is revised; the rest keep
their first attempt. Without this a small policy revising on "No flaws found." turned
most correct first answers wrong (issue 19).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from typing import Any

from reagent.agent import EpisodeSpec
from reagent.records import Judgment, Message, Task, Trajectory

REVISED_SUFFIX = "/rev"
INJECTION_FILE = Path(__file__).parent / "prompts" / "critique_injection.txt"


@lru_cache(maxsize=1)
def injection_template() -> str:
    return INJECTION_FILE.read_text(encoding="utf-8").strip()


def revision_messages(first: Trajectory, critique: str) -> list[Message]:
    """The prompt of a revised attempt: first attempt + critique as a new user turn.

    The turn ends by restating the question: after a long first attempt the question
    is far back, and a small policy copies names and numbers from what is near."""
    messages = [Message.from_dict(m.to_dict()) for m in first.messages]
    question = next((m.content for m in messages if m.role == "user" and m.content), "")
    note = injection_template().format(critique=critique.strip() or "- No specific flaws were named.",
                                       question=question.strip())
    return messages + [Message(role="user", content=note)]


def critique_of(judgment: Judgment | None) -> str:
    """The critique to revise with; ``""`` when the judge gave no usable score (such an
    attempt is not revised: :func:`revise_decision`; the failure stays in the judgment)."""
    if judgment is None or judgment.score is None:
        return ""
    return judgment.critique or ""


# Critiques that name nothing to fix: a revision on them only risks a correct answer.
_NOTHING_TO_FIX = re.compile(
    r"^[-*\s]*(?:no|zero)(?:\s+\w+){0,2}?\s+(?:flaws?|issues?|problems?|errors?|mistakes?)"
    r"(?:\s+(?:were|was|are|is|have\s+been|has\s+been))?"
    r"(?:\s+(?:found|named|detected|identified|noted|seen|spotted))?\s*[.!]?\s*$"
    r"|^[-*\s]*(?:none|n/?a|nothing(?:\s+to\s+(?:fix|report|improve))?|no\s+changes?\s+needed"
    r"|looks\s+(?:good|correct))\s*[.!]?\s*$",
    re.IGNORECASE)

# Why an attempt was not revised (keys of the skip counts in eval results and rollout logs).
SKIP_JUDGE_FAILED = "judge_failed"
SKIP_ABOVE_THRESHOLD = "above_threshold"
SKIP_EMPTY_CRITIQUE = "empty_critique"


def is_empty_critique(critique: str | None) -> bool:
    """True for a critique that names nothing to fix: blank, or only lines such as
    "No flaws found.", "- No issues found", "None."."""
    lines = [ln.strip() for ln in (critique or "").splitlines() if ln.strip()]
    return all(_NOTHING_TO_FIX.match(ln) for ln in lines)


def revise_decision(judgment: Judgment | None, threshold: float | None) -> str | None:
    """``None`` when the attempt should be revised, else the skip reason.

    A failed judgment (no score) is never revised. ``threshold=None`` revises every
    scored attempt (the paper's Reagent-C); a number revises only an attempt scored below
    it whose critique is not empty (:func:`is_empty_critique`).
    """
    if judgment is None or judgment.score is None:
        return SKIP_JUDGE_FAILED
    if threshold is None:
        return None
    if judgment.score >= threshold:
        return SKIP_ABOVE_THRESHOLD
    if is_empty_critique(judgment.critique):
        return SKIP_EMPTY_CRITIQUE
    return None


def judge_critiques(judge: Any, trajs: list[Trajectory]) -> list[str]:
    """Judge each first attempt (sets ``traj.judge``); return the critiques to revise with."""
    judgments = judge.score(trajs)
    for t, j in zip(trajs, judgments):
        t.judge = j
    return [critique_of(j) for j in judgments]


def revision_spec(first: Trajectory, critique: str, task: Task, extra: dict | None = None) -> EpisodeSpec:
    """The revised episode of ``first``: id ``{first.id}/rev``, stage ``revised``."""
    return EpisodeSpec(task=task, messages=revision_messages(first, critique), id=first.id + REVISED_SUFFIX,
                       stage="revised", parent_id=first.id, extra={"critique": critique, **(extra or {})})


def revision_specs(firsts: list[Trajectory], critiques: list[str],
                   tasks_by_id: dict[str, Task]) -> list[EpisodeSpec]:
    """:func:`revision_spec` of each first attempt with its critique."""
    return [revision_spec(t, c, tasks_by_id[t.task_id]) for t, c in zip(firsts, critiques)]


def attempt_view(revised: Trajectory, n_context: int) -> Trajectory:
    """A revised episode as the judge scores it: the question (system/user head), then
    only the new attempt (messages after the ``n_context`` of its revision prompt)."""
    head = [m for m in revised.messages[:2] if m.role in ("system", "user")]
    return Trajectory(id=revised.id, task_id=revised.task_id, messages=head + revised.messages[n_context:])
