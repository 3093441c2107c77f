"""The agent loop token-in/token-out on the real Qwen2.5, Qwen3 and Llama 3.1 tokenizers.

A scripted policy (tests/scripted.py) solves toy ledger tasks with tool calls in each
family's format; the test checks that the trained tokens are exactly the generated ones,
that prompts and tool results are masked out, that re-tokenising the messages
(:func:`tokenize_trajectory`, what SFT data goes through) gives the loop's ids, and that
the batch built from the rollouts drives a real optimiser step of the family's tiny model.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.envs import make_env
from reagent.tokenization import pad_token_id, tokenize_trajectory
from reagent.train.batch import collate
from tests.scripted import ScriptedBackend

CASES = {  # id -> (family, chat_template_kwargs, thinks: False | True | "open")
    "qwen2.5": ("qwen2.5", {}, False),
    "qwen3-thinking": ("qwen3", {}, True),
    "qwen3-no-thinking": ("qwen3", {"enable_thinking": False}, False),
    # QwQ-style: the generation prompt opens "<think>\n", the model writes from inside it
    "qwq-style": ("qwen3", {}, "open"),
    "llama3.1": ("llama3.1", {}, False),
}
QWEN3_GEN_PROMPT = "{{- '<|im_start|>assistant\\n' }}\n    {%- if enable_thinking"
LLAMA = {"turn_marker": "<|start_header_id|>assistant<|end_header_id|>", "end_token": "<|eot_id|>"}


def solver(family: str, thinks: bool):
    """A correct agent in the family's format; Llama makes one call per turn."""
    llama = family.startswith("llama")

    def call(name, **args):
        if llama:
            return json.dumps({"name": name, "parameters": args})
        return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'

    user_header, end = (("user<|end_header_id|>\n\n", "<|eot_id|>") if llama
                        else ("<|im_start|>user\n", "<|im_end|>"))
    # Llama 3.1's template JSON-quotes string tool results ("83"): a string is iterable
    pattern = (r"ipython<\|end_header_id\|>\n\n\"?(-?\d+(?:\.\d+)?)\"?<\|eot_id\|>" if llama
               else r"<tool_response>\n(-?\d+(?:\.\d+)?)\n</tool_response>")

    def script(text, turn):
        names = re.findall(r'"([A-Z])"', text.split(user_header)[1].split(end)[0])
        results = re.findall(pattern, text)
        think = f"<think>\nturn {turn}: {len(results)} results so far.\n</think>\n\n" if thinks else ""
        if thinks == "open":
            think = think.removeprefix("<think>\n")
        calls = [call("lookup", account=n) for n in names]
        lookup_turns = len(names) if llama else 1
        if turn < lookup_turns:
            return think + (calls[turn] if llama else "\n".join(calls))
        if turn == lookup_turns and len(names) > 1:
            op = "-" if "more money" in text else "+"
            return think + call("calc", expr=op.join(results[:len(names)]))
        return think + f"\\boxed{{{results[-1]}}}"

    return script


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_multi_turn_rollout_trains_exactly_the_generated_tokens(family_model_dir, case):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    family, kwargs, thinks = CASES[case]
    model_dir = family_model_dir(family)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if thinks == "open":
        assert QWEN3_GEN_PROMPT in tok.chat_template
        tok.chat_template = tok.chat_template.replace(
            QWEN3_GEN_PROMPT, QWEN3_GEN_PROMPT.replace("assistant\\n", "assistant\\n<think>\\n"))
    env = make_env("toy", seed=3)
    backend = ScriptedBackend(tok, solver(family, thinks), **(LLAMA if family == "llama3.1" else {}))
    generated: list[list[int]] = []
    inner = backend.generate

    def recording(prompts, params):
        out = inner(prompts, params)
        generated.extend(g.token_ids for g in out)
        return out

    backend.generate = recording
    config = AgentConfig(max_turns=6, max_tokens=3000, chat_template_kwargs=kwargs)
    trajs = AgentLoop(backend, env, config).run(specs_for(env, env.tasks("train", 4), 1))
    assert [t.stop_reason for t in trajs] == ["answered"] * 4
    assert all(t.outcome == 1.0 for t in trajs), [t.final_answer for t in trajs]
    assert sum(len(m.tool_calls or []) for t in trajs for m in t.messages) >= 8

    eot = LLAMA["end_token"] if family == "llama3.1" else "<|im_end|>"
    for traj in trajs:
        ids, mask = traj.token_ids, traj.loss_mask
        # masked-in runs are exactly the generated turns, in order
        runs, cur = [], []
        for i, m in zip(ids, mask):
            if m:
                cur.append(i)
            elif cur:
                runs.append(cur)
                cur = []
        if cur:
            runs.append(cur)
        assert len(runs) == traj.extra["turns"]
        assert all(r in generated for r in runs)
        policy = tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=False)
        prompt = tok.decode([i for i, m in zip(ids, mask) if not m], skip_special_tokens=False)
        assert "tool_response" not in policy and "ipython" not in policy
        assert "assistant" not in policy and policy.count(eot) == len(runs)
        results = [m.content for m in traj.messages if m.role == "tool"]
        assert results and all(r in prompt for r in results)
        if thinks is True:  # every turn's thinking stays in context as generated
            assert policy.count("<think>") == len(runs) and "<think>" not in prompt
        if thinks == "open":  # the prompt opens each block, the policy closes it
            assert prompt.count("<think>\n") == len(runs) and "<think>" not in policy
            assert policy.count("</think>") == len(runs)
        if kwargs.get("enable_thinking") is False:
            assert prompt.count("<think>\n\n</think>\n\n") == len(runs)
        # SFT data: re-tokenising the messages gives the loop's ids and mask
        assert tokenize_trajectory(tok, traj.messages, template_kwargs=kwargs) == (ids, mask)

    # a real update on the batch built from the rollouts (Llama 3 has no pad token)
    assert (tok.pad_token_id is None) == (family == "llama3.1")
    short = sorted(trajs, key=lambda t: len(t.token_ids))[:2]  # a 128k-151k vocab: keep it small
    batch = collate(short, torch.ones(len(short)), pad_token_id(tok))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(2):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]
        mask = batch.loss_mask[:, 1:]
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)
