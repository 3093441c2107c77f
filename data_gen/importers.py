"""Import agent traces from other tools' formats as :class:`~reagent.records.Trajectory`.

Formats (``FORMATS``):

* ``trajectory``: the project's own JSONL (what ``reagent rollout`` writes);
* ``openai``: one object a line with ``messages`` in OpenAI chat form: ``system``/
  ``developer``, ``user``, ``assistant`` with ``tool_calls`` (or the legacy
  ``function_call``), ``tool`` with ``tool_call_id`` (or the legacy ``function`` role).
  Content given as a list of parts keeps its text parts; an image or audio part cannot
  be shown to a text judge, so such a record is skipped. Assistant text that holds Qwen
  ``<tool_call>`` tags and no ``tool_calls`` field is parsed as the agent loop parses it.
  FireAct's logs name the list ``traj`` instead of ``messages``; both are read;
* ``sharegpt``: ``{"conversations": [{"from", "value"}], "system"?, "tools"?}`` with
  Qwen ``<tool_call>`` tags in assistant turns and ``<tool_response>`` blocks in
  user/observation turns. Tool responses are paired with the calls of the assistant turn
  before them, in order; a count that does not match is an error, not a guess.

A file may be JSONL, or a ``.json`` file holding one list of records or an object of
records keyed by id (as FireAct's ``trajs/*.json``). A record that cannot be mapped is
reported as ``FILE:LINE: reason`` (``FILE[key]`` inside a JSON container) and skipped.
ReAct-style text (``Thought: ... Action: search[...]``) is not a tool-call format, so it
stays plain assistant text and the observations stay user turns.

Fields beside the conversation:

* outcome: the first of ``OUTCOME_FIELDS`` present (or ``outcome_field``): booleans map
  to 1.0/0.0, numbers must lie in [0, 1], the strings "true"/"false" are read as booleans;
  anything else skips the record (a reward on another scale is not rescaled by guess);
* reference answer: the first of ``REFERENCE_FIELDS`` present, kept in
  ``extra["reference"]`` for the leakage filter (never shown to a judge). ``answer`` is
  deliberately not on the list: in many logs it is the *agent's* answer;
* id: ``id``, else the key in a JSON object, else a hash of the source conversation, so
  importing the same file twice gives the same ids (``annotate`` resumes by id);
* task id: ``task_id``/``question_id``/``qid``, else a hash of the normalised question,
  so the by-task split keeps every copy of a question on one side.

Which source field supplied what is counted in :attr:`ImportReport.mapping` and printed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reagent.jsonl import BadJSON, iter_json_lines, non_finite_path, parse_json_line, read_records
from reagent.jsonl import SkipReport as _JsonlSkips
from reagent.records import FieldError, Message, ToolCall, Trajectory
from reagent.rewards.short_answer import normalize_answer
from reagent.toolcalls import parse_tool_calls, strip_tool_calls

FORMATS = ("trajectory", "openai", "sharegpt")
OUTCOME_FIELDS = ("outcome", "reward", "success", "is_correct", "correct")
REFERENCE_FIELDS = ("reference", "ground_truth", "gt", "gold", "golden_answers", "reference_answer")
TASK_ID_FIELDS = ("task_id", "question_id", "qid")
MESSAGES_FIELDS = ("messages", "traj")
DROPPED_RESULT = "tool results with no matching call: dropped"
MAX_REASON = 300  # characters of a skip reason kept; a reason may quote a huge value

_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "function_call": "assistant",
    "observation": "tool", "tool": "tool", "function": "tool", "ipython": "tool",
}


class MappingError(ValueError):
    """A source record cannot be mapped to a trajectory without guessing."""


@dataclass
class Skipped:
    """One record left out: where it is (``FILE:LINE`` or ``FILE[key]``) and why."""

    where: str
    reason: str

    def __post_init__(self):
        if len(self.reason) > MAX_REASON:
            self.reason = self.reason[:MAX_REASON] + f"... ({len(self.reason) - MAX_REASON} more)"

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class ImportReport:
    """What an import did: records read and kept, skips with places, and the field mapping."""

    read: int = 0
    imported: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[Skipped] = field(default_factory=list)
    mapping: Counter = field(default_factory=Counter)

    def summary(self, limit: int = 10) -> str:
        lines = [(f"read {self.read} records, imported {self.imported}, skipped "
                  f"{len(self.skipped)} that could not be mapped, dropped "
                  f"{len(self.duplicates)} duplicate ids")]
        if self.mapping:
            lines.append("field mapping (records):")
            lines += [f"  {k}: {v}" for k, v in sorted(self.mapping.items())]
        for title, items in (("skipped", self.skipped), ("duplicates", self.duplicates)):
            lines += [f"  {title}: {s}" for s in items[:limit]]
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more {title}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Reading source files


def iter_source(path: str | os.PathLike) -> Iterator[tuple[str, str | None, Any]]:
    """Yield ``(where, key, object)`` per record; ``object`` is a MappingError for bad JSON."""
    path = Path(path)
    if path.suffix == ".json":
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        try:
            data = parse_json_line(text)
        except BadJSON as e:
            if text.lstrip()[:1] in ("[", "{") and "\n" not in text.strip():
                yield str(path), None, MappingError(str(e))  # one record, broken
                return
            data = None  # a .json file that is really JSONL
        if isinstance(data, list):
            for i, obj in enumerate(data):
                yield f"{path}[{i}]", None, obj
            return
        if isinstance(data, dict):
            if any(k in data for k in (*MESSAGES_FIELDS, "conversations")):
                yield str(path), None, data
                return
            for key, obj in data.items():
                yield f"{path}[{key!r}]", str(key), obj
            return
    for lineno, text in iter_json_lines(path):
        try:
            yield f"{path}:{lineno}", None, parse_json_line(text)
        except BadJSON as e:
            yield f"{path}:{lineno}", None, MappingError(str(e))


def load_traces(path: str | os.PathLike, fmt: str = "trajectory", outcome_field: str | None = None,
                report: ImportReport | None = None) -> list[Trajectory]:
    """All trajectories in ``path`` read as format ``fmt``; skips and mapping go to ``report``."""
    if fmt not in FORMATS:
        raise ValueError(f"format '{fmt}' is not one of: {', '.join(FORMATS)}")
    if not Path(path).exists():
        raise FileNotFoundError(f"no such trace file: {path}")
    report = report if report is not None else ImportReport()
    out: list[Trajectory] = []
    first_seen: dict[str, str] = {}

    def keep(traj: Trajectory, where: str) -> None:
        if traj.id in first_seen:
            report.duplicates.append(Skipped(where, f"duplicate id {traj.id!r} (first at "
                                                    f"{first_seen[traj.id]})"))
            return
        first_seen[traj.id] = where
        out.append(traj)

    if fmt == "trajectory":
        skips = _JsonlSkips()
        for traj in read_records(path, Trajectory, skip_bad=True, report=skips):
            bad = non_finite_path(traj.to_dict())
            if bad is not None:
                report.skipped.append(Skipped(f"{path} (id {traj.id!r})"[:300],
                                              f"field {bad!r}: NaN/Infinity is not a JSON number"))
                continue
            keep(traj, str(path))
        report.read += skips.read + skips.skipped
        report.skipped += [Skipped(f"{e.path}:{e.line}", e.reason) for e in skips.errors]
    else:
        mapper = map_openai if fmt == "openai" else map_sharegpt
        for where, key, obj in iter_source(path):
            report.read += 1
            try:
                if isinstance(obj, MappingError):
                    raise obj
                bad = non_finite_path(obj)
                if bad is not None:
                    raise MappingError(f"field {bad!r}: NaN/Infinity is not a JSON number")
                traj, notes = mapper(obj, key, outcome_field)
            except MappingError as e:
                report.skipped.append(Skipped(where, str(e)))
                continue
            traj.extra["source"] = {"format": fmt, "where": where}
            report.mapping.update(notes)
            keep(traj, where)
    report.imported += len(out)
    return out


# ---------------------------------------------------------------------------------------
# Fields beside the conversation


def _outcome(obj: dict, outcome_field: str | None) -> tuple[float | None, str]:
    names = (outcome_field,) if outcome_field else OUTCOME_FIELDS
    name = next((n for n in names if n in obj), None)
    if name is None:
        return None, "outcome: no field (left empty)"
    value = obj[name]
    if value is None:
        return None, f"outcome <- {name!r} (null)"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    if isinstance(value, bool):
        return float(value), f"outcome <- {name!r} (bool: true=1.0, false=0.0)"
    if isinstance(value, (int, float)) and 0.0 <= value <= 1.0 and math.isfinite(value):
        return float(value), f"outcome <- {name!r} (number in [0, 1])"
    raise MappingError(f"field {name!r}: cannot read {value!r} as an outcome (a boolean or a "
                       "number in [0, 1]); choose another field with --outcome-field")


def _reference(obj: dict) -> tuple[Any, str | None]:
    for name in REFERENCE_FIELDS:
        value = obj.get(name)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value), f"reference <- {name!r}"
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return list(value), f"reference <- {name!r} (aliases)"
    return None, None


def _hash(obj: Any, n: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:n]


def question_task_id(question: str) -> str:
    """A task id from the question text, so copies of one question share it."""
    return "q-" + hashlib.sha1(normalize_answer(question).encode()).hexdigest()[:12]


def _finish(obj: dict, key: str | None, messages: list[Message], conversation: Any,
            consumed: set[str], outcome_field: str | None) -> tuple[Trajectory, list[str]]:
    """Ids, outcome, reference and leftover fields around mapped messages."""
    if not any(m.role == "user" for m in messages):
        raise MappingError("no user message, so the question is unknown")
    if not any(m.role == "assistant" for m in messages):
        raise MappingError("no assistant turn: nothing to judge")
    notes: list[str] = []
    outcome, note = _outcome(obj, outcome_field)
    notes.append(note)
    reference, note = _reference(obj)
    if note:
        notes.append(note)
    if isinstance(obj.get("id"), (str, int)) and not isinstance(obj.get("id"), bool):
        traj_id = str(obj["id"])
        notes.append("id <- 'id'")
    elif key is not None:
        traj_id = key
        notes.append("id <- key of the JSON object")
    else:
        traj_id = "imp-" + _hash(conversation)
        notes.append("id <- hash of the conversation")
    task_name = next((n for n in TASK_ID_FIELDS if isinstance(obj.get(n), (str, int))), None)
    if task_name:
        task_id = str(obj[task_name])
        notes.append(f"task_id <- {task_name!r}")
    else:
        task_id = question_task_id(next(m.content or "" for m in messages if m.role == "user"))
        notes.append("task_id <- hash of the question")
    used = consumed | {"id", task_name, outcome_field, *OUTCOME_FIELDS, *REFERENCE_FIELDS}
    extra: dict[str, Any] = {}
    if reference is not None:
        extra["reference"] = reference
    leftover = {k: v for k, v in obj.items() if k not in used}
    if leftover:
        extra["source_fields"] = leftover
    traj = Trajectory(id=traj_id, task_id=task_id, messages=messages, outcome=outcome,
                      policy="imported", extra=extra)
    return traj, notes


# ---------------------------------------------------------------------------------------
# OpenAI messages


def _text(content: Any, where: str) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind != "text" or not isinstance(part.get("text"), str):
                raise MappingError(f"{where}.content[{j}] is a {kind!r} part; only text parts "
                                   "can be shown to a text judge")
            texts.append(part["text"])
        return "\n".join(texts)
    raise MappingError(f"{where}.content: expected a string or a list of parts, "
                       f"got {type(content).__name__}")


def _assistant(content: str | None, calls: list[ToolCall] | None, n_before: int) -> Message:
    """An assistant message; Qwen tags in the text become tool calls, as the agent loop does.

    Parsed calls get ids ``call_{n}`` numbered through the record (``n_before`` calls came
    earlier), so importing a file twice gives identical trajectories.
    """
    if not calls and content and "<tool_call>" in content:
        calls = parse_tool_calls(content)
        content = strip_tool_calls(content)
        for j, tc in enumerate(calls):
            tc.id = f"call_{n_before + j}"
    return Message(role="assistant", content=content, tool_calls=calls or None)


def _n_calls(messages: list[Message]) -> int:
    return sum(len(m.tool_calls or []) for m in messages)


def map_openai(obj: Any, key: str | None = None,
               outcome_field: str | None = None) -> tuple[Trajectory, list[str]]:
    """One OpenAI-style record -> (trajectory, mapping notes); raises MappingError."""
    if not isinstance(obj, dict):
        raise MappingError(f"expected a JSON object, got {type(obj).__name__}")
    name = next((n for n in MESSAGES_FIELDS if isinstance(obj.get(n), list)), None)
    if name is None:
        raise MappingError("no 'messages' list")
    messages: list[Message] = []
    legacy_call: str | None = None  # id of the last legacy function_call
    unanswered: list[str] = []  # ids of the last assistant turn's calls still without a result
    dropped = 0
    for i, m in enumerate(obj[name]):
        where = f"{name}[{i}]"
        if not isinstance(m, dict):
            raise MappingError(f"{where}: expected an object")
        role = m.get("role")
        content = _text(m.get("content"), where)
        if role in ("system", "developer", "user"):
            messages.append(Message(role="user" if role == "user" else "system", content=content))
        elif role == "assistant":
            calls = None
            try:
                if m.get("tool_calls"):
                    if not isinstance(m["tool_calls"], list):
                        raise MappingError(f"{where}.tool_calls: expected a list")
                    calls = [ToolCall.from_dict(c, f"{where}.tool_calls[{j}].")
                             for j, c in enumerate(m["tool_calls"])]
                elif isinstance(m.get("function_call"), dict):
                    legacy_call = f"legacy_{i}"
                    calls = [ToolCall.from_dict({"id": legacy_call, "function": m["function_call"]},
                                                f"{where}.function_call.")]
            except FieldError as e:
                raise MappingError(str(e)) from None
            messages.append(_assistant(content, calls, _n_calls(messages)))
            unanswered = [tc.id for tc in messages[-1].tool_calls or []]
        elif role == "tool":
            call_id = m.get("tool_call_id")
            call_id = call_id if isinstance(call_id, str) else None
            if call_id in unanswered:
                unanswered.remove(call_id)
            elif call_id is None and unanswered:
                unanswered.pop(0)  # an id-less result answers the oldest open call
            else:
                dropped += 1  # a result no call asked for: nothing to pair it with
                continue
            messages.append(Message(role="tool", content=content, tool_call_id=call_id,
                                    name=m.get("name") if isinstance(m.get("name"), str) else None))
        elif role == "function":
            if legacy_call is None:
                raise MappingError(f"{where}: a 'function' result with no function_call before it")
            messages.append(Message(role="tool", content=content, tool_call_id=legacy_call,
                                    name=m.get("name") if isinstance(m.get("name"), str) else None))
            legacy_call = None
        else:
            raise MappingError(f"{where}.role: {role!r} is not a chat role "
                               "(system, developer, user, assistant, tool, function)")
    traj, notes = _finish(obj, key, messages, obj[name], {name}, outcome_field)
    notes.append(f"messages <- {name!r}")
    notes += [DROPPED_RESULT] * dropped
    return traj, notes


# ---------------------------------------------------------------------------------------
# ShareGPT conversations with Qwen tags


def _tool_results(value: str, where: str, role_from: str) -> list[str]:
    """The tool outputs in one turn: its ``<tool_response>`` blocks, or the whole text."""
    blocks = _RESPONSE.findall(value)
    if not blocks:
        if SHAREGPT_ROLES[role_from] == "tool":
            return [value.strip()]
        return []
    rest = _RESPONSE.sub("", value).strip()
    if rest:
        raise MappingError(f"{where}: a turn mixes text with <tool_response> blocks; which part "
                           "is the user's is ambiguous")
    return [b.strip() for b in blocks]


def map_sharegpt(obj: Any, key: str | None = None,
                 outcome_field: str | None = None) -> tuple[Trajectory, list[str]]:
    """One ShareGPT record -> (trajectory, mapping notes); raises MappingError."""
    if not isinstance(obj, dict):
        raise MappingError(f"expected a JSON object, got {type(obj).__name__}")
    turns = obj.get("conversations")
    if not isinstance(turns, list):
        raise MappingError("no 'conversations' list")
    messages: list[Message] = []
    if isinstance(obj.get("system"), str) and obj["system"].strip():
        messages.append(Message(role="system", content=obj["system"]))
    pending: list[ToolCall] = []  # calls of the last assistant turn still waiting for results
    for i, turn in enumerate(turns):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise MappingError(f"{where}: expected an object")
        role_from = turn.get("from", turn.get("role"))
        value = turn.get("value", turn.get("content"))
        if not isinstance(role_from, str) or role_from not in SHAREGPT_ROLES:
            raise MappingError(f"{where}.from: {role_from!r} is not one of "
                               f"{', '.join(sorted(SHAREGPT_ROLES))}")
        if not isinstance(value, str):
            raise MappingError(f"{where}.value: expected a string")
        role = SHAREGPT_ROLES[role_from]
        results = _tool_results(value, where, role_from) if role in ("user", "tool") else []
        if results:
            if len(results) > len(pending):
                raise MappingError(f"{where}: {len(results)} tool response(s) but "
                                   f"{len(pending)} unanswered tool call(s) before them")
            for text in results:
                call = pending.pop(0)
                messages.append(Message(role="tool", content=text, tool_call_id=call.id,
                                        name=call.name))
            continue
        if pending and role in ("user", "assistant"):
            raise MappingError(f"{where}: {len(pending)} tool call(s) got no <tool_response>")
        if role == "assistant":
            text = f"<tool_call>{value}</tool_call>" if role_from == "function_call" else value
            msg = _assistant(text, None, _n_calls(messages))
            if role_from == "function_call":
                msg.content = ""
            pending = list(msg.tool_calls or [])
            messages.append(msg)
        else:
            messages.append(Message(role=role, content=value))
    traj, notes = _finish(obj, key, messages, turns, {"conversations", "system", "tools"},
                          outcome_field)
    if "tools" in obj:
        traj.extra["tools"] = obj["tools"]
    notes.append("messages <- 'conversations' (Qwen tool tags parsed)")
    return traj, notes
