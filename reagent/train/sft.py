"""``reagent sft``: supervised warm-up of a policy on agent trajectories.

Variant: next-token cross-entropy on the policy's own tokens only — each assistant
turn's text and tool calls and its end-of-turn token, as rendered by the model's chat
template (:func:`reagent.tokenization.tokenize_trajectory`); system, user and tool
tokens are masked. The loss of a micro-batch is the mean over its target tokens.
AdamW, linear warm-up then cosine decay, clipping, bf16 on CUDA only, accelerate for
one or many processes. Batches group similar lengths (the toy demos vary 3x in
length, and padding is wasted compute). Held-out trajectories (by task id) give a
validation loss at every evaluation. Ranks, metrics and checkpoints are the shared
runtime's (:mod:`reagent.train.runtime`, the layout judge SFT and GRPO write too); a
resumed run continues at the exact batch of the interrupted epoch. The final model
(gathered under ZeRO-3) goes to ``out/final``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from reagent.config import cfg, config_dict, config_hash, save_config
from reagent.trackers import report_to_field, validate_report_to
from reagent.jsonl import load_records
from reagent.records import Trajectory
from reagent.template_options import check_template_options, chat_template_kwargs_field, tool_format_field
from reagent.tokenization import pad_token_id, tokenize_trajectory
from reagent.train.data import LengthGroupedBatches, epoch_batches, masked_lm_loss, pad_collate, split_by_group
from reagent.train.runtime import (
    MetricsLogger,
    Ranks,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    save_model,
)


@dataclass
class SFTConfig:
    data: str = cfg(None, help="trajectory JSONL to imitate (e.g. `reagent demos` output)")
    model: str = cfg(None, help="local model directory to fine-tune")
    out: str = cfg(None, help="output directory: checkpoints/, final/, metrics.jsonl")
    only_correct: bool = cfg(False, help="train only on trajectories with outcome 1")
    val_fraction: float = cfg(0.05, help="share of task ids held out for the validation loss")
    max_steps: int = cfg(500, help="optimizer steps")
    batch_size: int = cfg(64, help="trajectories per micro-batch")
    grad_accum: int = cfg(1, help="micro-batches per optimizer step")
    lr: float = cfg(3e-3, help="peak learning rate (AdamW); tiny models from scratch like it high")
    weight_decay: float = cfg(0.0, help="AdamW weight decay")
    warmup_ratio: float = cfg(0.05, help="share of steps of linear warm-up")
    schedule: str = cfg("cosine", help="cosine (decay to 0) | constant after warm-up")
    max_grad_norm: float = cfg(1.0, help="gradient clipping")
    max_seq_len: int = cfg(1024, help="longer trajectories are dropped (counted)")
    eval_every: int = cfg(100, help="validation loss every N steps (and at the end)")
    save_every: int = cfg(0, help="checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = cfg(1, help="complete checkpoints kept")
    seed: int = cfg(0, help="seed of the split, batches and initialisation")
    chat_template_kwargs: dict = chat_template_kwargs_field()
    tool_format: str = tool_format_field()
    resume: bool = cfg(False, help="continue from the last complete checkpoint in out")
    report_to: list = report_to_field()

    def __post_init__(self):
        self.report_to = validate_report_to(self.report_to)
        check_template_options(self)
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule={self.schedule!r}: use cosine or constant")
        missing = [k for k in ("data", "model", "out") if not getattr(self, k)]
        if missing:
            raise ValueError(f"sft needs {', '.join('--' + k for k in missing)}")


def encode(tokenizer, trajs: list[Trajectory], max_len: int, template_kwargs: dict | None = None,
           tool_format: str | None = None) -> tuple[list[tuple[list, list]], int]:
    out, dropped = [], 0
    for t in trajs:
        ids, mask = tokenize_trajectory(tokenizer, t.messages, template_kwargs=template_kwargs,
                                        tool_format=tool_format)
        if len(ids) > max_len or not any(mask):
            dropped += 1
            continue
        out.append((ids, mask))
    return out, dropped


def _loss(acc, model, batch: dict) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over target tokens.

    Single-process fast path: run the decoder, then the LM head only at target
    positions (a tiny model spends a third of its compute in the LM head and softmax,
    and most positions are prompt or tool tokens). Wrapped models (DDP, DeepSpeed) must
    be called as a whole so their gradient hooks run, so they take the plain path.
    """
    labels = batch["labels"]
    if acc.num_processes > 1 or acc.distributed_type.value == "DEEPSPEED":
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return masked_lm_loss(logits, labels)
    inner = acc.unwrap_model(model)
    hidden = inner.get_decoder()(input_ids=batch["input_ids"],
                                 attention_mask=batch["attention_mask"]).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = inner.lm_head(hidden[:, :-1][keep]).float()
    n = int(keep.sum())
    return torch.nn.functional.cross_entropy(logits, targets[keep], reduction="sum") / max(n, 1), n


