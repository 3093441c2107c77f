"""The judge's RL stage: GRPO on the judge's own verdicts (Agent-RRM's second stage).

Agent-RRM (Fan et al. 2025) fine-tunes the judge on teacher verdicts (:mod:`rrm.sft`)
and then trains it with RL. This is that stage, single-turn:

* prompt: the judge prompt exactly as SFT and scoring build it
  (:func:`rrm.prompt.build_judge_messages`: system prompt, ``Question:`` and the rendered
  trajectory), encoded with the model's chat template and the generation prompt;
* rollout: ``group_size`` verdicts per prompt, sampled at ``temperature`` and cut at
  ``</score>`` or ``max_new_tokens``;
* reward: :mod:`rrm.rl_reward` -- format validity (optionally partial credit for the
  parts of a broken verdict) plus agreement of the verdict's score
  with the teacher's score and/or the outcome, weights in the config. Examples whose
  reward cannot be computed (a weighted reference missing) are skipped before
  generating and counted (``data/skipped_no_reference``);
* advantage: GRPO, ``(r - mean_g r) / (std_g r + eps)`` over each prompt's group
  (``dr_grpo`` drops the std); groups with all-equal rewards carry no signal and leave
  the batch (counted, ``batch/degenerate_groups``);
* loss: PPO-clip (:func:`reagent.train.algos.clipped_policy_loss`) on the verdict's
  tokens only (mask 1 on generated tokens, its end-of-turn token included; 0 on the
  prompt), one optimizer step per batch of rollouts, so the ratio is 1 and the loss is
  the on-policy policy gradient; aggregated ``token-mean`` over the batch (DAPO) or
  ``seq-mean-token-mean`` (original GRPO). No KL term, no reference model.
  Log-probs at the sampling temperature (:func:`reagent.train.algos.token_logprobs`).

Optimisation: AdamW at a constant ``lr`` after a linear warm-up, gradient clipping.
The shared runtime (:mod:`reagent.train.runtime`) gives ranks, the metrics log,
checkpoints (``out/checkpoints/step-N``: model, optimizer, RNG, the data position) and
the final model (``out/final``). ``resume`` continues from the latest checkpoint and
ends where an uninterrupted run ends. Every ``eval_every`` steps and at the end the
judge-quality report of ``train-rrm`` (:func:`rrm.sft.judge_quality`: greedy verdicts on
held-out questions) is logged under ``eval/``. Under several processes each takes
``prompts_per_step / processes`` prompts of a step.

One module of ~420 lines, a third of them the documented config: the loop reads top
to bottom as rollout -> reward -> advantage -> loss -> step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reagent.config import cfg, config_dict, config_hash, save_config
from reagent.trackers import report_to_field, validate_report_to
from reagent.jsonl import load_records
from reagent.records import JudgeExample
from reagent.train.algos import (
    AGGREGATIONS,
    ADVANTAGES,
    clipped_policy_loss,
    compute_advantages,
    degenerate_groups,
    token_logprobs,
)
from reagent.train.data import split_by_group
from reagent.train.runtime import (
    MetricsLogger,
    Ranks,
    generation_model,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    save_model,
)
from rrm.evaluate import labelled_item
from rrm.rl_reward import RewardWeights, missing_reference, verdict_reward


@dataclass
class TrainRRMRLConfig:
    data: str = cfg(None, help="JSONL of judge examples (question, trajectory, score, outcome)")
    model: str = cfg(None, help="local model directory of the judge to train (the SFT judge)")
    out: str = cfg(None, help="output directory: checkpoints/, final/, metrics.jsonl")
    val_data: str | None = cfg(None, help="held-out JSONL for evaluation; default: val_fraction of data")
    val_fraction: float = cfg(0.1, help="share of questions held out when val_data is unset")
    steps: int = cfg(100, help="optimizer steps (one batch of rollouts each)")
    prompts_per_step: int = cfg(8, help="judge examples per step, over all processes")
    group_size: int = cfg(8, help="verdicts sampled per example (G); >= 2 for a group baseline")
    lr: float = cfg(1e-6, help="learning rate (AdamW), constant after warm-up")
    warmup_steps: int = cfg(0, help="steps of linear warm-up from 0 to lr")
    weight_decay: float = cfg(0.0, help="AdamW weight decay")
    max_grad_norm: float = cfg(1.0, help="gradient clipping norm; 0 disables")
    max_new_tokens: int = cfg(1024, help="token limit of one sampled verdict")
    temperature: float = cfg(1.0, help="sampling temperature of the rollouts (> 0); the log-probs "
                                       "of the loss use the same temperature")
    top_p: float = cfg(1.0, help="nucleus sampling of the rollouts")
    w_format: float = cfg(0.5, help="reward weight of format validity (1 if think, critique and a "
                                    "score in [0, 1] are all there, in order)")
    format_partial: float = cfg(0.0, help="share of the format reward a broken verdict earns for "
                                           "the parts it has (think, critique, a numeric score; "
                                           "each a third); 0: format validity only. Use > 0 when "
                                           "the SFT judge rarely writes a valid verdict")
    w_score: float = cfg(1.0, help="reward weight of 1 - |score - teacher score|; examples "
                                   "without a teacher score are skipped when > 0")
    w_outcome: float = cfg(0.0, help="reward weight of 1 - |score - outcome|; examples without "
                                     "an outcome are skipped when > 0")
    advantage: str = cfg("grpo", help="advantage estimator: " + " | ".join(ADVANTAGES))
    loss_agg: str = cfg("token-mean", help="loss aggregation: " + " | ".join(AGGREGATIONS))
    clip_low: float = cfg(0.2, help="PPO clip: ratio lower bound 1 - clip_low")
    clip_high: float = cfg(0.28, help="PPO clip: ratio upper bound 1 + clip_high (DAPO clip-higher)")
    micro_batch_size: int = cfg(16, help="sequences per forward/backward in the update")
    gen_batch_size: int = cfg(64, help="sequences per generation batch")
    max_prompt_len: int = cfg(8192, help="tokens; longer judge prompts are skipped (and counted)")
    max_chars: int = cfg(24000, help="character budget when rendering message trajectories")
    seed: int = cfg(0, help="seed for the split, the example order and sampling")
    save_every: int = cfg(0, help="checkpoint every N steps (and at the end); 0: at the end only")
    keep_checkpoints: int = cfg(2, help="checkpoints kept on disk (oldest removed first)")
    resume: bool = cfg(False, help="continue from the latest complete checkpoint in out")
    report_to: list = report_to_field()
    eval_every: int = cfg(0, help="judge-quality report every N steps (and before/after); 0: "
                                  "before and after only")
    eval_before: bool = cfg(True, help="evaluate once before training, as the baseline")
    eval_max_examples: int = cfg(256, help="held-out examples judged by generation per eval")
    eval_max_new_tokens: int = cfg(1024, help="token limit of the judge's greedy verdict at eval")
    eval_batch_size: int = cfg(16, help="generation batch size at eval")
    log_every: int = cfg(1, help="steps between train metric lines")

    def __post_init__(self):
        self.report_to = validate_report_to(self.report_to)
        for name in ("data", "model", "out"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required (--{name.replace('_', '-')} ...)")
        for name in ("steps", "prompts_per_step", "max_new_tokens", "micro_batch_size",
                     "gen_batch_size", "max_prompt_len", "eval_max_examples",
                     "eval_max_new_tokens", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.group_size < 2:
            raise ValueError(f"group_size={self.group_size}: GRPO needs >= 2 verdicts per example")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0 (RL samples; greedy "
                             "verdicts of one prompt would all be equal)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        for name in ("warmup_steps", "save_every", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.advantage not in ADVANTAGES:
            raise ValueError(f"advantage={self.advantage!r}; valid: {', '.join(ADVANTAGES)}")
        if self.loss_agg not in AGGREGATIONS:
            raise ValueError(f"loss_agg={self.loss_agg!r}; valid: {', '.join(AGGREGATIONS)}")
        if self.val_data is None and not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction={self.val_fraction} must be in (0, 1) when val_data "
                             "is not given")
        self.weights()  # validates w_format, w_score, w_outcome

    def weights(self) -> RewardWeights:
        try:
            return RewardWeights(self.w_format, self.w_score, self.w_outcome, self.format_partial)
        except ValueError as e:
            raise ValueError(f"w_format={self.w_format}, w_score={self.w_score}, "
                             f"w_outcome={self.w_outcome}, format_partial={self.format_partial}: "
                             f"{e}") from None


def run_hash(config: TrainRRMRLConfig) -> str:
    return config_hash(dataclasses.replace(config, resume=False))


# ----------------------------------------------------------------------------- data


@dataclass
class Prompt:
    """One judge example ready for rollouts."""

    ids: list[int]
    teacher_score: float | None
    outcome: float | None


def build_prompts(tokenizer: Any, examples: list[JudgeExample], config: TrainRRMRLConfig,
                  ) -> tuple[list[Prompt], Counter]:
    """Encoded judge prompts of the examples whose reward can be computed; skip counts."""
    from reagent.tokenization import encode_prompt
    from rrm.prompt import build_judge_messages

    weights, skipped, out = config.weights(), Counter(), []
    for ex in examples:
        if missing_reference(weights, ex.score, ex.outcome) is not None:
            skipped["no_reference"] += 1
            continue
        ids = encode_prompt(tokenizer, build_judge_messages(ex, max_chars=config.max_chars))
        if len(ids) > config.max_prompt_len:
            skipped["too_long"] += 1
            continue
        out.append(Prompt(list(ids), ex.score, ex.outcome))
    return out, skipped


def step_prompts(n: int, config: TrainRRMRLConfig, position: int) -> list[int]:
    """Indices of the ``prompts_per_step`` examples of the step at ``position`` (a count
    of examples consumed): a fresh seeded permutation every pass, so resume is exact."""
    out = []
    for k in range(position, position + config.prompts_per_step):
        epoch, i = divmod(k, n)
        perm = list(range(n))
        random.Random(config.seed * 1000 + epoch).shuffle(perm)
        out.append(perm[i])
    return out


def pad_batch(rows: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded ``(input_ids, attention_mask, loss_mask)`` of (ids, prompt length) rows;
    the loss mask is 1 on the tokens after the prompt. Shapes (N, L)."""
    width = max(len(ids) for ids, _ in rows)
    ids_t = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for r, (ids, n_prompt) in enumerate(rows):
        ids_t[r, :len(ids)] = torch.tensor(ids)
        attn[r, :len(ids)] = 1
        mask[r, n_prompt:len(ids)] = 1.0
    return ids_t, attn, mask


