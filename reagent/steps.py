"""Step boundaries of a trajectory, in messages and in token ids (one place for all PRM code).

A process reward model values a trajectory step by step; labelling, training,
scoring and search must agree on what a step is and on which token carries its value.

* **Agent trajectories** (AgentPRM, Xi et al. 2025; Choudhury 2025): one step is one
  assistant turn - its text and its tool calls. The step's *state* after it is the
  conversation through that turn plus the tool results it caused. The step is valued
  at its **last token**: the turn's end-of-turn token as the chat template renders it.
* **Single-response solutions** (Math-Shepherd, PRM800K, ProcessBench, PRMBench): one
  assistant message holds all steps, split by a separator - Math-Shepherd's ``ки``
  tag, ``Step k:`` headers, or blank lines. The whole solution is rendered once; each
  step is valued at the last token of its own text (the separator is not part of it).

A trajectory is given as messages plus, for the second kind, the step texts
(``step_texts``): ``"".join`` of the texts with ``sep`` between them must be the last
assistant message's content, so the rendering the model sees is the plain solution.

:func:`step_token_positions` renders with the model's own chat template through
:func:`reagent.tokenization.trajectory_segments` and returns the ids and one token
index per step, ready for a value head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reagent.records import Message
from reagent.tokenization import trajectory_segments

KI_TAG = "ки"  # Math-Shepherd's step tag (Cyrillic "ki"): "step one ки\nstep two ки"
SEPARATORS = ("auto", "ki", "step", "blank_line", "newline")
_STEP_HEADER = re.compile(r"(?im)^\s*step\s*\d+\s*[:.]")


@dataclass
class AgentStep:
    """One agent step: the assistant turn ``turn`` and the messages after it up to the next turn.

    ``state_end`` is the index one past the step's last message (its tool results
    included): ``messages[:state_end]`` is the state a continuation starts from.
    """

    index: int
    turn: int
    state_end: int
    text: str
    tool_calls: int


def _msg(m: Message | dict, i: int) -> Message:
    return m if isinstance(m, Message) else Message.from_dict(m, f"messages[{i}].")


def agent_steps(messages: list[Message | dict]) -> list[AgentStep]:
    """The agent steps of a conversation: one per assistant turn, in order."""
    msgs = [_msg(m, i) for i, m in enumerate(messages)]
    turns = [i for i, m in enumerate(msgs) if m.role == "assistant"]
    steps = []
    for k, turn in enumerate(turns):
        end = turns[k + 1] if k + 1 < len(turns) else len(msgs)
        # Tool results belong to the step that called them; a later user message does not.
        state_end = turn + 1
        while state_end < end and msgs[state_end].role == "tool":
            state_end += 1
        steps.append(AgentStep(index=k, turn=turn, state_end=state_end, text=msgs[turn].content or "",
                               tool_calls=len(msgs[turn].tool_calls or [])))
    return steps


def split_solution(text: str, separator: str = "auto") -> list[str]:
    """Split a single-response solution into step texts (stripped, empty ones dropped).

    ``ki``: Math-Shepherd tags, each step *ends* with ``ки``; ``step``: lines starting
    ``Step k:`` open a step; ``blank_line``: paragraphs; ``newline``: lines. ``auto``
    picks the first of ki, step, blank_line that occurs, else newline.
    """
    if separator not in SEPARATORS:
        raise ValueError(f"separator={separator!r}: use one of {', '.join(SEPARATORS)}")
    if separator == "auto":
        separator = ("ki" if KI_TAG in text else "step" if _STEP_HEADER.search(text)
                     else "blank_line" if re.search(r"\n\s*\n", text) else "newline")
    if separator == "ki":
        parts = text.split(KI_TAG)
    elif separator == "step":
        starts = [m.start() for m in _STEP_HEADER.finditer(text)]
        bounds = ([0] if starts and starts[0] > 0 else []) + starts + [len(text)]
        parts = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    elif separator == "blank_line":
        parts = re.split(r"\n\s*\n", text)
    else:
        parts = text.split("\n")
    return [p.strip() for p in parts if p.strip()]


def join_steps(steps: list[str], sep: str = "\n\n") -> str:
    """The solution text a model is shown for ``steps`` (the inverse of a split)."""
    return sep.join(steps)


def _step_char_ends(content: str, step_texts: list[str], sep: str) -> list[int]:
    if join_steps(step_texts, sep) != content:
        raise ValueError("step_texts joined with sep do not reproduce the last assistant message; "
                         "build the message with reagent.steps.join_steps(step_texts, sep)")
    ends, at = [], 0
    for k, text in enumerate(step_texts):
        at += len(text)
        ends.append(at)
        at += len(sep) if k + 1 < len(step_texts) else 0
    return ends


def step_positions_from_mask(loss_mask: list[int]) -> list[int]:
    """Step positions in ids the agent loop kept (token-in/token-out): the last token of each
    run of policy tokens (mask 1), i.e. each assistant turn's end-of-turn token."""
    return [i for i, m in enumerate(loss_mask) if m and (i + 1 == len(loss_mask) or not loss_mask[i + 1])]


def step_token_positions(tokenizer, messages: list[Message | dict], step_texts: list[str] | None = None,
                         sep: str = "\n\n", tools: list | None = None,
                         template_kwargs: dict | None = None) -> tuple[list[int], list[int]]:
    """``(input_ids, positions)``: the rendered trajectory and one token index per step.

    Without ``step_texts`` a step is an assistant turn, valued at the turn's last
    token (its end-of-turn token). With ``step_texts`` the last assistant message is
    one solution whose steps are valued at the last token of each step's text; a
    step that ends inside a token is valued at that token. Ids are built segment by
    segment exactly as :func:`reagent.tokenization.tokenize_trajectory` builds them.
    """
    segments = trajectory_segments(tokenizer, messages, tools, template_kwargs)
    ids: list[int] = []
    positions: list[int] = []
    trainable = [k for k, s in enumerate(segments) if s.trainable]
    if not trainable:
        raise ValueError("no assistant turn: a trajectory needs at least one step")
    char_ends: list[int] | None = None
    if step_texts is not None:
        last = segments[trainable[-1]]
        content = _msg(messages[last.turn], last.turn).content or ""
        start = last.text.find(content)  # a template may put text (e.g. an empty <think>) first
        if start < 0:
            raise ValueError(f"the chat template does not render turn {last.turn}'s content verbatim")
        char_ends = [start + e for e in _step_char_ends(content, step_texts, sep)]
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("step positions inside one message need a fast tokenizer (offset mapping)")
    for k, seg in enumerate(segments):
        if not seg.text:
            continue
        enc = tokenizer(seg.text, add_special_tokens=False, return_offsets_mapping=char_ends is not None
                        and k == trainable[-1])
        seg_ids = list(enc["input_ids"])
        if seg.trainable and step_texts is None:
            positions.append(len(ids) + len(seg_ids) - 1)
        elif seg.trainable and k == trainable[-1]:
            offsets = enc["offset_mapping"]
            for end in char_ends:
                tok = next(j for j, (a, b) in enumerate(offsets) if b >= end and b > a)
                positions.append(len(ids) + tok)
        ids.extend(seg_ids)
    return ids, positions
