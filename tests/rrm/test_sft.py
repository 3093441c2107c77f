"""Judge SFT on a rule-annotated toy set: loss only on the verdict, and training helps."""

import json

import pytest
import torch

from reagent.jsonl import write_records
from rrm.prompt import format_judgment
from reagent.train.data import masked_lm_loss, pad_collate, split_by_group
from reagent.train.runtime import latest_checkpoint
from rrm.sft import TrainRRMConfig, batch_loss, encode_examples, train
from tests.train.resume_check import check_mid_epoch_resume

from .conftest import toy_judge_examples


def test_loss_mask_covers_exactly_the_verdict(judge_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(judge_model_dir)
    [ex] = toy_judge_examples(1)[:1]
    [(ids, mask)], dropped = encode_examples(tok, [ex], max_seq_len=4096, max_chars=24000)
    assert dropped == 0
    target = tok.decode([i for i, m in zip(ids, mask) if m])
    assert target == format_judgment(ex.analysis, ex.critique, ex.score) + "<|im_end|>"
    assert "Question:" in tok.decode(ids) and "Question:" not in target
    assert encode_examples(tok, [ex], max_seq_len=10, max_chars=24000) == ([], 1)


def test_train_rrm_encodes_with_chat_template_kwargs(family_model_dir):
    """Qwen3 with enable_thinking false: the prompt (masked out) ends with the empty think
    block the template adds, exactly as the judge is prompted; the target is unchanged."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(family_model_dir("qwen3"))
    [ex] = toy_judge_examples(1)[:1]
    verdict = format_judgment(ex.analysis, ex.critique, ex.score) + "<|im_end|>"
    prompts = []
    for kwargs in (None, {"enable_thinking": False}):
        [(ids, mask)], _ = encode_examples(tok, [ex], 8192, 24000, kwargs)
        prompts.append(tok.decode([i for i, m in zip(ids, mask) if not m]))
        assert tok.decode([i for i, m in zip(ids, mask) if m]) == verdict
    assert prompts[0].endswith("<|im_start|>assistant\n")
    assert prompts[1] == prompts[0] + "<think>\n\n</think>\n\n"


def test_train_rrm_hands_chat_template_kwargs_to_encoding_and_eval_judge(judge_model_dir, tmp_path,
                                                                         monkeypatch):
    import rrm.judge
    import rrm.sft

    seen = {"encode": [], "judge": []}
    real_encode, real_judge = rrm.sft.encode_examples, rrm.judge.LocalJudge.__init__

    def encode(*args, **kwargs):
        seen["encode"].append(args[4] if len(args) > 4 else kwargs.get("template_kwargs"))
        return real_encode(*args, **kwargs)

    def judge_init(self, *args, **kwargs):
        real_judge(self, *args, **kwargs)
        seen["judge"].append(self.template_kwargs)

    monkeypatch.setattr(rrm.sft, "encode_examples", encode)
    monkeypatch.setattr(rrm.judge.LocalJudge, "__init__", judge_init)
    data = tmp_path / "judge.jsonl"
    write_records(data, toy_judge_examples(4, seed=3))
    kwargs = {"enable_thinking": False, "custom_flag": 1}
    train(TrainRRMConfig(data=str(data), model=str(judge_model_dir), out=str(tmp_path / "run"),
                         val_fraction=0.25, epochs=1, batch_size=4, grad_accum=1,
                         eval_before=False, eval_max_examples=1, eval_max_new_tokens=4,
                         chat_template_kwargs=kwargs, report_to=[]))
    assert seen["encode"] == [kwargs, kwargs] and seen["judge"] == [kwargs]


def test_masked_loss_hand_checked():
    # Two positions predict label 1; uniform logits over 4 classes -> loss ln 4 each.
    logits = torch.zeros(1, 4, 4)
    labels = torch.tensor([[-100, 1, 1, -100]])
    loss, n = masked_lm_loss(logits, labels)
    assert n == 2 and loss.item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
    batch = pad_collate(0)([([5, 6, 7], [0, 1, 1]), ([5], [0])])
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_batch_loss_on_kept_logits_equals_full_loss(judge_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(judge_model_dir)
    model = AutoModelForCausalLM.from_pretrained(judge_model_dir)
    encoded, _ = encode_examples(tok, toy_judge_examples(2), 4096, 24000)
    batch = pad_collate(tok.pad_token_id)(encoded)
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected, n = masked_lm_loss(full, batch["labels"])
    got, m = batch_loss(model, batch)
    assert m == n and got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_split_keeps_questions_apart():
    exs = toy_judge_examples(10)
    train_ex, val_ex = split_by_group(exs, lambda e: e.question, 0.2, seed=0)
    assert {e.question for e in train_ex}.isdisjoint({e.question for e in val_ex})
    assert len(val_ex) == 4 and len(train_ex) == 16  # 2 of 10 questions, two examples each


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="data is required"):
        TrainRRMConfig(model="m", out="o")
    with pytest.raises(ValueError, match="val_fraction=1.5"):
        TrainRRMConfig(data="d", model="m", out="o", val_fraction=1.5)
    with pytest.raises(ValueError, match=r"TrainRRMConfig.chat_template_kwargs='enable_thinking=0'"):
        TrainRRMConfig(data="d", model="m", out="o", chat_template_kwargs="enable_thinking=0")


@pytest.mark.slow
def test_sft_lowers_val_loss_and_raises_format_validity(judge_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    data = tmp_path / "judge.jsonl"
    write_records(data, toy_judge_examples(96, seed=1))
    out = tmp_path / "run"
    # High LR on a nano model: the format is learned in ~60 steps. Toy lengths track the
    # flaw, so length grouping would make batches of one verdict: off here.
    config = TrainRRMConfig(data=str(data), model=str(judge_model_dir), out=str(out),
                            val_fraction=0.15, epochs=4, lr=1e-2, warmup_ratio=0.1,
                            batch_size=8, grad_accum=1, group_by_length=False, log_every=5,
                            eval_max_examples=16, eval_max_new_tokens=64, eval_batch_size=16,
                            keep_checkpoints=1)
    train(config)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/loss" in r]
    before, after = evals[0], evals[-1]
    assert before["eval/when"] == "before" and len(evals) == 1 + config.epochs
    assert any("train/loss" in r for r in rows)
    print({k: (before[k], after[k]) for k in ("eval/loss", "eval/format_valid_rate",
                                              "eval/auroc", "eval/score_mae",
                                              "eval/pairwise_accuracy")})
    assert after["eval/loss"] < before["eval/loss"]
    assert after["eval/format_valid_rate"] > before["eval/format_valid_rate"]
    # every parameter moved, and the final model is a loadable HF directory
    base = AutoModelForCausalLM.from_pretrained(judge_model_dir)
    tuned = dict(AutoModelForCausalLM.from_pretrained(out / "final").named_parameters())
    unchanged = [n for n, p in base.named_parameters() if torch.equal(p, tuned[n])]
    assert not unchanged, unchanged
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and (ckpt / "COMPLETE").exists() and (ckpt / "model").is_dir()
    assert len(list((out / "checkpoints").iterdir())) == 1  # keep_checkpoints=1


@pytest.mark.slow
def test_resume_mid_epoch_reproduces_the_uninterrupted_run(judge_model_dir, tmp_path):
    data = tmp_path / "judge.jsonl"
    write_records(data, toy_judge_examples(8, seed=2))  # 12 train examples, 4 held out
    out = tmp_path / "run"
    kwargs = {"data": str(data), "model": str(judge_model_dir), "out": str(out),
              "val_fraction": 0.25, "epochs": 2, "lr": 1e-3, "batch_size": 4, "grad_accum": 2,
              "save_every": 1, "keep_checkpoints": 100, "eval_before": False,
              "eval_max_examples": 2, "eval_max_new_tokens": 4, "log_every": 1}
    # killed after its first optimizer step: mid-epoch (3 batches of 4 per epoch, 2 per step)
    check_mid_epoch_resume(lambda resume: train(TrainRRMConfig(**kwargs, resume=resume)), out,
                           batches_at_step_1=2)

