"""``reagent eval`` renders the policy's prompts with ``chat_template_kwargs``: plain
attempts, Reagent-C revisions and Best-of-N candidates, on a tiny Qwen3 model with the
real Qwen3 tokenizer and published template (skipped where the vocabulary package is
absent). Qwen3's template answers ``enable_thinking: false`` by opening the assistant
turn with an empty think block; every prompt the model is given is recorded at the
backend (the ``hf_prompts`` fixture) and checked for it.
"""

from __future__ import annotations

import json

import pytest

from reagent.cli import main

OPEN = "<|im_start|>assistant\n"
EMPTY_THINK = OPEN + "<think>\n\n</think>\n\n"
NO_THINKING = '{"enable_thinking": false}'


def run_eval(model, out, *extra: str) -> list[dict]:
    args = ["eval", "--benchmark", "toy", "--limit", "2", "--model", str(model), "--out", str(out),
            "--device", "cpu", "--max-turns", "1", "--max-new-tokens", "3", "--max-tokens", "64",
            "--temperature", "1.0", *extra]
    assert main(args) == 0
    return [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_eval_passes_chat_template_kwargs_to_every_policy_prompt(family_model_dir, tmp_path,
                                                                hf_prompts):
    prompts = hf_prompts
    qwen3 = family_model_dir("qwen3")
    run_eval(qwen3, tmp_path / "default")
    assert len(prompts) == 2 and all(p.endswith(OPEN) and "<think>" not in p for p in prompts)

    prompts.clear()
    records = run_eval(qwen3, tmp_path / "plain", "--chat-template-kwargs", NO_THINKING)
    assert len(prompts) == 2 and all(p.endswith(EMPTY_THINK) for p in prompts)
    assert all(r["trajectory"]["chat_template_kwargs"] == {"enable_thinking": False}
               for r in records)

    prompts.clear()  # Reagent-C: the first attempts and their revisions
    records = run_eval(qwen3, tmp_path / "critique", "--chat-template-kwargs", NO_THINKING,
                       "--critique", "--judge-model", "rules")
    revised = [r for r in records if r["initial"]["revised"]]
    assert revised, "the rules judge scored no first attempt; nothing was revised"
    assert len(prompts) == 2 + len(revised)
    assert all(p.endswith(EMPTY_THINK) for p in prompts)
    assert sum("A reviewer read your attempt" in p for p in prompts) == len(revised)

    prompts.clear()  # Best-of-N: every candidate
    run_eval(qwen3, tmp_path / "bon", "--chat-template-kwargs", NO_THINKING, "--best-of", "2",
             "--judge-model", "rules")
    assert len(prompts) == 4 and all(p.endswith(EMPTY_THINK) for p in prompts)


def test_eval_config_validates_template_options(tmp_path):
    from eval.cli_eval import EvalConfig

    base = dict(benchmark="toy", out=str(tmp_path), model="m")
    with pytest.raises(ValueError, match=r"EvalConfig.tool_format='json'.*auto, hermes, llama3_json"):
        EvalConfig(**base, tool_format="json")
    with pytest.raises(ValueError, match=r"EvalConfig.chat_template_kwargs='enable_thinking'"):
        EvalConfig(**base, chat_template_kwargs="enable_thinking")
    with pytest.raises(ValueError, match=r"EvalConfig.judge_chat_template_kwargs=\[1\]"):
        EvalConfig(**base, judge_chat_template_kwargs=[1])