# --------------------------------------------------------------------------- training


def rollouts(accelerator: Any, model: Any, tokenizer: Any, prompts: list[Prompt],
             config: TrainRRMRLConfig, step: int, rank: int, sync: bool) -> list:
    """``group_size`` sampled verdicts per prompt (each row its own seeded stream)."""
    from reagent.generation.base import SamplingParams
    from reagent.generation.hf import generate_tokens

    flat = [p.ids for p in prompts for _ in range(config.group_size)]
    seeds = [hash((config.seed, step, rank, i)) % (2 ** 31) for i in range(len(flat))]
    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                            top_p=config.top_p, stop=["</score>"], row_seeds=seeds)
    with generation_model(accelerator, model) as m:
        return generate_tokens(m, tokenizer, flat, params, batch_size=config.gen_batch_size,
                               sync_ranks=sync)


def policy_update(accelerator: Any, model: Any, optimizer: Any, rows: list[tuple[list[int], int]],
                  adv: torch.Tensor, pad_id: int, config: TrainRRMRLConfig) -> dict:
    """One optimizer step of PPO-clip over the rows, in micro-batches. Returns stats."""
    device = accelerator.device
    n_tokens = float(sum(len(ids) - n for ids, n in rows))
    normalizer = n_tokens if config.loss_agg == "token-mean" else float(len(rows))
    stats: Counter = Counter()
    chunks = [range(s, min(s + config.micro_batch_size, len(rows)))
              for s in range(0, len(rows), config.micro_batch_size)]
    for k, idx in enumerate(chunks):
        ids, attn, mask = (t.to(device) for t in pad_batch([rows[i] for i in idx], pad_id))
        # gradients are all-reduced once, on the last micro-batch
        with accelerator.no_sync(model) if k < len(chunks) - 1 else contextlib.nullcontext():
            logits = model(input_ids=ids, attention_mask=attn).logits
            logp, _ = token_logprobs(logits, ids, temperature=config.temperature, entropy_grad=False)
            loss, s = clipped_policy_loss(logp, logp.detach(), adv[list(idx)].to(device), mask,
                                          config.clip_low, config.clip_high, config.loss_agg,
                                          normalizer)
            accelerator.backward(loss)
        stats["loss"] += loss.item()
        stats["clip_frac"] += s["clip_frac"] * len(idx) / len(rows)
    grad_norm = (accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                 if config.max_grad_norm > 0 else None)
    optimizer.step()
    optimizer.zero_grad()
    stats["grad_norm"] = float(grad_norm) if grad_norm is not None else float("nan")
    return dict(stats)


