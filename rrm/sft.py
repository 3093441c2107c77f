"""Supervised fine-tuning of an Agent-RRM judge on teacher-annotated examples.

Variant: plain next-token cross-entropy on the judge's output only. Each
:class:`~reagent.records.JudgeExample` becomes the chat ``system`` (the one judge
prompt, :mod:`rrm.prompt`), ``user`` (question + rendered trajectory) and ``assistant``
(``<think>analysis</think> <critique>...</critique> <score>s</score>``) turns; the loss
mask is 1 exactly on the assistant turn's tokens (its end-of-turn token included, so
the judge learns to stop), 0 on the prompt. The loss of a micro-batch is the mean over
its unmasked tokens; gradient accumulation averages micro-batches.

Optimisation: AdamW, linear warm-up then cosine decay to 0
(``transformers.get_cosine_schedule_with_warmup``, stepped once per optimizer step),
gradient clipping at ``max_grad_norm``, bf16 autocast on CUDA only. Everything goes
through ``accelerate``, so the same script runs on one CPU process or under
``accelerate launch --config_file configs/accelerate/rrm_zero{2,3}.yaml`` with DeepSpeed
ZeRO-2/3 on many GPUs.

After every epoch (and once before training) it evaluates on a held-out split --
``val_data`` or a ``val_fraction`` of the questions, so no question is in both -- and
logs the validation loss and the judge-quality report of :mod:`rrm.metrics`, computed
from the model's own greedy verdicts on the split.

Ranks, the metrics log and checkpoints are the shared training runtime's
(:mod:`reagent.train.runtime`: ``out/checkpoints/step-000004/`` with ``model/``,
``state/``, ``trainer_state.json`` and ``COMPLETE``, the same layout as policy SFT and
GRPO); batching and the masked loss are :mod:`reagent.train.data`'s. What stays here is
the judge's own: its example encoder and its evaluation.
A resumed run replays the same batch order from the same position, so it ends where
an uninterrupted run ends. The final model goes to ``out/final``, metrics (``train/``,
``eval/``, ``timing_s/``) to ``out/metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reagent.config import cfg, config_dict, config_hash, save_config
from reagent.trackers import report_to_field, validate_report_to
from reagent.jsonl import load_records
from reagent.records import JudgeExample
from reagent.template_options import chat_template_kwargs_field, check_template_options
from reagent.train.data import (
    LengthGroupedBatches,
    epoch_batches,
    masked_lm_loss,
    pad_collate,
    split_by_group,
)
from reagent.train.runtime import (
    MetricsLogger,
    Ranks,
    generation_model,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    save_model,
)
from rrm.evaluate import LabelledItem, evaluate_judge, labelled_item
from rrm.prompt import sft_messages


@dataclass
class TrainRRMConfig:
    data: str = cfg(None, help="JSONL of judge examples (question, trajectory, analysis, "
                               "critique, score, outcome) from the annotation step")
    model: str = cfg(None, help="local model directory to fine-tune")
    out: str = cfg(None, help="output directory: checkpoints/, final/, metrics.jsonl")
    val_data: str | None = cfg(None, help="held-out JSONL; default: split val_fraction of data")
    val_fraction: float = cfg(0.1, help="share of questions held out when val_data is unset")
    epochs: int = cfg(2, help="passes over the training split")
    lr: float = cfg(1e-5, help="peak learning rate (AdamW)")
    weight_decay: float = cfg(0.0, help="AdamW weight decay")
    warmup_ratio: float = cfg(0.03, help="share of optimizer steps spent warming up linearly")
    batch_size: int = cfg(4, help="micro-batch size per process (sequences)")
    grad_accum: int = cfg(8, help="micro-batches per optimizer step; effective batch = "
                                  "batch_size * grad_accum * processes")
    max_grad_norm: float = cfg(1.0, help="gradient clipping norm; 0 disables")
    group_by_length: bool = cfg(True, help="batch examples of similar length (less padding); "
                                           "off when lengths track the label, as in toy data")
    max_seq_len: int = cfg(8192, help="tokens; longer examples are dropped (and counted)")
    max_chars: int = cfg(24000, help="character budget when rendering message trajectories")
    mixed_precision: str = cfg("auto", help="auto (bf16 on CUDA, none on CPU), bf16, fp16, no")
    gradient_checkpointing: bool = cfg(False, help="trade compute for activation memory")
    seed: int = cfg(0, help="seed for the split, shuffling and initialisation")
    save_every: int = cfg(0, help="also checkpoint every N optimizer steps; 0: per epoch only")
    keep_checkpoints: int = cfg(2, help="checkpoints kept on disk (oldest removed first)")
    resume: bool = cfg(False, help="continue from the latest complete checkpoint in out")
    report_to: list = report_to_field()
    eval_before: bool = cfg(True, help="evaluate once before training, as the baseline")
    eval_max_examples: int = cfg(256, help="held-out examples judged by generation per eval")
    eval_max_new_tokens: int = cfg(1024, help="token limit of the judge's verdict at eval")
    eval_batch_size: int = cfg(16, help="generation batch size at eval")
    log_every: int = cfg(10, help="optimizer steps between train metric lines")
    chat_template_kwargs: dict = chat_template_kwargs_field()  # the judge's own template

    def __post_init__(self):
        self.report_to = validate_report_to(self.report_to)
        check_template_options(self)
        for name in ("data", "model", "out"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required (--{name} ...)")
        if self.val_data is None and not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction={self.val_fraction} must be in (0, 1) when "
                             "val_data is not given")
        for name in ("epochs", "batch_size", "grad_accum", "max_seq_len", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.mixed_precision not in ("auto", "bf16", "fp16", "no"):
            raise ValueError(f"mixed_precision={self.mixed_precision!r}: use auto, bf16, fp16 or no")


def run_hash(config: TrainRRMConfig) -> str:
    """The config hash a checkpoint records; ``resume`` is not part of what was trained."""
    return config_hash(dataclasses.replace(config, resume=False))


# ----------------------------------------------------------------------------- data


def encode_examples(tokenizer: Any, examples: list[JudgeExample], max_seq_len: int,
                    max_chars: int, template_kwargs: dict | None = None,
                    ) -> tuple[list[tuple[list[int], list[int]]], int]:
    """(input_ids, loss_mask) per example and how many were dropped as too long.

    ``template_kwargs`` go to the chat template, as they will when the judge is asked
    (:class:`rrm.judge.LocalJudge`), so training and judging see the same prompt."""
    from reagent.tokenization import tokenize_trajectory

    out, dropped = [], 0
    for ex in examples:
        ids, mask = tokenize_trajectory(tokenizer, sft_messages(ex, max_chars=max_chars),
                                        template_kwargs=template_kwargs)
        if len(ids) > max_seq_len or not any(mask):
            dropped += 1
            continue
        out.append((list(ids), list(mask)))
    return out, dropped


def batch_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Forward + :func:`masked_lm_loss`, computing logits only where the verdict can be.

    The judge prompt (system prompt + trajectory) is most of every sequence, and logits
    over the whole vocabulary at every prompt position would be most of the memory
    (8k tokens x 152k vocabulary x 4 bytes = 5 GB a sequence for Qwen). So the model is
    asked for the last ``keep`` positions only, from the earliest target token in the
    batch on (``logits_to_keep``; models without it compute all positions).
    """
    labels = batch["labels"]
    width = labels.shape[1]
    targets = (labels != -100).any(dim=0).nonzero()
    first = int(targets[0]) if len(targets) else width - 1
    keep = width - max(first - 1, 0)  # position first-1 predicts the first target token
    kwargs = {"logits_to_keep": keep} if _takes_logits_to_keep(model) else {}
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
    logits = out.logits
    return masked_lm_loss(logits, labels[:, width - logits.shape[1]:])


