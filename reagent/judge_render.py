"""Render a trajectory as the text a judge reads.

The judge must see the whole episode, not only the final answer: the question, then
every assistant turn verbatim (reasoning and tool calls) and every tool result inside
``<tool_response>`` tags, in order. Long tool outputs are what blow a judge's
context, so a character budget elides the *middle* of the longest tool results first
(both ends usually carry the signal: headers and the last lines of a traceback) and
marks each cut so the judge knows something was removed.

Reasoning is judged too. Each assistant turn is shown as the policy generated it
(``generated_text`` when the loop recorded it), ``<think>`` blocks included, whatever
the policy's chat template does with old thinking (Qwen3 drops it from later prompts;
the judge still reads it). Only when the tool results are already cut to their floor
and the rendering is still over budget are the longest ``<think>`` blocks elided from
the middle, never below ``min_think_chars``; the rest of an assistant turn (its answer
and tool calls) is never cut.
"""

from __future__ import annotations

import re

from reagent.records import Message, Trajectory
from reagent.toolcalls import render_tool_calls

_THINK = re.compile(r"(<think>)(.*?)(</think>)", re.DOTALL)

ELISION = "\n[... {n} characters elided ...]\n"


def elide_middle(text: str, limit: int) -> str:
    """Keep the first and last parts of ``text`` within ``limit`` characters, marking the cut."""
    if len(text) <= limit:
        return text
    marker_len = len(ELISION.format(n=len(text)))
    keep = max(limit - marker_len, 0)
    head, tail = keep - keep // 2, keep // 2
    cut = len(text) - head - tail
    return text[:head] + ELISION.format(n=cut) + (text[len(text) - tail:] if tail else "")


def _assistant_text(m: Message) -> str:
    raw = (m.extra or {}).get("generated_text")
    if isinstance(raw, str):
        return raw
    text = m.content or ""
    if m.tool_calls and "<tool_call>" not in text:
        text = (text + "\n" if text else "") + render_tool_calls(m.tool_calls)
    return text


def _messages(traj: Trajectory | list[Message] | list[dict]) -> list[Message]:
    msgs = traj.messages if isinstance(traj, Trajectory) else traj
    return [m if isinstance(m, Message) else Message.from_dict(m) for m in msgs]


def render_for_judge(
    traj: Trajectory | list[Message] | list[dict],
    question: str | None = None,
    max_chars: int | None = 24000,
    min_tool_chars: int = 400,
    min_think_chars: int = 800,
) -> str:
    """The judge's view of a trajectory: ``Question: ...`` then the turns in order.

    ``max_chars`` bounds the whole rendering; tool results are elided from the
    middle (longest first, never below ``min_tool_chars``) until it fits; then, if
    needed, ``<think>`` blocks (longest first, never below ``min_think_chars``). The
    answers and tool calls of assistant turns are never cut: they are what is judged.
    """
    msgs = _messages(traj)
    if question is None:
        question = next((m.content or "" for m in msgs if m.role == "user"), "")
    first_user = next((i for i, m in enumerate(msgs) if m.role == "user"), None)
    parts: list[tuple[str, str]] = []  # (kind, text)
    for i, m in enumerate(msgs):
        if m.role == "system" or i == first_user:
            continue
        if m.role == "assistant":
            parts.append(("assistant", _assistant_text(m)))
        elif m.role == "tool":
            parts.append(("tool", m.content or ""))
        else:
            parts.append(("user", m.content or ""))
    if max_chars is not None:
        parts = _fit(parts, max_chars - len(question) - 64, min_tool_chars, min_think_chars)
    lines = [f"Question: {question}", "Trajectory:"]
    step = 0
    for kind, text in parts:
        if kind == "assistant":
            step += 1
            lines.append(f"[Assistant turn {step}]\n{text}")
        elif kind == "tool":
            lines.append(f"<tool_response>\n{text}\n</tool_response>")
        else:
            lines.append(f"[User]\n{text}")
    return "\n\n".join(lines)


def _fit(parts: list[tuple[str, str]], budget: int, min_tool_chars: int,
         min_think_chars: int = 800) -> list[tuple[str, str]]:
    """Shrink the longest tool results, then the longest think blocks, until ``budget`` fits."""
    overhead = 48 * len(parts)
    parts = list(parts)
    total = sum(len(t) for _, t in parts) + overhead
    if total <= budget:
        return parts
    tool_idx = [i for i, (k, _) in enumerate(parts) if k == "tool"]
    cap = _common_cap([len(parts[i][1]) for i in tool_idx], total - budget, min_tool_chars)
    for i in tool_idx:
        kind, text = parts[i]
        if len(text) > cap:
            parts[i] = (kind, elide_middle(text, cap))
    total = sum(len(t) for _, t in parts) + overhead
    if total <= budget:
        return parts
    thinks = [len(m.group(2)) for k, t in parts if k == "assistant" for m in _THINK.finditer(t)]
    cap = _common_cap(thinks, total - budget, min_think_chars)
    cut = lambda m: m.group(1) + elide_middle(m.group(2), cap) + m.group(3)  # noqa: E731
    return [(k, _THINK.sub(cut, t) if k == "assistant" else t) for k, t in parts]


def _common_cap(lengths: list[int], excess: int, floor: int) -> int:
    """The cap that removes ``excess`` characters from ``lengths``, lowered in 10% steps, >= floor."""
    cap = max(lengths, default=0)
    while cap > floor and sum(max(n - cap, 0) for n in lengths) < excess:
        cap = max(floor, int(cap * 0.9))
    return cap
