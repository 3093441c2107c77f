"""Token ids and loss masks for multi-turn agent trajectories, built the way the agent loop builds them.

The policy is trained only on the tokens it generated (DESIGN.md): each assistant
turn's text (reasoning, prose, tool calls in the family's format) and its end-of-turn
token. Everything else - system and user prompts, tool results, the assistant header
and the template's text between turns - is masked out.

Token-in/token-out, for any template. The loop never re-renders earlier turns:
:func:`encode_prompt` renders the conversation up to the first generation prompt, the
model's ids are appended as generated, and :func:`encode_continuation` appends the tool
results (or a new user turn) and the next generation prompt exactly as the template
renders them *after* a finished assistant turn. :func:`tokenize_trajectory` (SFT data,
re-tokenising stored trajectories) builds ids the same way, with each assistant turn's
text as the model of that family would have generated it
(:func:`reagent.toolcalls.assistant_text`, or the turn's recorded ``generated_text``).
So templates that rewrite history - Qwen3 drops earlier ``<think>`` blocks once a
new user question arrives; Llama 3.1 rewrites tool-call turns and drops text beside a
call - are handled, not refused: every turn's thinking stays in the ids as generated.
Only :func:`encode_continuation` needs the template to close an assistant turn the same
way whatever follows it, which Qwen2.5, Qwen3 and Llama 3.1 all do.

What other views of a conversation see under a history-rewriting template (Qwen3):
a Reagent-U revision starts a *new* prompt (first attempt + critique as a user turn),
rendered by the template, so like a deployed chat it sees the first attempt's answers,
tool calls and tool results but not its ``<think>`` blocks; only the revision's own
generated tokens are trained. The judge does not use the policy's template at all
(:mod:`reagent.judge_render`): it reads every turn's reasoning, within its budget.

Chat-template variables that change by themselves are pinned (:func:`resolve_template_kwargs`):
Llama 3.2's template writes today's date unless ``date_string`` is passed.

Message texts are data, never control tokens: a tool result, page, file or question
holding ``<|im_end|>\n<|im_start|>user`` must not forge a turn. Before rendering, every
special token's string inside a message (content, tool-call arguments, and the text of
an assistant turn being re-tokenised) is replaced
by an escape of private-use characters; :func:`_encode` then encodes the template's own
special tokens as their ids and everything between them with
``split_special_tokens=True``, so an escaped string becomes ordinary text tokens.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from reagent.records import Message
from reagent.toolcalls import assistant_text, render_tool_calls, tool_format_for

# Chat end-of-turn markers that differ from some tokenizers' eos token (Qwen base
# models have eos <|endoftext|> but end chat turns with <|im_end|>).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")

# The date Llama 3.x templates fall back to; used for every prompt of every run unless a
# config sets chat_template_kwargs.date_string, so prompts never drift with the calendar.
PINNED_DATE_STRING = "26 Jul 2024"

# An escaped literal is OPEN + chr(BASE + index into _literals(tokenizer)) + CLOSE.
_ESC_OPEN, _ESC_CLOSE, _ESC_BASE = "\ue000", "\ue001", 0xE100
_ESCAPED = re.compile("\ue000([\ue100-\uf8ff])\ue001")

_PLACEHOLDER_QUESTION = "reagent placeholder question"
_PLACEHOLDER_ANSWER = "reagent placeholder answer"


def pad_token_id(tokenizer) -> int:
    """The id to pad with: the tokenizer's pad token, else its end-of-turn or eos token.

    Llama 3 tokenizers have no pad token. Padded positions are always masked out of
    attention and loss, so any real id works; the end-of-turn token is one the model
    already knows. Never None: raises when the tokenizer has neither.
    """
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    for token in [*END_OF_TURN_TOKENS, tokenizer.eos_token]:
        if token and token in tokenizer.get_vocab():
            return int(tokenizer.convert_tokens_to_ids(token))
    raise ValueError("the tokenizer has no pad, end-of-turn or eos token to pad with")


def resolve_template_kwargs(tokenizer, template_kwargs: dict | None) -> dict:
    """``template_kwargs`` plus the pins a template needs to render the same every day.

    A template that reads the clock (``strftime_now``, Llama 3.2/3.3 style) gets
    ``date_string = PINNED_DATE_STRING`` unless the caller set one.
    """
    out = dict(template_kwargs or {})
    template = getattr(tokenizer, "chat_template", None) or ""
    if "strftime_now" in str(template) and "date_string" not in out:
        out["date_string"] = PINNED_DATE_STRING
    return out


def end_of_turn_token(tokenizer) -> str:
    """The token that closes an assistant turn in the chat template (``<|im_end|>``, ``<|eot_id|>``...)."""
    return _end_of_turn_strings(tokenizer)[0]


def to_template_messages(messages: list[Message | dict], tool_format: str = "hermes") -> list[dict]:
    """Messages as the dicts chat templates expect.

    Tool-call arguments become dicts when they are valid JSON objects, because
    Qwen2.5's template writes ``arguments | tojson`` and would double-encode a
    string. An assistant turn with a malformed call (``error`` set) gets all its calls
    written back into ``content`` as the raw text the model produced, in order, so
    the rendering is what the policy wrote rather than a template error.
    ``content: None`` becomes ``""``, which every template can concatenate.
    """
    out = []
    for i, m in enumerate(messages):
        msg = m if isinstance(m, Message) else Message.from_dict(m, f"messages[{i}].")
        d = msg.to_dict()
        d.pop("generated_text", None)  # the loop's exact text: for re-tokenising, not templates
        if d.get("content") is None:
            d["content"] = ""
        calls = msg.tool_calls or []
        if any(c.error is not None or c.name is None for c in calls):
            raw = render_tool_calls(calls, tool_format)
            d["content"] = f"{d['content']}\n{raw}" if d["content"] else raw
            d.pop("tool_calls", None)
        elif calls:
            d["tool_calls"] = [_template_call(c.to_dict()) for c in calls]
        else:
            d.pop("tool_calls", None)
        out.append(d)
    return out


def _template_call(call: dict) -> dict:
    fn = dict(call["function"])
    try:
        args = json.loads(fn["arguments"])
    except (TypeError, json.JSONDecodeError):
        args = None
    if isinstance(args, dict):
        fn["arguments"] = args
    return {**call, "function": fn}


@dataclass
class Segment:
    """A run of rendered text with one mask value; ``turn`` is the message it starts in."""

    text: str
    trainable: bool
    turn: int


def _render(tokenizer, messages: list[dict], tools: list | None, generation_prompt: bool,
            template_kwargs: dict | None) -> str:
    text = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt,
        **resolve_template_kwargs(tokenizer, template_kwargs),
    )
    if not isinstance(text, str):  # never expected with tokenize=False; fail loudly if it is
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}")
    return text


def _end_of_turn_strings(tokenizer) -> list[str]:
    vocab = tokenizer.get_added_vocab()
    found = [t for t in END_OF_TURN_TOKENS if t in vocab]
    if tokenizer.eos_token and tokenizer.eos_token not in found:
        found.append(tokenizer.eos_token)
    return found


def _turn_end(text: str, eot: list[str], start: int = 0, last: bool = True) -> int | None:
    """End offset of the last (or first) end-of-turn token in ``text[start:]``, else None."""
    hits = []
    for token in eot:
        pos = text.rfind(token, start) if last else text.find(token, start)
        if pos >= 0:
            hits.append(pos + len(token))
    if not hits:
        return None
    return max(hits) if last else min(hits)


def trajectory_segments(tokenizer, messages: list[Message | dict], tools: list | None = None,
                        template_kwargs: dict | None = None,
                        tool_format: str | None = None) -> list[Segment]:
    """The conversation as the agent loop would have built it, cut into masked runs of text.

    Runs alternate: the prompt up to the first generation prompt (masked out), then each
    assistant turn as generated through its end-of-turn token (masked in), then the
    continuation the template renders after that turn - tool results or a user turn and
    the next generation prompt (masked out). A conversation ending in a tool or user
    message keeps that tail, without a generation prompt.
    """
    fmt = tool_format_for(tokenizer, tool_format)
    msgs = [m if isinstance(m, Message) else Message.from_dict(m, f"messages[{i}].")
            for i, m in enumerate(messages)]
    eot = end_of_turn_token(tokenizer)
    turns = [i for i, m in enumerate(msgs) if m.role == "assistant"]
    if not turns:
        text = _render(tokenizer, _escape_messages(tokenizer, to_template_messages(msgs, fmt)),
                       tools, False, template_kwargs)
        return [Segment(text, False, 0)] if text else []
    if turns[0] == 0:
        raise ValueError("turn 0 is an assistant message: a trajectory needs a prompt first")
    prompt = _escape_messages(tokenizer, to_template_messages(msgs[:turns[0]], fmt))
    segments = [Segment(_render(tokenizer, prompt, tools, True, template_kwargs), False, 0)]
    literals = _literals(tokenizer)
    for k, i in enumerate(turns):
        # the turn's text is data too (an imported turn may quote a special token's string)
        text = _escape_text(literals, generated_text(msgs[i], fmt))
        segments.append(Segment(text + eot, True, i))
        nxt = turns[k + 1] if k + 1 < len(turns) else len(msgs)
        if nxt > i + 1 or nxt < len(msgs):  # adjacent assistant turns still get a header
            text = continuation_text(tokenizer, msgs[i + 1:nxt], tools, template_kwargs, fmt,
                                     generation_prompt=nxt < len(msgs))
            segments.append(Segment(text, False, i + 1))
    return [s for s in segments if s.text]


def generated_text(message: Message, tool_format: str = "hermes") -> str:
    """What the policy generated for an assistant message, without its end-of-turn token.

    The loop records the exact text in ``extra["generated_text"]`` when it differs from
    the family's canonical writing of the turn (:func:`reagent.toolcalls.assistant_text`).
    """
    raw = (message.extra or {}).get("generated_text")
    if isinstance(raw, str):
        return raw
    return assistant_text(message.content, message.tool_calls, tool_format)


def _literals(tokenizer) -> tuple[str, ...]:
    """What message text may not hold as such: the escape marks, then special tokens."""
    specials = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    specials |= set(tokenizer.all_special_tokens)
    return (_ESC_OPEN, _ESC_CLOSE, *sorted(filter(None, specials), key=lambda t: (-len(t), t)))


@functools.lru_cache(maxsize=32)
def _pattern(literals: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(map(re.escape, literals)))


def _escape_text(literals: tuple[str, ...], text: str) -> str:
    index = {lit: i for i, lit in enumerate(literals)}
    return _pattern(literals).sub(
        lambda m: f"{_ESC_OPEN}{chr(_ESC_BASE + index[m.group(0)])}{_ESC_CLOSE}", text)


def _unescape(tokenizer, text: str) -> str:
    """Escaped message text back to what the message said."""
    if _ESC_OPEN not in text:
        return text
    literals = _literals(tokenizer)
    return _ESCAPED.sub(lambda m: literals[ord(m.group(1)) - _ESC_BASE], text)


def _escape_messages(tokenizer, msgs: list[dict]) -> list[dict]:
    """Template messages with special-token strings in their texts escaped (see module doc)."""
    literals = _literals(tokenizer)

    def esc(value: Any) -> Any:
        if isinstance(value, str):
            return _escape_text(literals, value)
        if isinstance(value, list):
            return [esc(v) for v in value]
        if isinstance(value, dict):
            return {k: esc(v) for k, v in value.items()}
        return value

    out = []
    for m in msgs:
        m = dict(m)
        if isinstance(m.get("content"), str):
            m["content"] = esc(m["content"])
        if m.get("tool_calls"):
            m["tool_calls"] = [{**c, "function": {**c["function"],
                                                  "arguments": esc(c["function"].get("arguments"))}}
                               for c in m["tool_calls"]]
        out.append(m)
    return out


def _encode(tokenizer, text: str) -> list[int]:
    """Ids of rendered text: special tokens the template wrote are parsed, escaped ones are not."""
    if not text:
        return []
    if _ESC_OPEN not in text:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    ids: list[int] = []
    pos = 0
    specials = _literals(tokenizer)[2:]
    for m in _pattern(specials).finditer(text) if specials else ():  # the template's own
        ids += _encode_plain(tokenizer, _unescape(tokenizer, text[pos:m.start()]))
        ids.append(tokenizer.convert_tokens_to_ids(m.group(0)))
        pos = m.end()
    return ids + _encode_plain(tokenizer, _unescape(tokenizer, text[pos:]))


def _encode_plain(tokenizer, text: str) -> list[int]:
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def tokenize_trajectory(tokenizer, messages: list[Message | dict], tools: list | None = None,
                        template_kwargs: dict | None = None,
                        tool_format: str | None = None) -> tuple[list[int], list[int]]:
    """``(input_ids, loss_mask)`` for a conversation; mask 1 = a token the policy generated.

    The ids the agent loop would have produced (token-in/token-out, see the module
    docstring). Masked in: every assistant turn's text as generated (reasoning, content,
    tool calls in ``tool_format``, default: the template's) and its end-of-turn token.
    Masked out: prompts, tool results, headers and the template's text between turns.
    ``template_kwargs`` go to the template (e.g. ``{"enable_thinking": False}`` for Qwen3).
    """
    input_ids: list[int] = []
    loss_mask: list[int] = []
    for seg in trajectory_segments(tokenizer, messages, tools, template_kwargs, tool_format):
        ids = _encode(tokenizer, seg.text)
        input_ids.extend(ids)
        loss_mask.extend([int(seg.trainable)] * len(ids))
    return input_ids, loss_mask


def encode_prompt(tokenizer, messages: list[Message | dict], tools: list | None = None,
                  template_kwargs: dict | None = None, tool_format: str | None = None) -> list[int]:
    """Ids of the conversation so far plus the generation prompt: what the policy continues."""
    msgs = _escape_messages(tokenizer, to_template_messages(messages, tool_format_for(tokenizer, tool_format)))
    return _encode(tokenizer, _render(tokenizer, msgs, tools, True, template_kwargs))


def encode_continuation(tokenizer, new_messages: list[Message | dict], tools: list | None = None,
                        template_kwargs: dict | None = None, tool_format: str | None = None) -> list[int]:
    """Ids to append after a generated assistant turn that ended with its end-of-turn token.

    They cover the template's text after that token (e.g. ``"\\n"``), the new tool or
    user messages, and the next generation prompt, so the loop never re-tokenises
    the ids it already has. Derived by rendering a placeholder exchange with and
    without ``new_messages``: the assistant turn must close the same way in both, and
    the text the template puts after it must be where the new rendering continues.
    """
    fmt = tool_format_for(tokenizer, tool_format)
    return _encode(tokenizer, continuation_text(tokenizer, new_messages, tools, template_kwargs, fmt))


def continuation_text(tokenizer, new_messages: list[Message | dict], tools: list | None,
                      template_kwargs: dict | None, tool_format: str = "hermes",
                      generation_prompt: bool = True) -> str:
    """The text :func:`encode_continuation` encodes (``generation_prompt=False``: without
    the next generation prompt, for a conversation that ends there)."""
    placeholder = [{"role": "user", "content": _PLACEHOLDER_QUESTION},
                   {"role": "assistant", "content": _PLACEHOLDER_ANSWER}]
    new = _escape_messages(tokenizer, to_template_messages(new_messages, tool_format))
    base = _render(tokenizer, placeholder, tools, False, template_kwargs)
    full = _render(tokenizer, placeholder + new, tools, generation_prompt, template_kwargs)
    eot = _end_of_turn_strings(tokenizer)
    base_at, full_at = base.rfind(_PLACEHOLDER_ANSWER), full.rfind(_PLACEHOLDER_ANSWER)
    if base_at < 0 or full_at < 0:
        raise ValueError("the chat template dropped the assistant's content; cannot derive "
                         "the continuation")
    base_end = _turn_end(base, eot, base_at, last=False)
    full_end = _turn_end(full, eot, full_at, last=False)
    if base_end is None or full_end is None:
        raise ValueError(f"the chat template does not end assistant turns with any of {eot}; "
                         "token-in/token-out continuation needs an end-of-turn token")
    closing, closing_new = base[base_at:base_end], full[full_at:full_end]
    after, after_new = base[base_end:], full[full_end:]
    if closing != closing_new or not after_new.startswith(after):
        raise ValueError(
            "chat template is not prefix-consistent: appending "
            f"{[m['role'] for m in new]} changes how the previous assistant turn ends "
            f"(alone: {closing + after!r}; followed by the new messages: "
            f"{(closing_new + after_new)[:len(closing + after) + 40]!r})"
        )
    return after_new


def find_retokenization_mismatches(tokenizer, messages: list[Message | dict], token_ids: list[int],
                                   tools: list | None = None, template_kwargs: dict | None = None,
                                   tool_format: str | None = None) -> list[dict[str, Any]]:
    """Turns where kept ids differ from re-tokenising the conversation's text. Never raises.

    A policy can sample a non-canonical tokenisation (``"4"+"05"`` where the tokenizer
    would write ``"405"``); training on re-tokenised text would then score ids the
    policy never produced. Each report names the turn (message index where the run
    starts), its role, whether it is masked in, the first differing position in
    ``token_ids``, and the expected and found text. After a mismatch the walk
    re-synchronises by decoding, so later turns are still checked; if it cannot,
    the report says ``resynced: False`` and the walk stops.
    """
    try:
        segments = trajectory_segments(tokenizer, messages, tools, template_kwargs, tool_format)
    except Exception as e:  # noqa: BLE001 - a warning helper must not break the caller
        return [{"turn": None, "error": f"could not render the conversation: {e}"}]
    roles = [m.get("role") if isinstance(m, dict) else m.role for m in messages]
    ids = list(token_ids)
    reports: list[dict[str, Any]] = []
    pos = 0
    for seg in segments:
        expected = _encode(tokenizer, seg.text)
        found = ids[pos: pos + len(expected)]
        if found == expected:
            pos += len(expected)
            continue
        first = next((k for k, (a, b) in enumerate(zip(expected, found)) if a != b),
                     min(len(expected), len(found)))
        text = _unescape(tokenizer, seg.text)
        end = _resync(tokenizer, ids, pos, text)
        report = {
            "turn": seg.turn,
            "role": roles[seg.turn] if seg.turn < len(roles) else None,
            "trainable": seg.trainable,
            "position": pos + first,
            "expected_text": text,
            "found_text": _decode(tokenizer, ids[pos: end if end is not None else pos + len(expected)]),
            "resynced": end is not None,
        }
        reports.append(report)
        if end is None:
            return reports
        pos = end
    if pos < len(ids):
        reports.append({"turn": segments[-1].turn if segments else None, "role": None,
                        "trainable": False, "position": pos, "expected_text": "",
                        "found_text": _decode(tokenizer, ids[pos:]), "resynced": True})
    return reports


def _decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _resync(tokenizer, ids: list[int], start: int, text: str) -> int | None:
    """The end ``q`` with ``decode(ids[start:q]) == text``, or None if there is none."""
    for q in range(start + 1, len(ids) + 1):
        decoded = _decode(tokenizer, ids[start:q])
        if decoded == text:
            return q
        if len(decoded) > len(text) + 16:  # a few bytes of slack for split UTF-8
            return None
    return None
