"""Real Qwen2.5 / Qwen3 / Llama 3.1 tokenizers built offline from registry rank files.

The ids are checked against published encodings (the Qwen2 and Llama 3 tokenizers'
own tests and llama-tokenize runs on the real GGUF files), special tokens included;
the templates against the published renderings of a few conversations.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reagent.families import FAMILIES, get_family, vocab_and_merges

QWEN_IDS = {  # published Qwen2/2.5/3 encodings (add_special_tokens=False)
    "Hello, world! 123": [9707, 11, 1879, 0, 220, 16, 17, 18],
    "the cat sat on the mat": [1782, 8251, 7578, 389, 279, 5517],
    "こんにちは世界": [89015, 99489],
    "<|im_start|>": [151644],
    "<|im_end|>": [151645],
    "<|endoftext|>": [151643],
    "<tool_call>": [151657],
}
QWEN3_ONLY = {"<tool_response>": 151665, "</tool_response>": 151666, "<think>": 151667, "</think>": 151668}
LLAMA_IDS = {  # published Llama 3.1 encodings; BOS is added by the tokenizer
    "Hello, world!": [128000, 9906, 11, 1917, 0],
    "The capital of France is": [128000, 791, 6864, 315, 9822, 374],
    "I'm trying to create": [128000, 40, 2846, 4560, 311, 1893],
}
LLAMA_SPECIAL = {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|start_header_id|>": 128006,
                 "<|end_header_id|>": 128007, "<|eom_id|>": 128008, "<|eot_id|>": 128009,
                 "<|python_tag|>": 128010, "<|reserved_special_token_247|>": 128255}


def _tok(family_model_dir, name):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(family_model_dir(name))


@pytest.mark.parametrize("name", ["qwen2.5", "qwen3"])
def test_qwen_ids_match_published_encodings(family_model_dir, name):
    tok = _tok(family_model_dir, name)
    for text, ids in QWEN_IDS.items():
        assert tok(text, add_special_tokens=False)["input_ids"] == ids, text
        assert tok.decode(ids) == text
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == 151643 and tok.bos_token is None
    if name == "qwen3":
        assert len(tok) == 151669
        for text, i in QWEN3_ONLY.items():
            assert tok.convert_tokens_to_ids(text) == i
        # <think> is an added, not special, token: it survives skip_special_tokens
        assert tok.decode([151667, 87, 151668, 151645], skip_special_tokens=True) == "<think>x</think>"
    else:
        assert len(tok) == 151665 and "<think>" not in tok.get_added_vocab()


def test_llama_ids_match_published_encodings(family_model_dir):
    tok = _tok(family_model_dir, "llama3.1")
    for text, ids in LLAMA_IDS.items():
        assert tok(text)["input_ids"] == ids, text
    for text, i in LLAMA_SPECIAL.items():
        assert tok.convert_tokens_to_ids(text) == i
        assert tok(text, add_special_tokens=False)["input_ids"] == [i]
    assert len(tok) == 128256 and tok.pad_token is None and tok.eos_token == "<|eot_id|>"
    # digits go in threes in Llama 3, one by one in Qwen
    assert tok.decode(tok("12345", add_special_tokens=False)["input_ids"][:1]) == "123"


def test_merges_follow_rank_order():
    # a 3-byte token of rank 4 built from two splits: both listed, ordered by rank
    ranks = [b"a", b"b", b"c", b"ab", b"abc", b"bc"]
    vocab, merges = vocab_and_merges(ranks)
    assert vocab == {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "bc": 5}
    # within one rank, splits sort by (rank of left, rank of right): (0, 5) before (3, 2)
    assert merges == [("a", "b"), ("a", "bc"), ("ab", "c"), ("b", "c")]


QWEN3_THINKING_DROPPED = (
    "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
    "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
)
QWEN3_TOOL_TURN = (
    "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nr1\n</think>\n\nA1\n"
    '<tool_call>\n{"name": "lookup", "arguments": {"account": "x"}}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\n<tool_response>\n10\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
)
LLAMA_PROMPT = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
    "December 2023\nToday Date: 26 Jul 2024\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>"
    "\n\nQ<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)
QWEN25_PROMPT = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                 "assistant.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.slow
def test_make_tiny_model_qwen3_loads_in_a_fresh_process(tmp_path):
    """The CLI's output loads through the Auto classes and renders the published template."""
    from reagent.families import family_available

    if not family_available("qwen3"):
        pytest.skip("pip install --no-deps dashscope (ships the qwen3 vocabulary)")
    out = tmp_path / "q3"
    subprocess.run([sys.executable, "-m", "reagent", "make-tiny-model", "--out", str(out),
                    "--tokenizer", "qwen3"], check=True, capture_output=True)
    code = r"""
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
d = sys.argv[1]
tok = AutoTokenizer.from_pretrained(d)
model = AutoModelForCausalLM.from_pretrained(d)
call = {"type": "function", "function": {"name": "lookup", "arguments": {"account": "x"}}}
a = tok.apply_chat_template([{"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "<think>\nr1\n</think>\n\nA1"},
    {"role": "user", "content": "Q2"}], tokenize=False, add_generation_prompt=True,
    enable_thinking=False)
b = tok.apply_chat_template([{"role": "user", "content": "Q"},
    {"role": "assistant", "content": "<think>\nr1\n</think>\n\nA1", "tool_calls": [call]},
    {"role": "tool", "content": "10"}], tokenize=False, add_generation_prompt=True)
print(json.dumps({"arch": type(model).__name__, "tied": model.config.tie_word_embeddings,
                  "vocab": model.config.vocab_size, "hidden": model.config.hidden_size,
                  "a": a, "b": b}))
"""
    res = subprocess.run([sys.executable, "-c", code, str(out)], check=True, capture_output=True,
                         text=True)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["arch"] == "Qwen3ForCausalLM" and got["tied"] and got["vocab"] == 151669
    assert got["hidden"] <= 32
    assert got["a"] == QWEN3_THINKING_DROPPED
    assert got["b"] == QWEN3_TOOL_TURN
    made = json.loads((out / "reagent_tiny_model.json").read_text())
    assert made["tokenizer"] == "qwen3"


