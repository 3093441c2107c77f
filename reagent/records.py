"""The project's data contracts as dataclasses (see DESIGN.md, "Data contracts").

Every record converts to and from a plain JSON dict. Fields a record does not know
are kept in ``extra`` and written back unchanged, so a file that passes through the
project never loses what another tool put there. ``from_dict`` checks types and
raises :class:`FieldError` naming the offending field; the JSONL reader adds the
file and line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="Record")

ROLES = ("system", "user", "assistant", "tool")
STAGES = ("initial", "revised")
STOP_REASONS = ("answered", "max_turns", "max_tokens", "error", "")
STEP_LABEL_METHODS = ("td_gae", "mc", "human", "inverse")  # human: annotator ratings (PRM800K); inverse: InversePRM


class FieldError(ValueError):
    """A record field is missing or has the wrong type; ``field`` is a dotted path."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"field '{field}': {reason}")
        self.field = field
        self.reason = reason


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _check(d: dict, name: str, types: tuple[type, ...], required: bool, prefix: str) -> Any:
    if name not in d:
        if required:
            raise FieldError(prefix + name, "required field is missing")
        return None
    value = d[name]
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise FieldError(prefix + name, "number too large for a float") from None
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or Infinity; Python's reader accepts them (and 1e400 -> inf).
        raise FieldError(prefix + name, f"{value} is not a finite number")
    if isinstance(value, bool) and bool not in types:
        raise FieldError(prefix + name, f"expected {_type_name(types)}, got bool")
    if not isinstance(value, types):
        raise FieldError(prefix + name, f"expected {_type_name(types)}, got {type(value).__name__}")
    return value


@dataclass
class Record:
    """Base for records: typed known fields plus ``extra`` for everything else."""

    # name -> (accepted JSON types, required); subclasses fill this in.
    SCHEMA: ClassVar[dict[str, tuple[tuple[type, ...], bool]]] = {}

    @classmethod
    def from_dict(cls: type[T], d: Any, prefix: str = "") -> T:
        if not isinstance(d, dict):
            raise FieldError(prefix.rstrip(".") or "<record>", f"expected object, got {type(d).__name__}")
        kwargs = {}
        for name, (types, required) in cls.SCHEMA.items():
            value = _check(d, name, types, required, prefix)
            if name in d:
                kwargs[name] = cls._convert(name, value, prefix)
        extra = {k: v for k, v in d.items() if k not in cls.SCHEMA}
        record = cls(**kwargs, extra=extra)
        record.validate(prefix)
        return record

    @classmethod
    def _convert(cls, name: str, value: Any, prefix: str) -> Any:
        """Hook for nested records; identity by default."""
        return value

    def validate(self, prefix: str = "") -> None:
        """Cross-field checks beyond types; raise FieldError."""

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and not self.SCHEMA.get(f.name, ((), False))[1]:
                continue
            out[f.name] = _plain(value)
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class ToolCall(Record):
    """One tool call in OpenAI form. ``arguments`` is the JSON *string* as written.

    A call whose JSON could not be parsed keeps ``error`` (the parse error) and the
    raw text, so the agent can be told what was wrong instead of the loop crashing.
    """

    id: str = ""
    name: str | None = None
    arguments: str = "{}"
    error: str | None = None
    extra: dict = field(default_factory=dict)

    SCHEMA: ClassVar = {}

    @property
    def parsed_arguments(self) -> dict:
        """Arguments as a dict; ``{}`` when the call is malformed."""
        if self.error:
            return {}
        try:
            value = json.loads(self.arguments)
        except (ValueError, RecursionError):  # malformed, a 4,300-digit int, too deep
            return {}
        return value if isinstance(value, dict) else {}

    @classmethod
    def from_dict(cls, d: Any, prefix: str = "") -> ToolCall:
        if not isinstance(d, dict):
            raise FieldError(prefix.rstrip(".") or "tool_call", "expected object")
        fn = d.get("function")
        if not isinstance(fn, dict):
            raise FieldError(prefix + "function", "required object with 'name' and 'arguments'")
        name = _check(fn, "name", (str, type(None)), False, prefix + "function.")
        args = fn.get("arguments", "{}")
        if isinstance(args, dict):
            args = json.dumps(args, ensure_ascii=False)
        elif not isinstance(args, str):
            raise FieldError(prefix + "function.arguments", "expected JSON string or object")
        error = _check(d, "error", (str, type(None)), False, prefix)
        call_id = _check(d, "id", (str,), False, prefix) or ""
        known = {"id", "type", "function", "error"}
        extra = {k: v for k, v in d.items() if k not in known}
        fn_extra = {k: v for k, v in fn.items() if k not in ("name", "arguments")}
        if fn_extra:
            extra["_function_extra"] = fn_extra
        return cls(id=call_id, name=name, arguments=args, error=error, extra=extra)

    def to_dict(self) -> dict:
        extra = dict(self.extra)
        fn = {"name": self.name, "arguments": self.arguments, **extra.pop("_function_extra", {})}
        out = {"id": self.id, "type": "function", "function": fn}
        if self.error is not None:
            out["error"] = self.error
        out.update(extra)
        return out


