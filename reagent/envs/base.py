"""What an environment is: tasks, tools per task, a system prompt and an outcome reward.

The agent loop only talks to this interface, so data collection, judge data, GRPO
rollouts and benchmarks all run through the same code whatever the task family.
"""

from __future__ import annotations

from typing import Protocol

from reagent.records import Message, Task, Trajectory
from reagent.rewards.math import extract_boxed
from reagent.tools.base import Tool

# One boxed-answer extractor for the whole project (last \boxed{}, reasoning blocks skipped).
last_boxed = extract_boxed


class Environment(Protocol):
    """A task family. ``tool_schemas_in_prompt`` False means the system prompt already
    describes the tools compactly (tiny models cannot afford JSON schemas in every prompt)."""

    name: str
    tool_schemas_in_prompt: bool

    def tasks(self, split: str, limit: int | None = None) -> list[Task]: ...

    def system_prompt(self, task: Task) -> str:
        """The system turn's text; "" for no system turn at all."""
        ...

    def tools_for(self, task: Task) -> dict[str, Tool]: ...

    def extract_answer(self, text: str) -> str | None: ...

    def outcome(self, task: Task, answer: str | None, trajectory: Trajectory | None = None) -> float | None:
        """Reward in [0, 1]; None when the answer could not be checked (never a silent 0)."""
        ...


def initial_messages(env: Environment, task: Task) -> list[Message]:
    """The system turn (omitted when the environment has none), then the question."""
    system = env.system_prompt(task)
    head = [Message(role="system", content=system)] if system else []
    return head + [Message(role="user", content=task.question)]