def _takes_logits_to_keep(model: Any) -> bool:
    import inspect

    inner = getattr(model, "module", model)  # DDP / DeepSpeed engine
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


# ------------------------------------------------------------------------- evaluation


@torch.no_grad()
def validation_loss(ranks: Ranks, model: Any, loader: Any, device: Any) -> float:
    """Token-mean loss over the whole held-out split, summed across processes."""
    model.eval()
    total = torch.zeros(2, device=device, dtype=torch.float64)
    for batch in loader:
        loss, n = batch_loss(model, batch)
        total += torch.tensor([loss.item() * n, n], device=device, dtype=torch.float64)
    total = ranks.sum(total)
    model.train()
    return (total[0] / total[1].clamp(min=1)).item()


def judge_quality(accelerator: Any, ranks: Ranks, model: Any, tokenizer: Any,
                  items: list[LabelledItem], config: TrainRRMConfig) -> dict:
    """The judge-quality report from the model's greedy verdicts on held-out items.

    Each process judges its share; every process gets the same report.
    """
    from reagent.records import Judgment
    from rrm.evaluate import report
    from rrm.judge import LocalJudge

    per_rank = math.ceil(len(items) / ranks.world)
    mine = items[ranks.rank * per_rank:(ranks.rank + 1) * per_rank]
    pad = per_rank - len(mine)  # same number of generation calls on every rank (ZeRO-3)
    with generation_model(accelerator, model) as m:
        judge = LocalJudge(m, tokenizer, batch_size=config.eval_batch_size,
                           model_name="eval", max_new_tokens=config.eval_max_new_tokens,
                           retry_max_new_tokens=config.eval_max_new_tokens,
                           max_chars=config.max_chars,
                           # the judge-RL config (rrm/rl.py) shares this evaluation and has
                           # no template options (yet): its judge renders with none
                           template_kwargs=getattr(config, "chat_template_kwargs", None))
        judge.backend.sync_ranks = ranks.world > 1
        _, judgments = evaluate_judge(judge, mine + items[:1] * pad,
                                      batch_size=config.eval_batch_size)
    model.train()
    gathered = ranks.gather([j.to_dict() for j in judgments[:len(mine)]])
    return report(items, [Judgment.from_dict(j) for j in gathered])