@dataclass
class Message(Record):
    """An OpenAI chat message: system, user, assistant (maybe with tool calls) or tool."""

    role: str = "user"
    content: str | None = ""
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    extra: dict = field(default_factory=dict)

    SCHEMA: ClassVar = {
        "role": ((str,), True),
        "content": ((str, type(None)), False),
        "tool_calls": ((list, type(None)), False),
        "tool_call_id": ((str, type(None)), False),
        "name": ((str, type(None)), False),
    }

    @classmethod
    def _convert(cls, name, value, prefix):
        if name == "tool_calls" and value is not None:
            return [ToolCall.from_dict(c, f"{prefix}tool_calls[{i}].") for i, c in enumerate(value)]
        return value

    def validate(self, prefix: str = "") -> None:
        if self.role not in ROLES:
            raise FieldError(prefix + "role", f"'{self.role}' is not one of {', '.join(ROLES)}")
        if self.tool_calls and self.role != "assistant":
            raise FieldError(prefix + "tool_calls", f"only assistant messages carry tool calls, not {self.role}")

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.setdefault("content", self.content)
        return out


@dataclass
class Task(Record):
    """A question the agent answers, with its reference answer and the tools it may use."""

    id: str = ""
    question: str = ""
    answer: Any = None
    source: str = ""
    tools: list = field(default_factory=list)
    files: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    SCHEMA: ClassVar = {
        "id": ((str,), True),
        "question": ((str,), True),
        "answer": ((str, int, float, list, dict, type(None)), False),
        "source": ((str,), False),
        "tools": ((list,), False),
        "files": ((list,), False),
        "meta": ((dict,), False),
    }

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.setdefault("answer", None)
        return out


@dataclass
class Judgment(Record):
    """A judge's verdict on a trajectory. ``score`` is None unless ``status`` allows one."""

    analysis: str = ""
    critique: str = ""
    score: float | None = None
    status: str = "ok"
    model: str = ""
    extra: dict = field(default_factory=dict)

    SCHEMA: ClassVar = {
        "analysis": ((str,), False),
        "critique": ((str,), False),
        "score": ((float, type(None)), False),
        "status": ((str,), False),
        "model": ((str,), False),
    }

    def validate(self, prefix: str = "") -> None:
        if self.score is not None and self.score != self.score:
            raise FieldError(prefix + "score", "is NaN")


