"""The tiny local model: builds offline, loads through the Auto* path, speaks ChatML with tools."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from reagent.tiny_model import SCAFFOLD_TOKENS, SIZES, SPECIAL_TOKENS, build_config, make_tiny_model

TOOLS = [{
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look up the balance of an account.",
        "parameters": {"type": "object", "properties": {"account": {"type": "string"}},
                       "required": ["account"]},
    },
}]
CONVERSATION = [
    {"role": "system", "content": "You keep the books."},
    {"role": "user", "content": "What is the total of alpha and beta?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "lookup", "arguments": '{"account": "alpha"}'}},  # JSON string
        {"id": "c2", "type": "function",
         "function": {"name": "lookup", "arguments": {"account": "beta"}}},  # dict
    ]},
    {"role": "tool", "tool_call_id": "c1", "content": "312"},
    {"role": "tool", "tool_call_id": "c2", "content": "88"},
    {"role": "assistant", "content": "The total is \\boxed{400}"},
]


def _run_python(code: str, timeout: int = 120) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_scaffolding_strings_are_single_tokens(tiny_tokenizer):
    for text in SPECIAL_TOKENS + SCAFFOLD_TOKENS:
        ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (text, tiny_tokenizer.convert_ids_to_tokens(ids))
    # Scaffold tokens are ordinary text: they survive skip_special_tokens, so tool calls parse.
    call = '<tool_call>\n{"name": "lookup", "arguments": {"account": "a"}}\n</tool_call><|im_end|>'
    ids = tiny_tokenizer(call, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == call.removesuffix("<|im_end|>")


def test_tokenizer_special_ids_and_round_trip(tiny_tokenizer):
    assert tiny_tokenizer.eos_token == "<|im_end|>"
    assert tiny_tokenizer.pad_token == "<|endoftext|>"
    assert 2000 <= len(tiny_tokenizer) <= 4096
    text = "Balances: alpha 312, beta 88.\ndef f(x):\n    return {'a': x * 2}  # café\n"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text
    assert tiny_tokenizer(text)["input_ids"] == ids  # no BOS or EOS is added


def test_chat_template_renders_tools_calls_and_results(tiny_tokenizer):
    text = tiny_tokenizer.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou keep the books.\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(TOOLS[0]) + "\n</tools>" in text
    for account in ("alpha", "beta"):  # string and dict arguments render the same way
        call = {"name": "lookup", "arguments": {"account": account}}
        assert f"<tool_call>\n{json.dumps(call)}\n</tool_call>" in text
    # Both tool results share one user turn.
    assert ("<|im_start|>user\n<tool_response>\n312\n</tool_response>\n"
            "<tool_response>\n88\n</tool_response><|im_end|>\n") in text
    assert text.endswith("<|im_start|>assistant\nThe total is \\boxed{400}<|im_end|>\n")
    prompt = tiny_tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False,
                                                add_generation_prompt=True)
    assert prompt == ("<|im_start|>system\nYou keep the books.<|im_end|>\n<|im_start|>user\n"
                      "What is the total of alpha and beta?<|im_end|>\n<|im_start|>assistant\n")


def test_config_matches_tokenizer_and_sizes(tiny_model_dir, tiny_tokenizer):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    generation = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert config["vocab_size"] == len(tiny_tokenizer)
    assert config["tie_word_embeddings"] is True
    for cfg in (config, generation):
        assert cfg["eos_token_id"] == tiny_tokenizer.eos_token_id
        assert cfg["pad_token_id"] == tiny_tokenizer.pad_token_id
        assert cfg["bos_token_id"] == tiny_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    from transformers import Qwen2ForCausalLM

    counts = {}
    for size in SIZES:
        with torch.device("meta"):
            counts[size] = Qwen2ForCausalLM(build_config(size, tiny_tokenizer)).num_parameters()
    assert 0.1e6 < counts["nano"] < 0.4e6
    assert 0.5e6 < counts["micro"] < 1.5e6
    assert 3e6 < counts["small"] < 7e6
    with pytest.raises(ValueError, match="valid sizes: nano, micro, small"):
        build_config("huge", tiny_tokenizer)


def test_seed_fixes_the_weights(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    a = load_file(make_tiny_model(tmp_path / "a", size="nano", seed=0) / "model.safetensors")
    b = load_file(tiny_model_dir / "model.safetensors")
    c = load_file(make_tiny_model(tmp_path / "c", size="nano", seed=1) / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_loads_and_generates_in_a_new_process(tiny_model_dir):
    out = _run_python(f"""
        import json
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained({str(tiny_model_dir)!r})
        model = AutoModelForCausalLM.from_pretrained({str(tiny_model_dir)!r})
        conv = {CONVERSATION!r}
        text = tok.apply_chat_template(conv, tools={TOOLS!r}, tokenize=False)
        prompt = tok.apply_chat_template(conv[:2], tokenize=False, add_generation_prompt=True)
        enc = tok([prompt, "Hello"], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(0)
        gen = model.generate(**enc, max_new_tokens=5, do_sample=True)
        print(json.dumps({{"type": type(model).__name__, "shape": list(gen.shape),
                          "prompt_len": enc["input_ids"].shape[1],
                          "has_call": '"arguments": {{"account": "alpha"}}' in text,
                          "has_result": "<tool_response>\\n312\\n</tool_response>" in text}}))
    """)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["type"] == "Qwen2ForCausalLM"
    assert result["shape"][0] == 2 and result["prompt_len"] < result["shape"][1]
    assert result["has_call"] and result["has_result"]


@pytest.mark.slow
def test_cli_builds_the_same_tokenizer_in_another_process(tmp_path, tiny_model_dir):
    out = tmp_path / "cli_model"
    proc = subprocess.run(
        [sys.executable, "-m", "reagent", "make-tiny-model", "--out", str(out), "--size", "nano"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.json", "generation_config.json", "model.safetensors",
                 "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (out / name).is_file(), name
    made = json.loads((out / "reagent_tiny_model.json").read_text())
    assert made["size"] == "nano" and made["seed"] == 0
    # The BPE training is deterministic, so a model built anywhere has the same vocabulary.
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    assert vocab == json.loads(Path(tiny_model_dir, "tokenizer.json").read_text())["model"]["vocab"]
