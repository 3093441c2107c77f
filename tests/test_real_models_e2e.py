"""``reagent train`` end to end on a tiny Qwen3 model with the real Qwen3 tokenizer and template.

The policy is the family's tiny random model with one change so that it finishes
episodes: every token embedding carries a constant feature and ``<|im_end|>``'s is
raised, so the (tied) output layer ends a turn every ten or so tokens. Some turns
then run out of tokens; with ``truncated=penalise`` groups mix finished (0) and
truncated (-1) episodes, so GRPO groups carry signal and every step is a real update
(three groups per step: the chance that all are degenerate is small, and sampling is
seeded). Reagent-U's judge is a scripted OpenAI-compatible
server that answers the way a reasoning parser splits a verdict.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from reagent.cli import main
from rrm.prompt import format_judgment
from tests.data_gen.conftest import ScriptedServer
from tests.scripted import split_reasoning

REPO = Path(__file__).resolve().parents[1]
SMALL = ["group_size=4", "max_turns=2", "max_tokens=48", "max_new_tokens=16",
         "micro_batch_size=2", "truncated=penalise", "truncation_penalty=-1", "train_tasks=20",
         "device=cpu", "save_rollouts=true", "create_missing_model=false"]


def eos_leaning_copy(src: Path, dst: Path, end_token: str = "<|im_end|>", boost: float = 1.7) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(src, dst)
    tok = AutoTokenizer.from_pretrained(dst)
    model = AutoModelForCausalLM.from_pretrained(dst)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[:, 0] = 1.0
        emb[tok.convert_tokens_to_ids(end_token), 0] += boost
    model.save_pretrained(dst)
    return dst


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def rollouts(out: Path) -> list[dict]:
    return [json.loads(line) for f in sorted((out / "rollouts").glob("*.jsonl"))
            for line in f.read_text().splitlines() if line.strip()]


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def changed(before: dict, after: dict) -> list[str]:
    return [k for k in before if not torch.equal(before[k], after[k])]


@pytest.mark.slow
def test_grpo_and_reagent_u_train_a_tiny_qwen3(family_model_dir, tmp_path):
    from transformers import AutoTokenizer

    policy = eos_leaning_copy(family_model_dir("qwen3"), tmp_path / "policy")
    tok = AutoTokenizer.from_pretrained(policy)
    start = weights(policy)

    out = tmp_path / "grpo"
    assert main(["train", "variant=grpo", f"model={policy}", f"output_dir={out}", "max_steps=2",
                 "save_every=2", "lr=1e-2", "prompts_per_step=3", *SMALL]) == 0
    logged = metrics(out)
    assert [m["step"] for m in logged] == [1, 2]
    assert all(m["groups/dropped_frac"] < 1.0 and m["actor/trajectories"] > 0 for m in logged)
    assert changed(start, weights(out / "checkpoints" / "step-000002" / "model")) == list(start)
    trajs = rollouts(out)
    assert any(t["stop_reason"] == "answered" for t in trajs)
    for t in trajs:  # thinking on (the default): the prompt ends with the bare header
        prompt = tok.decode(t["token_ids"][:t["prompt_length"]])
        assert prompt.endswith("<|im_start|>assistant\n") and "<think>" not in prompt

    with ScriptedServer(lambda body: split_reasoning(format_judgment(
            "the agent answered", "- look the balance up first",
            (len(body["messages"][-1]["content"]) % 10) / 10))) as judge:
        out_u = tmp_path / "reagent_u"
        assert main(["train", "--config", str(REPO / "configs" / "toy_reagent_u.yaml"),
                     f"model={policy}", f"output_dir={out_u}", f"judge_base_url={judge.url}",
                     "max_steps=1", "save_every=1", "chat_template_kwargs={enable_thinking: false}",
                     "prompts_per_step=2", *SMALL]) == 0
    (m,) = metrics(out_u)
    assert m["judge/failed"] == 0 and m["judge/judged"] > 0 and m["groups/dropped_frac"] < 1.0
    assert changed(start, weights(out_u / "checkpoints" / "step-000001" / "model")) == list(start)
    trajs = rollouts(out_u)
    assert {t["stage"] for t in trajs} == {"initial", "revised"}
    assert all(t["judge"]["status"] == "ok" for t in trajs if t["stage"] == "initial")
    for t in trajs:  # enable_thinking=false reached the template: the empty think block
        prompt = tok.decode(t["token_ids"][:t["prompt_length"]])
        assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.slow
def test_grpo_updates_a_tiny_llama_without_a_pad_token(family_model_dir, tmp_path):
    """Llama 3 has no pad token: collate used to fail with fill_value None on the first update."""
    from transformers import AutoTokenizer

    policy = eos_leaning_copy(family_model_dir("llama3.1"), tmp_path / "policy", "<|eot_id|>", 1.5)
    tok = AutoTokenizer.from_pretrained(policy)
    assert tok.pad_token is None
    start = weights(policy)
    out = tmp_path / "grpo"
    assert main(["train", "variant=grpo", f"model={policy}", f"output_dir={out}", "max_steps=1",
                 "save_every=1", "lr=1e-2", "prompts_per_step=3", *SMALL]) == 0
    (m,) = metrics(out)
    assert m["actor/trajectories"] > 0 and m["groups/dropped_frac"] < 1.0
    assert changed(start, weights(out / "checkpoints" / "step-000001" / "model")) == list(start)
    for t in rollouts(out):
        assert tok.decode(t["token_ids"][:t["prompt_length"]]).endswith(
            "<|start_header_id|>assistant<|end_header_id|>\n\n")