@dataclass
class Trajectory(Record):
    """One agent episode on one task. Token ids and loss mask, when kept, sit beside the messages."""

    id: str = field(default_factory=new_id)
    task_id: str = ""
    messages: list[Message] = field(default_factory=list)
    stage: str = "initial"
    parent_id: str | None = None
    final_answer: str | None = None
    outcome: float | None = None
    judge: Judgment | None = None
    rewards: dict = field(default_factory=dict)
    policy: str = ""
    stop_reason: str = ""
    truncated: bool = False
    token_ids: list[int] | None = None
    loss_mask: list[int] | None = None
    extra: dict = field(default_factory=dict)

    SCHEMA: ClassVar = {
        "id": ((str,), True),
        "task_id": ((str,), True),
        "messages": ((list,), True),
        "stage": ((str,), False),
        "parent_id": ((str, type(None)), False),
        "final_answer": ((str, type(None)), False),
        "outcome": ((float, type(None)), False),
        "judge": ((dict, type(None)), False),
        "rewards": ((dict,), False),
        "policy": ((str,), False),
        "stop_reason": ((str,), False),
        "truncated": ((bool,), False),
        "token_ids": ((list, type(None)), False),
        "loss_mask": ((list, type(None)), False),
    }

    @classmethod
    def _convert(cls, name, value, prefix):
        if name == "messages":
            return [Message.from_dict(m, f"{prefix}messages[{i}].") for i, m in enumerate(value)]
        if name == "judge" and value is not None:
            return Judgment.from_dict(value, prefix + "judge.")
        return value

    def validate(self, prefix: str = "") -> None:
        if self.stage not in STAGES:
            raise FieldError(prefix + "stage", f"'{self.stage}' is not one of {', '.join(STAGES)}")
        if self.stop_reason not in STOP_REASONS:
            raise FieldError(prefix + "stop_reason", f"'{self.stop_reason}' is not one of {STOP_REASONS}")
        if self.outcome is not None and self.outcome != self.outcome:
            raise FieldError(prefix + "outcome", "is NaN")
        for name, allowed in (("token_ids", None), ("loss_mask", (0, 1))):
            values = getattr(self, name)
            bad = next((i for i, v in enumerate(values or ())
                        if not isinstance(v, int) or isinstance(v, bool) or v < 0
                        or (allowed is not None and v not in allowed)), None)
            if bad is not None:
                what = "0 or 1" if allowed else "a non-negative integer"
                raise FieldError(f"{prefix}{name}[{bad}]", f"expected {what}, got {values[bad]!r}"[:200])
        if (self.token_ids is None) != (self.loss_mask is None):
            raise FieldError(prefix + "loss_mask", "token_ids and loss_mask must be given together")
        if self.token_ids is not None and len(self.token_ids) != len(self.loss_mask):
            raise FieldError(
                prefix + "loss_mask",
                f"length {len(self.loss_mask)} differs from token_ids length {len(self.token_ids)}",
            )

    @property
    def question(self) -> str:
        """The first user message: the task as the agent saw it."""
        return next((m.content or "" for m in self.messages if m.role == "user"), "")


@dataclass
class StepLabel(Record):
    """PRM step labels for one trajectory: a Q target and an advantage per agent step."""

    trajectory_id: str = ""
    method: str = "td_gae"
    params: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)  # [{"q": float, "advantage": float}, ...]
    trajectory: dict | None = None
    extra: dict = field(default_factory=dict)

    SCHEMA: ClassVar = {
        "trajectory_id": ((str,), True),
        "method": ((str,), True),
        "params": ((dict,), False),
        "steps": ((list,), True),
        "trajectory": ((dict, type(None)), False),
    }

    def validate(self, prefix: str = "") -> None:
        if self.method not in STEP_LABEL_METHODS:
            raise FieldError(prefix + "method", f"'{self.method}' is not one of {', '.join(STEP_LABEL_METHODS)}")
        for i, step in enumerate(self.steps):
            for key in ("q", "advantage"):
                if not isinstance(step, dict) or key not in step:
                    raise FieldError(f"{prefix}steps[{i}].{key}", "required field is missing")
                if not isinstance(step[key], (int, float)) or isinstance(step[key], bool):
                    raise FieldError(f"{prefix}steps[{i}].{key}", "expected float")
                if isinstance(step[key], float) and not math.isfinite(step[key]):
                    raise FieldError(f"{prefix}steps[{i}].{key}", f"{step[key]} is not a finite number")


@dataclass
class JudgeExample(Record):
    """A judge training example: question, rendered trajectory and the teacher's verdict."""

    question: str = ""
    trajectory: Any = ""
    analysis: str = ""
    critique: str = ""
    score: float | None = None
    outcome: float | None = None
    teacher: str = ""
    extra: dict = field(default_factory=dict)

    SCHEMA: ClassVar = {
        "question": ((str,), True),
        "trajectory": ((str, list, dict), True),
        "analysis": ((str,), False),
        "critique": ((str,), False),
        "score": ((float, type(None)), True),
        "outcome": ((float, type(None)), False),
        "teacher": ((str,), False),
    }


RECORD_TYPES: dict[str, type[Record]] = {
    "task": Task,
    "trajectory": Trajectory,
    "judgment": Judgment,
    "step_label": StepLabel,
    "judge_example": JudgeExample,
    "message": Message,
}


def guess_record_type(d: dict) -> type[Record]:
    """Pick the record type a JSON object most likely is, for `reagent validate`."""
    if not isinstance(d, dict):
        return Trajectory
    if "messages" in d:
        return Trajectory
    if "trajectory" in d and "question" in d:
        return JudgeExample
    if "task_id" in d:
        return Trajectory
    if "steps" in d and "method" in d:
        return StepLabel
    if "question" in d:
        return Task
    if "role" in d:
        return Message
    return Judgment if "score" in d else Trajectory