@torch.no_grad()
def validation_loss(acc, model, batches: list[dict]) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        loss, n = _loss(acc, model, batch)
        total, count = total + loss.item() * n, count + n
    model.train()
    return total / max(count, 1)


def train(c: SFTConfig) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
    )

    cuda = torch.cuda.is_available()
    acc = Accelerator(gradient_accumulation_steps=c.grad_accum, mixed_precision="bf16" if cuda else "no")
    ranks = Ranks(acc)
    set_seed(c.seed)
    out = Path(c.out)
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(c, out / "config.yaml")
    trajs = load_records(c.data, Trajectory, skip_bad=True)
    if c.only_correct:
        trajs = [t for t in trajs if (t.outcome or 0.0) >= 1.0]
    train_tr, val_tr = split_by_group(trajs, lambda t: t.task_id, c.val_fraction, c.seed)
    tokenizer = AutoTokenizer.from_pretrained(c.model)
    train_set, dropped = encode(tokenizer, train_tr, c.max_seq_len, c.chat_template_kwargs, c.tool_format)
    val_set, _ = encode(tokenizer, val_tr, c.max_seq_len, c.chat_template_kwargs, c.tool_format)
    if not train_set:
        raise ValueError(f"{c.data}: no trajectory fits max_seq_len={c.max_seq_len} with a policy token")
    model = AutoModelForCausalLM.from_pretrained(c.model, dtype=torch.float32)
    optimizer = base_optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    sampler = LengthGroupedBatches([len(x[0]) for x in train_set], c.batch_size, c.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler,
                                         collate_fn=pad_collate(pad_token_id(tokenizer)))
    plugin = getattr(acc.state, "deepspeed_plugin", None)
    if plugin is not None:  # DeepSpeed cannot read the micro-batch size off a batch sampler
        plugin.deepspeed_config.update(gradient_accumulation_steps=c.grad_accum,
                                       train_micro_batch_size_per_gpu=c.batch_size,
                                       train_batch_size=c.batch_size * c.grad_accum * ranks.world)
    model, optimizer, loader = acc.prepare(model, optimizer, loader)
    warmup = math.ceil(c.warmup_ratio * c.max_steps)
    # stepped by hand once per optimizer step; its state goes in trainer_state.json
    scheduler = (get_cosine_schedule_with_warmup(base_optimizer, warmup, c.max_steps) if c.schedule == "cosine"
                 else get_constant_schedule_with_warmup(base_optimizer, warmup))
    val_loader = [{k: v.to(acc.device) for k, v in pad_collate(pad_token_id(tokenizer))(val_set[i:i + c.batch_size]).items()}
                  for i in range(0, len(val_set), c.batch_size)]
    step, epoch, skip = 0, 0, 0
    bar = tqdm(total=c.max_steps, initial=0, desc="sft", unit="step", disable=not ranks.main)
    log = MetricsLogger(out, ranks.main, report_to=c.report_to, run_name=out.name, config=config_dict(c))
    if c.resume and (last_ckpt := latest_checkpoint(out)) is not None:
        state = load_checkpoint(acc, last_ckpt)
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, skip = state["step"], state["epoch"], state["batches_in_epoch"]
        log.truncate_after(step)
        bar.update(step)
        log.print(f"sft: resumed from {last_ckpt} (step {step}, epoch {epoch}, batch {skip})")
    if step == 0:
        log.log(0, {"data/train": len(train_set), "data/val": len(val_set), "data/dropped_too_long": dropped,
                    "run/config_hash": config_hash(c), "run/model": c.model})
    last: dict = {}
    model.train()
    while step < c.max_steps:
        batch_idx = skip
        for batch in epoch_batches(acc, loader, sampler, epoch, skip):
            with acc.accumulate(model):
                loss, n_tokens = _loss(acc, model, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss at step {step}; lower lr={c.lr}")
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(model.parameters(), c.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            batch_idx += 1
            if not acc.sync_gradients:
                continue
            scheduler.step()
            step += 1
            bar.update(1)
            metrics = {"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0], "train/epoch": epoch,
                       "train/target_tokens": n_tokens}
            if val_loader and (step % c.eval_every == 0 or step == c.max_steps):
                metrics["eval/loss"] = validation_loss(acc, model, val_loader)
                last = metrics
            log.log(step, metrics)
            bar.set_postfix(loss=f"{metrics['train/loss']:.3f}")
            if c.save_every and step % c.save_every == 0:
                save_checkpoint(acc, ranks, model, tokenizer, out, step,
                                {"epoch": epoch, "batches_in_epoch": batch_idx,
                                 "scheduler": scheduler.state_dict(), "config_hash": config_hash(c)},
                                keep=c.keep_checkpoints)
            if step >= c.max_steps:
                break
        else:
            epoch, skip = epoch + 1, 0
    save_model(acc, ranks, model, tokenizer, out / "final")
    if ranks.main:
        (out / "final" / "reagent_sft.json").write_text(json.dumps(
            {"base_model": c.model, "data": c.data, "config_hash": config_hash(c), "step": step, **last}, indent=2))
    bar.close()
    log.close()
    return last
