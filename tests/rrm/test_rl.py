"""Judge RL (``reagent train-rrm-rl``) on a tiny judge: real generation, real optimiser steps.

The judge is first taught the verdict format by SFT (a few epochs at a high learning
rate, so that some but not all of its sampled verdicts are well formed: GRPO needs
groups whose rewards differ).
"""

from __future__ import annotations

import json

import pytest
import torch

from reagent.jsonl import write_records
from reagent.train.runtime import latest_checkpoint
from rrm.rl import TrainRRMRLConfig, build_prompts, pad_batch, step_prompts, train
from tests.rrm.conftest import toy_judge_examples


@pytest.fixture(scope="module")
def judge_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl_data")
    data = root / "judge.jsonl"
    write_records(data, toy_judge_examples(48, seed=1))
    return data


@pytest.fixture(scope="module")
def sft_judge(judge_model_dir, judge_data, tmp_path_factory):
    """The nano judge after a short SFT: the format partly learned."""
    from rrm.sft import TrainRRMConfig
    from rrm.sft import train as sft_train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("rl_sft")
    sft_train(TrainRRMConfig(data=str(judge_data), model=str(judge_model_dir), out=str(out),
                             val_fraction=0.15, epochs=SFT_EPOCHS, lr=1e-2, warmup_ratio=0.1,
                             batch_size=8, grad_accum=1, group_by_length=False, log_every=5,
                             eval_before=False, eval_max_examples=4, eval_max_new_tokens=8))
    return out / "final"


SFT_EPOCHS = 10


def _rows(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_config_errors_name_the_field(tmp_path):
    base = dict(data="d.jsonl", model="m", out=str(tmp_path))
    for kwargs, match in [({"group_size": 1}, "group_size=1"),
                          ({"temperature": 0.0}, "temperature=0.0"),
                          ({"advantage": "ppo"}, "advantage='ppo'; valid: grpo, dr_grpo"),
                          ({"loss_agg": "sum"}, "loss_agg='sum'"),
                          ({"w_format": 0.0, "w_score": 0.0}, "w_format=0.0, w_score=0.0"),
                          ({"steps": 0}, "steps=0")]:
        with pytest.raises(ValueError, match=match):
            TrainRRMRLConfig(**base, **kwargs)
    with pytest.raises(ValueError, match="data is required"):
        TrainRRMRLConfig(model="m", out="o")


def test_prompt_is_the_judge_prompt_and_unusable_examples_are_counted(judge_model_dir):
    from transformers import AutoTokenizer

    from reagent.tokenization import encode_prompt
    from rrm.prompt import build_judge_messages

    tok = AutoTokenizer.from_pretrained(judge_model_dir)
    examples = toy_judge_examples(3, seed=0)
    examples[0].score = None  # no teacher score: its reward cannot be computed
    config = TrainRRMRLConfig(data="d", model="m", out="o", w_score=1.0)
    prompts, skipped = build_prompts(tok, examples, config)
    assert skipped["no_reference"] == 1 and len(prompts) == len(examples) - 1
    # exactly what the judge sees when scoring (and SFT trains on, before the verdict)
    assert prompts[0].ids == encode_prompt(tok, build_judge_messages(examples[1]))
    # without the score term the same example is usable
    prompts, skipped = build_prompts(tok, examples, TrainRRMRLConfig(
        data="d", model="m", out="o", w_score=0.0, w_outcome=1.0))
    assert not skipped and len(prompts) == len(examples)


def test_step_prompts_cover_every_example_each_pass_and_are_positional():
    config = TrainRRMRLConfig(data="d", model="m", out="o", prompts_per_step=3, seed=4)
    first_pass = step_prompts(7, config, 0) + step_prompts(7, config, 3) + [step_prompts(7, config, 6)[0]]
    assert sorted(first_pass) == list(range(7))
    assert step_prompts(7, config, 5) == step_prompts(7, config, 5)  # a resume replays it


def test_pad_batch_masks_the_prompt():
    ids, attn, mask = pad_batch([([5, 6, 7, 8], 2), ([1, 2, 3], 1)], pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 8], [1, 2, 3, 0]]
    assert attn.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert mask.tolist() == [[0, 0, 1, 1], [0, 1, 1, 0]]


