"""The math environment: GSM8K / MATH-500 / AIME-style problems with a Python tool.

The policy may run code in the sandboxed ``python`` tool (:mod:`reagent.tools.python_exec`)
and must give its final answer in ``\\boxed{}``. The outcome is symbolic equivalence
under math-verify (:func:`reagent.rewards.math.math_equal`), so ``\\frac{1}{2}`` and
``0.5`` both score; string matching would teach a formatting habit instead of maths.

Tasks are not generated here: a benchmark loader (:mod:`reagent.tasksets.loaders`) or a
Task JSONL file supplies them.
Tool schemas go in the prompt (``tool_schemas_in_prompt = True``): real models are
trained to read them there and cannot guess the python tool's arguments otherwise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from reagent.jsonl import load_records
from reagent.records import Task, Trajectory
from reagent.rewards.math import DEFAULT_TIMEOUT_S, extract_boxed, math_equal
from reagent.tools.base import Tool

SYSTEM_PROMPT = (
    "You are a careful mathematician. Solve the problem step by step. You can run Python "
    "code with the python tool to compute or check intermediate results; it prints only what "
    "you print. When you are done, give the final answer, simplified, as \\boxed{answer}."
)
SYSTEM_PROMPT_NO_TOOLS = (
    "You are a careful mathematician. Solve the problem step by step and give the final "
    "answer, simplified, as \\boxed{answer}."
)
TASKS_HINT = (
    "the math environment has no built-in tasks: pass --tasks FILE (Task JSONL) or "
    "--benchmark NAME (gsm8k, math500, aime24, ...)"
)


def given_tasks(
    task_list: list[Task] | None, tasks_file: str | None, hint: str, limit: int | None
) -> list[Task]:
    """The tasks an environment was given (list first, then file); ``hint`` when neither."""
    if task_list is None and not tasks_file:
        raise ValueError(hint)
    tasks = task_list if task_list is not None else load_records(tasks_file, Task)
    return tasks[:limit] if limit is not None else list(tasks)


@dataclass
class MathEnv:
    """Math problems answered in ``\\boxed{}``, with an optional sandboxed Python tool.

    ``task_list`` or ``tasks_file`` (a Task JSONL) is what :meth:`tasks` returns, whatever
    the split (splits are the caller's business).
    ``python_config`` is a :class:`reagent.tools.python_exec.PythonSandboxConfig`
    (default limits when None); ``use_python=False`` drops the tool for pure-CoT runs.
    ``check_timeout_s`` bounds each math-verify step of the outcome check.
    """

    tasks_file: str | None = None
    task_list: list[Task] | None = None
    use_python: bool = True
    python_config: object | None = None
    check_timeout_s: float = DEFAULT_TIMEOUT_S
    name: str = "math"
    tool_schemas_in_prompt: bool = True
    _tool: Tool | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def tasks(self, split: str, limit: int | None = None) -> list[Task]:
        return given_tasks(self.task_list, self.tasks_file, TASKS_HINT, limit)

    def system_prompt(self, task: Task) -> str:
        return SYSTEM_PROMPT if self.use_python else SYSTEM_PROMPT_NO_TOOLS

    def tools_for(self, task: Task) -> dict[str, Tool]:
        """One shared PythonTool: each call is its own process, so sharing is safe."""
        if not self.use_python:
            return {}
        with self._lock:
            if self._tool is None:
                from reagent.tools.python_exec import PythonTool

                self._tool = PythonTool(self.python_config)
        return {"python": self._tool}

    def extract_answer(self, text: str) -> str | None:
        return extract_boxed(text)

    def outcome(
        self, task: Task, answer: str | None, trajectory: Trajectory | None = None
    ) -> float | None:
        """1.0 when ``answer`` equals any reference form; None when the task has no answer."""
        if task.answer is None:
            return None
        if answer is None:
            return 0.0
        refs = task.answer if isinstance(task.answer, list) else [task.answer]
        return float(any(math_equal(answer, r, self.check_timeout_s) for r in refs))
