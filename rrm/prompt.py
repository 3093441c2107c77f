"""The judge prompt and the chat messages built from a trajectory.

``prompts/judge_system.txt`` is the contract between teacher annotation, the SFT data
and the trained judge: all three must see the same system prompt and the same user
message, or the trained judge is asked a question it never saw in training. So the
prompt lives in exactly one file and every caller builds its messages here.

The user message is ``Question: ...`` followed by the full rendered trajectory
(:func:`reagent.judge_render.render_for_judge`), never only the final answer, and never
the reference answer.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from reagent.judge_render import render_for_judge
from reagent.records import JudgeExample, Trajectory

PROMPT_FILE = Path(__file__).parent / "prompts" / "judge_system.txt"


@lru_cache(maxsize=1)
def judge_system_prompt() -> str:
    """The judge's system prompt, read once from :data:`PROMPT_FILE`."""
    return PROMPT_FILE.read_text(encoding="utf-8").strip()


def _rendered(trajectory: Any, question: str | None, max_chars: int | None) -> str:
    """The judge's view of a trajectory given as text, messages or a record."""
    if isinstance(trajectory, str):
        # Already rendered (judge datasets store it so). Make sure the question heads it.
        if trajectory.lstrip().startswith("Question:") or not question:
            return trajectory
        return f"Question: {question}\n\nTrajectory:\n\n{trajectory}"
    if isinstance(trajectory, dict):  # a trajectory record, or any {"messages": [...]}
        trajectory = trajectory.get("messages", [])
    return render_for_judge(trajectory, question=question, max_chars=max_chars)


def judge_user_message(
    item: Trajectory | JudgeExample | dict | str | list,
    question: str | None = None,
    max_chars: int | None = 24000,
) -> str:
    """The user message for one item: ``Question: ...`` and the whole rendered trajectory.

    ``item`` is a :class:`Trajectory`, a :class:`JudgeExample` (whose ``trajectory`` is
    rendered text or messages), a list of messages, or already-rendered text.
    """
    if isinstance(item, JudgeExample):
        return _rendered(item.trajectory, question or item.question or None, max_chars)
    if isinstance(item, Trajectory):
        return render_for_judge(item, question=question, max_chars=max_chars)
    return _rendered(item, question, max_chars)


def build_judge_messages(
    item: Trajectory | JudgeExample | dict | str | list,
    question: str | None = None,
    max_chars: int | None = 24000,
) -> list[dict]:
    """System + user chat messages asking the judge to assess ``item``."""
    return [
        {"role": "system", "content": judge_system_prompt()},
        {"role": "user", "content": judge_user_message(item, question, max_chars)},
    ]


def format_judgment(analysis: str, critique: str, score: float) -> str:
    """The exact text a judge must produce; the SFT target for a teacher's verdict."""
    return (
        f"<think>\n{analysis.strip()}\n</think>\n"
        f"<critique>\n{critique.strip()}\n</critique>\n"
        f"<score>{format_score(score)}</score>"
    )


def format_score(score: float) -> str:
    """Scores are written with at most two decimals (``0.7``, ``0.65``, ``1``)."""
    text = f"{float(score):.2f}".rstrip("0").rstrip(".")
    return text or "0"


def sft_messages(example: JudgeExample, max_chars: int | None = 24000) -> list[dict]:
    """The full SFT conversation for a teacher-annotated example: prompt + judge target."""
    if example.score is None:
        raise ValueError("judge example has no teacher score; it cannot be a training target")
    return build_judge_messages(example, max_chars=max_chars) + [
        {"role": "assistant",
         "content": format_judgment(example.analysis, example.critique, example.score)}
    ]