def train(config: TrainRRMRLConfig) -> dict:
    """Run judge GRPO; returns the last evaluation's metrics."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rrm.sft import judge_quality

    accelerator = Accelerator()
    ranks = Ranks(accelerator)
    set_seed(config.seed)
    out = Path(config.out)
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")

    examples = load_records(config.data, JudgeExample, skip_bad=True)
    if config.val_data:
        train_ex, val_ex = examples, load_records(config.val_data, JudgeExample, skip_bad=True)
    else:
        train_ex, val_ex = split_by_group(examples, lambda e: e.question, config.val_fraction,
                                          config.seed)
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts, skipped = build_prompts(tokenizer, train_ex, config)
    if not prompts:
        raise ValueError(f"no usable training example in {config.data} ({len(train_ex)} read; "
                         f"skipped: {dict(skipped) or 'none'})")
    eval_items = [labelled_item(e) for e in val_ex[:config.eval_max_examples]]

    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps) if config.warmup_steps else 1.0)
    accelerator.register_for_checkpointing(scheduler)
    log = MetricsLogger(out, ranks.main, echo=print if ranks.main else None, report_to=config.report_to,
                        run_name=out.name, config=config_dict(config))

    step, position, totals = 0, 0, Counter()
    if config.resume and (ckpt := latest_checkpoint(out)) is not None:
        state = load_checkpoint(accelerator, ckpt, ranks)
        step, position, totals = state["step"], state["position"], Counter(state["totals"])
        log.truncate_after(step)
        log.print(f"resumed from {ckpt} (step {step})"
                  + ("; the config differs from the checkpoint's"
                     if state.get("config_hash") not in (None, run_hash(config)) else ""))
    if step == 0:
        log.log(0, {"run/config_hash": run_hash(config), "run/model": config.model,
                    "run/config": config_dict(config), "data/train": len(prompts),
                    "data/val": len(eval_items),
                    "data/skipped_no_reference": skipped["no_reference"],
                    "data/skipped_too_long": skipped["too_long"]})

    def evaluate(tag: str) -> dict:
        t0 = time.time()
        quality = judge_quality(accelerator, ranks, model, tokenizer, eval_items, config)
        metrics = {f"eval/{k}": v for k, v in quality.items()}
        metrics.update({"eval/when": tag, "timing_s/eval": time.time() - t0})
        log.log(step, metrics)
        return metrics

    def checkpoint(last_eval: dict | None = None) -> None:
        save_checkpoint(accelerator, ranks, model, tokenizer, out, step,
                        {"position": position, "totals": dict(totals),
                         "config_hash": run_hash(config), "eval": last_eval},
                        config.keep_checkpoints)

    last = evaluate("before") if config.eval_before and step == 0 else {}
    weights, pad_id = config.weights(), tokenizer.pad_token_id
    per_rank = math.ceil(config.prompts_per_step / ranks.world)
    model.train()
    while step < config.steps:
        timings: dict[str, float] = {}
        t0 = time.time()
        chosen = step_prompts(len(prompts), config, position)
        position += config.prompts_per_step
        mine = [prompts[i] for i in chosen[ranks.rank * per_rank:(ranks.rank + 1) * per_rank]]
        gens = rollouts(accelerator, model, tokenizer, mine, config, step, ranks.rank,
                        ranks.world > 1)
        timings["timing_s/rollout"] = time.time() - t0

        t0 = time.time()
        rewards, terms, rows, groups = [], [], [], []
        for j, g in enumerate(gens):
            p = mine[j // config.group_size]
            r, t = verdict_reward(g.text, g.finish_reason, p.teacher_score, p.outcome, weights)
            rewards.append(r)
            terms.append(t)
            rows.append((p.ids + list(g.token_ids), len(p.ids)))
            groups.append(j // config.group_size)
        keep = [i for i, r in enumerate(rewards) if r is not None]  # None: skipped before
        r_t = torch.tensor([rewards[i] for i in keep], dtype=torch.float32)
        g_t = torch.tensor([groups[i] for i in keep], dtype=torch.long)
        adv = compute_advantages(config.advantage, r_t, g_t) if keep else r_t
        live = ~degenerate_groups(r_t, g_t) if keep else torch.zeros(0, dtype=torch.bool)
        timings["timing_s/reward"] = time.time() - t0

        t0 = time.time()
        kept_rows = [rows[i] for i, ok in zip(keep, live.tolist()) if ok]
        has_rows = ranks.max_int(len(kept_rows)) > 0
        if has_rows and kept_rows:
            stats = policy_update(accelerator, model, optimizer, kept_rows, adv[live], pad_id, config)
        elif has_rows:  # another rank has signal: join its collectives with a zero loss
            stats = policy_update(accelerator, model, optimizer, [rows[0]], torch.zeros(1),
                                  pad_id, config)
        else:
            stats = {}
        scheduler.step()
        timings["timing_s/update"] = time.time() - t0
        step += 1

        statuses = Counter(t["status"] for t in terms)
        totals.update({f"status/{k}": v for k, v in statuses.items()})
        n_groups = len(mine)
        n_degenerate = n_groups - len(set(g_t[live].tolist())) if keep else n_groups
        totals["groups"] += n_groups
        totals["degenerate_groups"] += n_degenerate
        if step % config.log_every == 0 or step == config.steps:
            lengths = [len(g.token_ids) for g in gens]
            metrics = {
                "reward/mean": _mean([r for r in rewards if r is not None]),
                "reward/format": _mean([t["format"] for t in terms]),
                "reward/score_agreement": _mean([t["score_agreement"] for t in terms]),
                "reward/outcome_agreement": _mean([t["outcome_agreement"] for t in terms]),
                "batch/degenerate_groups": n_degenerate / max(n_groups, 1),
                "batch/trained_sequences": len(kept_rows),
                "response_length/mean": _mean(lengths),
                "response_length/clip_ratio": _mean([g.finish_reason == "length" for g in gens]),
                "train/lr": scheduler.get_last_lr()[0],
                **{f"train/{k}": v for k, v in stats.items()},
                **{f"status/{k}": v / len(terms) for k, v in statuses.items()},
                **timings,
            }
            log.log(step, metrics)
        if config.eval_every and step % config.eval_every == 0 and step < config.steps:
            last = evaluate(f"step {step}")
        if config.save_every and step % config.save_every == 0 and step < config.steps:
            checkpoint(last)
    if not last or last.get("eval/when") != "end":
        last = evaluate("end")
    checkpoint(last)
    save_model(accelerator, ranks, model, tokenizer, out / "final")
    if ranks.main:
        (out / "final" / "reagent_train_rrm_rl.json").write_text(json.dumps(
            {"base_model": config.model, "config_hash": run_hash(config), "step": step,
             "totals": dict(totals), "eval": last}, indent=2, default=str))
    log.close()
    accelerator.end_training()
    return last


def _mean(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None
