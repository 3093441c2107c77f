"""Loss masks from the model's own chat template, and token-in/token-out encoding."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from reagent.records import Message, ToolCall
from reagent.tokenization import (
    encode_continuation,
    encode_prompt,
    find_retokenization_mismatches,
    to_template_messages,
    tokenize_trajectory,
)

TOOLS = [{"type": "function", "function": {
    "name": "lookup", "description": "Look up a balance.",
    "parameters": {"type": "object", "properties": {"account": {"type": "string"}}}}}]

# Markers: each appears in exactly one kind of message.
PROMPT_MARKERS = ["zebrasystem", "walrususer", "gorillatool", "pelicantool", "jackaluser"]
POLICY_MARKERS = ["otterthink", "beaverfinal", "alpha", "beta", "lynxsecond"]

# A Qwen2.5-style template written for this test: it always emits a default system
# turn, writes arguments with `tojson` (so string arguments would be double-encoded)
# and opens tool-call turns without a newline after the role.
QWEN25_STYLE = (
    "{%- if messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content }}"
    "{%- else %}{{- '<|im_start|>system\\nDefault system prompt.' }}{%- endif %}"
    "{%- if tools %}{{- '\\n\\n# Tools\\n<tools>' }}{%- for t in tools %}"
    "{{- '\\n' + (t | tojson) }}{%- endfor %}{{- '\\n</tools>' }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- for m in messages %}"
    "{%- if m.role == 'user' or (m.role == 'assistant' and not m.tool_calls) %}"
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- elif m.role == 'assistant' %}{{- '<|im_start|>assistant' }}"
    "{%- if m.content %}{{- '\\n' + m.content }}{%- endif %}"
    "{%- for c in m.tool_calls %}{%- set c = c.function %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + c.name + '\", \"arguments\": ' }}"
    "{{- c.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif m.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}"
    "{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + m.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}"
    "{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# A template that rewrites history, as Qwen3 does with past <think> blocks.
FORGETS_THINKING = (
    "{%- for m in messages %}{%- set text = m.content %}"
    "{%- if m.role == 'assistant' and not loop.last and '</think>' in text %}"
    "{%- set text = text.split('</think>')[-1] %}{%- endif %}"
    "{{- '<|im_start|>' + m.role + '\\n' + text + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def call(name: str, **args) -> ToolCall:
    return ToolCall(id=f"call_{name}_{len(args)}", name=name, arguments=json.dumps(args))


def trajectory() -> list[Message]:
    return [
        Message(role="system", content="You keep the books zebrasystem."),
        Message(role="user", content="Total of alpha and beta? walrususer"),
        Message(role="assistant", content="<think>\notterthink\n</think>",
                tool_calls=[call("lookup", account="alpha"), call("lookup", account="beta")]),
        Message(role="tool", tool_call_id="c1", content="312 gorillatool"),
        Message(role="tool", tool_call_id="c2", content="88 pelicantool"),
        Message(role="assistant", content="lynxsecond 312 + 88 = 400"),
        Message(role="user", content="Are you sure? jackaluser"),
        Message(role="assistant", content="beaverfinal \\boxed{400}"),
    ]


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir):
    """Our template, and the same tokenizer with the Qwen2.5-style template."""
    ours = AutoTokenizer.from_pretrained(tiny_model_dir)
    qwen = AutoTokenizer.from_pretrained(tiny_model_dir)
    qwen.chat_template = QWEN25_STYLE
    return {"ours": ours, "qwen25_style": qwen}


def masked_text(tok, ids: list[int], mask: list[int], value: int) -> str:
    return tok.decode([i for i, m in zip(ids, mask) if m == value])


@pytest.mark.parametrize("template", ["ours", "qwen25_style"])
def test_mask_keeps_exactly_the_policy_text(tokenizers, template):
    tok = tokenizers[template]
    ids, mask = tokenize_trajectory(tok, trajectory(), tools=TOOLS)
    assert len(ids) == len(mask) and set(mask) == {0, 1}
    policy = masked_text(tok, ids, mask, 1)
    prompt = masked_text(tok, ids, mask, 0)
    for word in POLICY_MARKERS:
        assert word in policy, word
    for word in PROMPT_MARKERS:
        assert word not in policy and word in prompt, word
    # Tool calls as the template renders them are the policy's; tool results are not.
    assert '<tool_call>\n{"name": "lookup", "arguments": {"account": "beta"}}\n</tool_call>' in policy
    assert "<tool_response>" not in policy and "<|im_start|>" not in policy
    # Rendered text is reproduced exactly, minus what follows the final end of turn.
    full = tok.apply_chat_template(to_template_messages(trajectory()), tools=TOOLS, tokenize=False)
    assert full == tok.decode(ids) + "\n"


def test_every_policy_run_ends_with_eos_and_headers_are_masked(tokenizers):
    tok = tokenizers["ours"]
    ids, mask = tokenize_trajectory(tok, trajectory(), tools=TOOLS)
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    runs = []
    for k, m in enumerate(mask):
        if m and (k == 0 or not mask[k - 1]):
            runs.append([k, k])
        if m:
            runs[-1][1] = k + 1
    assert len(runs) == 3  # one per assistant turn
    for start, end in runs:
        assert ids[end - 1] == tok.eos_token_id
        assert ids[start - len(header):start] == header and not any(mask[start - len(header):start])
        if end < len(ids):  # the template's newline after <|im_end|> is not the policy's
            assert tok.decode(ids[end:end + 1]) == "\n" and mask[end] == 0
    assert ids[-1] == tok.eos_token_id and mask[-1] == 1


@pytest.mark.parametrize("template", ["ours", "qwen25_style"])
def test_token_in_token_out_reproduces_tokenize_trajectory(tokenizers, template):
    tok = tokenizers[template]
    msgs = trajectory()
    rendered = to_template_messages(msgs)
    ids = encode_prompt(tok, msgs[:2], tools=TOOLS)
    start = 0
    for i, msg in enumerate(msgs):
        if msg.role != "assistant":
            continue
        if start:  # the tool or user messages since the last assistant turn
            ids += encode_continuation(tok, msgs[start:i], tools=TOOLS)
        # What the policy "generated": its turn's text as rendered, ending with eos.
        before = tok.apply_chat_template(rendered[:i], tools=TOOLS, tokenize=False,
                                         add_generation_prompt=True)
        after = tok.apply_chat_template(rendered[:i + 1], tools=TOOLS, tokenize=False)
        turn = after[len(before):].removesuffix("\n")
        assert turn.endswith(tok.eos_token)
        ids += tok(turn, add_special_tokens=False)["input_ids"]
        start = i + 1
    assert ids == tokenize_trajectory(tok, msgs, tools=TOOLS)[0]
    assert find_retokenization_mismatches(tok, msgs, ids, tools=TOOLS) == []


def test_trajectory_ending_with_tool_results_keeps_them_masked(tokenizers):
    tok = tokenizers["ours"]
    msgs = trajectory()[:5]
    ids, mask = tokenize_trajectory(tok, msgs, tools=TOOLS)
    assert tok.decode(ids).endswith("88 pelicantool\n</tool_response><|im_end|>\n")
    assert mask[-1] == 0
    prompt = encode_prompt(tok, msgs, tools=TOOLS)
    assert prompt[:len(ids)] == ids  # the next generation prompt extends it


def test_mismatch_detection_names_the_tampered_turns(tokenizers):
    tok = tokenizers["ours"]
    msgs = trajectory()
    ids, _ = tokenize_trajectory(tok, msgs, tools=TOOLS)
    # Re-spell the last assistant turn's "beaverfinal" one character per token: same
    # text, different ids, as a sampled non-canonical tokenisation would be.
    word = tok("beaverfinal", add_special_tokens=False)["input_ids"]
    at = max(k for k in range(len(ids)) if ids[k:k + len(word)] == word)
    chars = [tok.convert_tokens_to_ids(c) for c in "beaverfinal"]
    tampered = ids[:at] + chars + ids[at + len(word):]
    assert tok.decode(tampered) == tok.decode(ids)
    reports = find_retokenization_mismatches(tok, msgs, tampered, tools=TOOLS)
    assert [(r["turn"], r["role"], r["trainable"]) for r in reports] == [(7, "assistant", True)]
    first_diff = next(k for k, (a, b) in enumerate(zip(word, chars)) if a != b)
    assert reports[0]["position"] == at + first_diff and reports[0]["resynced"]
    assert reports[0]["found_text"] == reports[0]["expected_text"]
    # A changed tool result is reported at the run that holds it; later turns still match.
    g = tok(" gorillatool", add_special_tokens=False)["input_ids"]
    at = next(k for k in range(len(ids)) if ids[k:k + len(g)] == g)
    changed = ids[:at] + tok(" hyenatool", add_special_tokens=False)["input_ids"] + ids[at + len(g):]
    reports = find_retokenization_mismatches(tok, msgs, changed, tools=TOOLS)
    assert [(r["turn"], r["role"], r["trainable"]) for r in reports] == [(3, "tool", False)]
    assert reports[0]["resynced"] is False  # the text differs, so nothing lines up again
    # Extra ids after the end are reported too.
    extra = find_retokenization_mismatches(tok, msgs, ids + [tok.pad_token_id], tools=TOOLS)
    assert len(extra) == 1 and extra[0]["position"] == len(ids)


def test_template_that_rewrites_history_is_handled_token_in_token_out(tiny_model_dir):
    # This pinned a refusal ("not prefix-consistent at turn 3"); the issue asks for such
    # templates to be handled: ids are built as the loop builds them, thinking kept.
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = FORGETS_THINKING
    msgs = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>plan</think>call"},
        {"role": "user", "content": "result"},
        {"role": "assistant", "content": "done"},
    ]
    ids, mask = tokenize_trajectory(tok, msgs)
    assert masked_text(tok, ids, mask, 1) == "<think>plan</think>call<|im_end|>done<|im_end|>"
    assert tok.decode(ids) == ("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
                               "<think>plan</think>call<|im_end|>\n<|im_start|>user\nresult"
                               "<|im_end|>\n<|im_start|>assistant\ndone<|im_end|>")
    # the template itself would have dropped the old thinking: re-rendering is not what ran
    assert "plan" not in tok.apply_chat_template(msgs, tokenize=False)
    assert find_retokenization_mismatches(tok, msgs, ids) == []
    with pytest.raises(ValueError, match="needs a prompt first"):
        tokenize_trajectory(tok, msgs[1:])


def test_to_template_messages_parses_arguments_and_keeps_malformed_calls_as_text():
    broken = ToolCall(id="x", arguments='{"account": ', error="invalid JSON")
    msgs = to_template_messages([
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function",
             "function": {"name": "lookup", "arguments": '{"account": "alpha"}'}}]},
        Message(role="assistant", content="Let me look.", tool_calls=[call("lookup", account="b"),
                                                                      broken]),
        Message(role="tool", content=None, tool_call_id="a"),
    ])
    assert msgs[0]["content"] == ""
    assert msgs[0]["tool_calls"][0]["function"]["arguments"] == {"account": "alpha"}
    assert "tool_calls" not in msgs[1]
    assert msgs[1]["content"] == ('Let me look.\n<tool_call>\n{"name": "lookup", "arguments": '
                                  '{"account": "b"}}\n</tool_call>\n<tool_call>\n{"account": \n'
                                  "</tool_call>")
    assert msgs[2] == {"role": "tool", "content": "", "tool_call_id": "a"}


def test_adjacent_assistant_turns_each_get_their_header(tokenizers):
    tok = tokenizers["ours"]
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"}]
    ids, mask = tokenize_trajectory(tok, msgs)
    assert tok.decode(ids) + "\n" == tok.apply_chat_template(msgs, tokenize=False)
    assert masked_text(tok, ids, mask, 1) == "a<|im_end|>b<|im_end|>"