# --------------------------------------------------------------------------- training


def train(config: TrainRRMConfig) -> dict:
    """Run SFT; returns the last evaluation's metrics."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup

    mp = config.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum, mixed_precision=mp)
    ranks = Ranks(accelerator)
    main = ranks.main
    set_seed(config.seed)
    out = Path(config.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")

    # data: JudgeExample -> (ids, mask), split by question
    examples = load_records(config.data, JudgeExample, skip_bad=True)
    if config.val_data:
        train_ex, val_ex = examples, load_records(config.val_data, JudgeExample, skip_bad=True)
    else:
        # every question's examples on one side (pairwise accuracy needs both
        # trajectories of a question, and the judge must not have seen the question)
        train_ex, val_ex = split_by_group(examples, lambda e: e.question, config.val_fraction,
                                          config.seed)
    if not train_ex or not val_ex:
        raise ValueError(f"need training and held-out examples; got {len(train_ex)} and "
                         f"{len(val_ex)} (from {config.data})")
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_set, dropped = encode_examples(tokenizer, train_ex, config.max_seq_len, config.max_chars,
                                         config.chat_template_kwargs)
    val_set, val_dropped = encode_examples(tokenizer, val_ex, config.max_seq_len, config.max_chars,
                                           config.chat_template_kwargs)
    if not train_set:
        raise ValueError(f"every training example is longer than max_seq_len={config.max_seq_len}")
    eval_items = [labelled_item(e) for e in val_ex[:config.eval_max_examples]]

    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    sampler = LengthGroupedBatches([len(x[0]) for x in train_set], config.batch_size, config.seed,
                                   group=config.group_by_length)
    train_loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler,
                                               collate_fn=pad_collate(tokenizer.pad_token_id))
    val_loader = torch.utils.data.DataLoader(
        val_set, batch_sampler=LengthGroupedBatches([len(x[0]) for x in val_set],
                                                    config.batch_size, 0, shuffle=False),
        collate_fn=pad_collate(tokenizer.pad_token_id))
    optimizer = base_optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                                   weight_decay=config.weight_decay)
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None:  # DeepSpeed cannot read the micro-batch size off a batch sampler
        ds = plugin.deepspeed_config
        gas = ds.get("gradient_accumulation_steps")
        gas = gas if isinstance(gas, int) else config.grad_accum
        ds.update(gradient_accumulation_steps=gas, train_micro_batch_size_per_gpu=config.batch_size,
                  train_batch_size=config.batch_size * gas * ranks.world)
    model, optimizer, train_loader, val_loader = accelerator.prepare(
        model, optimizer, train_loader, val_loader)
    grad_accum = accelerator.gradient_accumulation_steps  # a DeepSpeed config may override it
    if grad_accum != config.grad_accum and main:
        print(f"train-rrm: gradient accumulation is {grad_accum} (from the DeepSpeed config), "
              f"not grad_accum={config.grad_accum}; leave it out of the DeepSpeed config")
    steps_per_epoch = math.ceil(len(train_loader) / grad_accum)
    total_steps = steps_per_epoch * config.epochs
    # Not prepared: stepped by hand once per optimizer step on every backend.
    # On the torch optimizer itself: DeepSpeed's ZeRO optimizer reads its param groups' lr.
    scheduler = get_cosine_schedule_with_warmup(
        base_optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)

    step, epoch, skip = 0, 0, 0
    bar = tqdm(total=total_steps, initial=0, desc="train-rrm", unit="step", disable=not main)
    log = MetricsLogger(out, main, echo=bar.write, report_to=config.report_to, run_name=out.name,
                        config=config_dict(config))
    if config.resume and (ckpt := latest_checkpoint(out)) is not None:
        state = load_checkpoint(accelerator, ckpt)
        step, epoch, skip = state["step"], state["epoch"], state["batches_in_epoch"]
        scheduler.load_state_dict(state["scheduler"])
        log.truncate_after(step)
        bar.update(step)
        if main:
            changed = state.get("config_hash") not in (None, run_hash(config))
            print(f"resumed from {ckpt} (step {step}, epoch {epoch}, batch {skip})"
                  + ("; the config differs from the checkpoint's" if changed else ""))

    if step == 0:
        log.log(step, {"run/config_hash": config_hash(config), "run/model": config.model,
                 "run/config": config_dict(config), "data/train": len(train_set),
                 "data/val": len(val_set), "data/dropped_too_long": dropped + val_dropped,
                 "data/steps_per_epoch": steps_per_epoch})

    def evaluate(tag: str) -> dict:
        t0 = time.time()
        metrics = {"eval/loss": validation_loss(ranks, model, val_loader, accelerator.device)}
        quality = judge_quality(accelerator, ranks, model, tokenizer, eval_items, config)
        metrics.update({f"eval/{k}": v for k, v in quality.items()})
        metrics["eval/when"] = tag
        metrics["timing_s/eval"] = time.time() - t0
        log.log(step, metrics)
        return metrics

    last = evaluate("before") if config.eval_before and step == 0 else {}
    model.train()
    while epoch < config.epochs:
        batch_idx, window, t0 = skip, [], time.time()
        for batch in epoch_batches(accelerator, train_loader, sampler, epoch, skip):
            with accelerator.accumulate(model):
                loss, n_tokens = batch_loss(model, batch)
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(),
                                                            config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            batch_idx += 1
            window.append((loss.item(), n_tokens))
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            bar.update(1)
            if step % config.log_every == 0 or step == total_steps:
                # token-weighted over the window and over every process
                sums = ranks.sum(torch.tensor([sum(loss * n for loss, n in window),
                                               sum(n for _, n in window)],
                                              dtype=torch.float64, device=accelerator.device))
                tokens = int(sums[1].item())
                log.log(step, {"train/loss": sums[0].item() / max(tokens, 1),
                         "train/lr": scheduler.get_last_lr()[0], "train/epoch": epoch,
                         "train/grad_norm": float(grad_norm) if grad_norm is not None else None,
                         "train/target_tokens": tokens,
                         "timing_s/step": (time.time() - t0) / max(len(window), 1)
                         * grad_accum})
                window, t0 = [], time.time()
            if config.save_every and step % config.save_every == 0:
                save_checkpoint(accelerator, ranks, model, tokenizer, out, step,
                                {"step": step, "epoch": epoch, "batches_in_epoch": batch_idx,
                                 "scheduler": scheduler.state_dict(),
                                 "config_hash": run_hash(config)}, config.keep_checkpoints)
        epoch, skip = epoch + 1, 0
        last = evaluate(f"epoch {epoch}")
        save_checkpoint(accelerator, ranks, model, tokenizer, out, step,
                        {"step": step, "epoch": epoch, "batches_in_epoch": 0,
                         "scheduler": scheduler.state_dict(), "eval": last,
                         "config_hash": run_hash(config)},
                        config.keep_checkpoints)
    save_model(accelerator, ranks, model, tokenizer, out / "final")
    if main:
        (out / "final" / "reagent_train_rrm.json").write_text(json.dumps(
            {"base_model": config.model, "config_hash": config_hash(config), "step": step,
             "eval": last}, indent=2, default=str))
    log.close()
    bar.close()
    accelerator.end_training()
    return last
