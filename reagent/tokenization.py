"""Token ids and loss masks for multi-turn agent trajectories, from the model's own template.

The policy is trained only on the tokens it generated (DESIGN.md): each assistant
turn's text, tool calls as the template renders them, and its end-of-turn token.
Everything else - system and user prompts, tool results, the assistant header
``<|im_start|>assistant\\n`` and the template's newline after ``<|im_end|>`` - is
masked out.

Nothing here knows any template's strings. Turn boundaries come from rendering
prefixes of the conversation with the tokenizer's chat template:
``messages[:i]`` with the generation prompt must be a prefix of ``messages[:i+1]``,
and the difference is what the policy wrote in turn ``i``. A template that rewrites
earlier turns (Qwen3 drops past ``<think>`` blocks once a new user question arrives)
is not prefix-consistent; :func:`tokenize_trajectory` then raises a ``ValueError``
naming the turn instead of training on text the model never saw.

Each run of masked-in or masked-out text is tokenised on its own, exactly as the
agent loop builds ids token-in/token-out: :func:`encode_prompt`, then the generated
ids, then :func:`encode_continuation` for the tool results and the next generation
prompt. So ``tokenize_trajectory`` reproduces the loop's ids whenever the generated
ids are the canonical tokenisation of their text; :func:`find_retokenization_mismatches`
reports the turns where they are not.

Message texts are data, never control tokens: a tool result, page, file or question
holding ``<|im_end|>\n<|im_start|>user`` must not forge a turn. Before rendering, every
special token's string inside a message (content and tool-call arguments) is replaced
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
from reagent.toolcalls import render_tool_calls

# Chat end-of-turn markers that differ from some tokenizers' eos token (Qwen base
# models have eos <|endoftext|> but end chat turns with <|im_end|>).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")

# An escaped literal is OPEN + chr(BASE + index into _literals(tokenizer)) + CLOSE.
_ESC_OPEN, _ESC_CLOSE, _ESC_BASE = "\ue000", "\ue001", 0xE100
_ESCAPED = re.compile("\ue000([\ue100-\uf8ff])\ue001")

_PLACEHOLDER_QUESTION = "reagent placeholder question"
_PLACEHOLDER_ANSWER = "reagent placeholder answer"


def to_template_messages(messages: list[Message | dict]) -> list[dict]:
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
        if d.get("content") is None:
            d["content"] = ""
        calls = msg.tool_calls or []
        if any(c.error is not None or c.name is None for c in calls):
            raw = render_tool_calls(calls)
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
        **(template_kwargs or {}),
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


def _not_prefix(turn: int, role: str, what: str, before: str, after: str) -> ValueError:
    k = next((j for j, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))
    return ValueError(
        f"chat template is not prefix-consistent at turn {turn} ({role}): {what}. The rendering "
        f"differs at character {k}: expected {before[k:k + 60]!r}, got {after[k:k + 60]!r}. "
        "Token-level masking needs a template that never rewrites earlier turns "
        "(for Qwen3, keep the <think> block in every assistant turn or pass a template that does)."
    )


def trajectory_segments(tokenizer, messages: list[Message | dict], tools: list | None = None,
                        template_kwargs: dict | None = None) -> list[Segment]:
    """The rendered conversation cut into masked-in and masked-out runs of text.

    Runs alternate: prompt text (everything up to and including an assistant header),
    then the assistant's own text through its end-of-turn token, and so on. Text the
    template puts after the final assistant turn's end-of-turn token is dropped,
    because the agent loop never generates it; a conversation ending in a user or
    tool message keeps its tail (masked out).
    """
    msgs = _escape_messages(tokenizer, to_template_messages(messages))
    eot = _end_of_turn_strings(tokenizer)
    segments: list[Segment] = []
    consumed = 0  # characters of the rendering already placed in segments
    rendered = ""  # rendering of the messages handled so far (no generation prompt)
    next_turn = 0  # first message not yet covered by a segment
    for i, msg in enumerate(msgs):
        if msg["role"] != "assistant":
            continue
        if i == 0:
            raise ValueError("turn 0 is an assistant message: a trajectory needs a prompt first")
        prompt = _render(tokenizer, msgs[:i], tools, True, template_kwargs)
        if not prompt.startswith(rendered):
            raise _not_prefix(i, "assistant", "the generation prompt does not extend the "
                              "conversation so far", rendered, prompt)
        full = _render(tokenizer, msgs[: i + 1], tools, False, template_kwargs)
        if not full.startswith(prompt):
            raise _not_prefix(i, "assistant", "the turn does not extend its generation prompt",
                              prompt, full)
        end = _turn_end(full, eot, start=len(prompt))
        end = len(full) if end is None else end  # template without an end token: train on all
        segments.append(Segment(prompt[consumed:], False, next_turn))
        segments.append(Segment(full[len(prompt):end], True, i))
        consumed, rendered, next_turn = end, full, i + 1
    if next_turn < len(msgs):
        full = _render(tokenizer, msgs, tools, False, template_kwargs)
        if not full.startswith(rendered):
            raise _not_prefix(next_turn, msgs[next_turn]["role"], "later messages rewrite the "
                              "conversation so far", rendered, full)
        segments.append(Segment(full[consumed:], False, next_turn))
    return [s for s in segments if s.text]


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
                        template_kwargs: dict | None = None) -> tuple[list[int], list[int]]:
    """``(input_ids, loss_mask)`` for a conversation; mask 1 = a token the policy generated.

    Masked in: every assistant turn's content and rendered tool calls, and its
    end-of-turn token. Masked out: system, user and tool text, assistant headers and
    the template's text between turns. Raises ``ValueError`` naming the turn when the
    chat template is not prefix-consistent. ``template_kwargs`` go to the template
    (e.g. ``{"enable_thinking": False}`` for Qwen3).
    """
    input_ids: list[int] = []
    loss_mask: list[int] = []
    for seg in trajectory_segments(tokenizer, messages, tools, template_kwargs):
        ids = _encode(tokenizer, seg.text)
        input_ids.extend(ids)
        loss_mask.extend([int(seg.trainable)] * len(ids))
    return input_ids, loss_mask


def encode_prompt(tokenizer, messages: list[Message | dict], tools: list | None = None,
                  template_kwargs: dict | None = None) -> list[int]:
    """Ids of the conversation so far plus the generation prompt: what the policy continues."""
    msgs = _escape_messages(tokenizer, to_template_messages(messages))
    return _encode(tokenizer, _render(tokenizer, msgs, tools, True, template_kwargs))


def encode_continuation(tokenizer, new_messages: list[Message | dict], tools: list | None = None,
                        template_kwargs: dict | None = None) -> list[int]:
    """Ids to append after a generated assistant turn that ended with its end-of-turn token.

    They cover the template's text after that token (e.g. ``"\\n"``), the new tool or
    user messages, and the next generation prompt, so the loop never re-tokenises
    the ids it already has. Derived by rendering a placeholder exchange with and
    without ``new_messages``: the assistant turn must close the same way in both, and
    the text the template puts after it must be where the new rendering continues.
    """
    placeholder = [{"role": "user", "content": _PLACEHOLDER_QUESTION},
                   {"role": "assistant", "content": _PLACEHOLDER_ANSWER}]
    new = _escape_messages(tokenizer, to_template_messages(new_messages))
    base = _render(tokenizer, placeholder, tools, False, template_kwargs)
    full = _render(tokenizer, placeholder + new, tools, True, template_kwargs)
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
    return _encode(tokenizer, after_new)


def find_retokenization_mismatches(tokenizer, messages: list[Message | dict], token_ids: list[int],
                                   tools: list | None = None,
                                   template_kwargs: dict | None = None) -> list[dict[str, Any]]:
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
        segments = trajectory_segments(tokenizer, messages, tools, template_kwargs)
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