def test_published_templates_render(family_model_dir):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    llama = _tok(family_model_dir, "llama3.1")
    assert llama.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == LLAMA_PROMPT
    qwen = _tok(family_model_dir, "qwen2.5")
    assert qwen.apply_chat_template(msgs[1:], tokenize=False,
                                    add_generation_prompt=True) == QWEN25_PROMPT


def test_unknown_family_names_the_valid_ones():
    with pytest.raises(ValueError, match="qwen2.5, qwen3, llama3.1"):
        get_family("qwen4")
    assert set(FAMILIES) == {"qwen2.5", "qwen3", "llama3.1"}


def test_sft_demos_tokenise_for_llama_with_one_call_per_turn(family_model_dir):
    from reagent.envs.toy import ToyEnv
    from reagent.envs.toy_demos import demonstrations
    from reagent.tokenization import tokenize_trajectory

    tok = _tok(family_model_dir, "llama3.1")
    env = ToyEnv(seed=0)
    tasks = env.tasks("train", 6)
    demos = demonstrations(env, tasks, flaw_rate=0.0, one_call_per_turn=True)
    assert all(len(m.tool_calls or []) <= 1 for d in demos for m in d.messages)
    for demo in demos:
        ids, mask = tokenize_trajectory(tok, demo.messages)
        policy = tok.decode([i for i, m in zip(ids, mask) if m])
        calls = [m for m in demo.messages if m.tool_calls]
        assert policy.count('{"name": "') == len(calls) and '"parameters": {' in policy
        assert policy.count("<|eot_id|>") == sum(m.role == "assistant" for m in demo.messages)
        assert "ipython" not in policy and "<|start_header_id|>" not in policy
    multi = demonstrations(env, tasks, flaw_rate=0.0)
    with pytest.raises(ValueError, match="one tool call per turn"):
        for demo in multi:
            tokenize_trajectory(tok, demo.messages)


def test_a_template_that_reads_the_clock_is_pinned_and_recorded(family_model_dir):
    """Llama 3.2/3.3 templates write strftime_now("%d %b %Y") unless date_string is given."""
    from reagent.agent import AgentConfig, AgentLoop, specs_for
    from reagent.envs import make_env
    from reagent.tokenization import PINNED_DATE_STRING, encode_prompt
    from tests.scripted import ScriptedBackend

    tok = _tok(family_model_dir, "llama3.1")
    published = '{%- if not date_string is defined %}\n    {%- set date_string = "26 Jul 2024" %}'
    assert published in tok.chat_template
    tok.chat_template = tok.chat_template.replace(published, (
        '{%- if not date_string is defined %}\n    {%- if strftime_now is defined %}\n'
        '        {%- set date_string = strftime_now("%d %b %Y") %}\n    {%- else %}\n'
        '        {%- set date_string = "26 Jul 2024" %}\n    {%- endif %}'))
    today = tok.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False)
    msgs = [{"role": "user", "content": "q"}]
    pinned = tok.decode(encode_prompt(tok, msgs))
    assert f"Today Date: {PINNED_DATE_STRING}\n" in pinned and "Today Date: " in today
    chosen = tok.decode(encode_prompt(tok, msgs, template_kwargs={"date_string": "01 Jan 2030"}))
    assert "Today Date: 01 Jan 2030\n" in chosen
    env = make_env("toy", seed=0)
    backend = ScriptedBackend(tok, lambda text, turn: "\\boxed{1}",
                              turn_marker="<|start_header_id|>assistant<|end_header_id|>",
                              end_token="<|eot_id|>")
    (traj,) = AgentLoop(backend, env, AgentConfig()).run(specs_for(env, env.tasks("train", 1), 1))
    assert traj.extra["chat_template_kwargs"] == {"date_string": PINNED_DATE_STRING}
    assert f"Today Date: {PINNED_DATE_STRING}\n" in tok.decode(traj.token_ids)