def _config(judge_data, model, out, **kw):
    base = dict(data=str(judge_data), model=str(model), out=str(out), val_fraction=0.15,
                prompts_per_step=4, group_size=4, max_new_tokens=48, temperature=1.0,
                micro_batch_size=8, eval_max_examples=8, eval_max_new_tokens=48,
                eval_batch_size=8, w_format=1.0, w_score=1.0, seed=0)
    return TrainRRMRLConfig(**{**base, **kw})


@pytest.mark.slow  # the SFT judge fixture takes ~100 SFT steps
def test_two_steps_change_every_parameter_and_resume_matches(sft_judge, judge_data, tmp_path):
    """Through the CLI: 2 steps at a high lr move every parameter; a run stopped after step 1
    and resumed ends with the same weights as the uninterrupted one."""
    from transformers import AutoModelForCausalLM

    from reagent.cli import main as cli

    args = ["train-rrm-rl", "--data", str(judge_data), "--model", str(sft_judge),
            "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "48",
            "--lr", "1e-2", "--eval-max-examples", "4", "--eval-max-new-tokens", "16",
            "--no-eval-before", "--save-every", "1", "--seed", "0"]
    full = tmp_path / "full"
    assert cli(args + ["--out", str(full), "--steps", "2"]) == 0
    rows = _rows(full)
    steps = [r for r in rows if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert sum(r["batch/trained_sequences"] for r in steps) > 0, steps  # there was signal
    assert any(r.get("train/loss") is not None for r in steps)
    assert rows[-1]["eval/when"] == "end" and "eval/format_valid_rate" in rows[-1]

    base = AutoModelForCausalLM.from_pretrained(sft_judge)
    tuned = dict(AutoModelForCausalLM.from_pretrained(full / "final").named_parameters())
    unchanged = [n for n, p in base.named_parameters() if p.requires_grad and torch.equal(p, tuned[n])]
    assert not unchanged, unchanged
    assert latest_checkpoint(full).name == "step-000002"

    part = tmp_path / "part"
    assert cli(args + ["--out", str(part), "--steps", "1"]) == 0
    assert cli(args + ["--out", str(part), "--steps", "2", "--resume"]) == 0
    resumed = dict(AutoModelForCausalLM.from_pretrained(part / "final").named_parameters())
    differ = [n for n, p in tuned.items() if not torch.allclose(p, resumed[n], atol=1e-6)]
    assert not differ, differ
    assert [r["step"] for r in _rows(part) if "reward/mean" in r] == [1, 2]


@pytest.mark.slow
def test_sft_then_rl_raises_the_format_reward(sft_judge, judge_data, tmp_path):
    """Format reward alone (with partial credit, so a broken verdict closer to the format ranks
    higher): the sampled verdicts of the last steps are better formed than those of the first."""
    out = tmp_path / "rl"
    train(_config(judge_data, sft_judge, out, steps=RL_STEPS, lr=1e-3, w_format=1.0, w_score=0.0,
                  format_partial=0.5, prompts_per_step=8, group_size=4, micro_batch_size=32,
                  eval_before=True))
    rows = _rows(out)
    steps = [r for r in rows if "reward/format" in r]
    evals = [r for r in rows if "eval/format_valid_rate" in r]
    first = sum(r["reward/format"] for r in steps[:4]) / 4
    last = sum(r["reward/format"] for r in steps[-4:]) / 4
    print({"sampled format first/last": (first, last),
           "greedy format before/after": (evals[0]["eval/format_valid_rate"],
                                          evals[-1]["eval/format_valid_rate"])})
    assert len(steps) == RL_STEPS and last > first + 0.05, (first, last)


RL_STEPS = 16
