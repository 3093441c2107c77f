"""How a judge's critique is put in front of the policy for a revised attempt.

Reagent-U (training) and Reagent-C (inference) both condition the second attempt on
the question, the first attempt and the critique. The revision context is the
first episode's messages verbatim followed by one user message built from
``prompts/critique_injection.txt`` — the only place that wording lives, so the
context a policy is trained on and the one it is evaluated with are the same. Only
the revised attempt's own generated tokens are trained on; everything in this
context is prompt.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from reagent.records import Message, Trajectory

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
