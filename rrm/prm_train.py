"""``reagent train-prm``: a value-head PRM trained on step labels (AgentPRM).

Variant (Xi et al. 2025, "promise and progress"): loss = promise + beta * progress
(:mod:`rrm.prm_losses`): MSE of each step's value to its Q target, plus beta times
the squared error of the model's own advantage ``q_t - q_{t-1}/gamma`` to the
labels' GAE advantage. ``--beta 0`` is the promise-only value model (PVM).
``--objective orm`` is the outcome-reward baseline: the last step only, target the
trajectory's outcome. Targets come from ``reagent label-steps`` (TD+GAE or MC) or the
Math-Shepherd/PRM800K importers (:mod:`data_gen.prm_import`).

The loop stands on the shared training runtime, as policy and judge SFT do (no
checkpoint format of its own): :mod:`reagent.train.runtime` for ranks, rank-0 metrics,
``out/checkpoints/step-N/`` (``model/`` = ``save_pretrained`` of the gathered weights,
``state/`` = ``accelerate.save_state``, RNG per rank; exact resume at an epoch
boundary) and :mod:`reagent.train.data` for the task-id split and the length-grouped
batches (a ``DataLoader`` prepared by accelerate, so each process takes its share and
ZeRO-2/3 work unchanged). What is PRM-specific lives elsewhere: the head
(:mod:`rrm.prm`), the batch of step positions (:mod:`rrm.prm_data`), the losses and
the held-out report (:mod:`rrm.prm_eval`).

Held-out split by task id; after every epoch: held-out MSE to the Q targets, AUROC
of the final-step value against the outcome and, with ``--mc-data`` (MC labels of
the same trajectories, or when the data are MC labels themselves), the step-level
Spearman against MC targets. The final model goes to ``out/final``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from reagent.config import cfg, config_dict, config_hash, save_config
from reagent.trackers import report_to_field, validate_report_to
from reagent.jsonl import load_records
from reagent.records import StepLabel
from reagent.train.data import LengthGroupedBatches, epoch_batches, split_by_group
from reagent.train.runtime import (
    MetricsLogger,
    Ranks,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    save_model,
)
from rrm.prm import load_prm, step_values
from rrm.prm_data import StepItem, collate_steps, encode_labels
from rrm.prm_eval import prm_report
from rrm.prm_losses import agentprm_loss, last_step_mask, promise_loss

OBJECTIVES = ("prm", "orm")
METHODS = ("labels", "inverse")


@dataclass
class TrainPRMConfig:
    method: str = cfg("labels", help="labels: train on the step labels of --data | inverse: InversePRM from "
                      "--demos and --policy alone, no outcome labels (rrm/inverse_prm.py)")
    data: str = cfg(None, help="step-label JSONL (reagent label-steps, or the Math-Shepherd/PRM800K importer)")
    model: str = cfg(None, help="causal-LM directory (backbone; gets a one-output head) or a saved PRM; "
                     "method=inverse: the first PRM's backbone (default: --policy)")
    out: str = cfg(None, help="output directory: checkpoints/, final/, metrics.jsonl, config.yaml")
    beta: float = cfg(1.0, help="weight of the progress (advantage) loss; 0 = promise-only value model (PVM)")
    gamma: float | None = cfg(None, help="discount in the progress term q_t - q_{t-1}/gamma; default: the "
                                         "labels' own params.gamma, else 1")
    objective: str = cfg("prm", help="prm: every step's Q target | orm: last step only, target = outcome")
    mc_data: str | None = cfg(None, help="MC step labels of (some of) the same trajectories, for the "
                                         "held-out Spearman")
    val_fraction: float = cfg(0.1, help="share of task ids held out for the per-epoch report")
    epochs: int = cfg(3, help="passes over the training labels")
    batch_size: int = cfg(16, help="trajectories per optimizer step")
    lr: float = cfg(1e-4, help="AdamW learning rate (constant)")
    weight_decay: float = cfg(0.0, help="AdamW weight decay")
    max_grad_norm: float = cfg(1.0, help="gradient clipping")
    max_seq_len: int = cfg(2048, help="longer trajectories are skipped (counted)")
    keep_checkpoints: int = cfg(1, help="complete per-epoch checkpoints kept")
    seed: int = cfg(0, help="seed of the split, batch order and head initialisation")
    resume: bool = cfg(False, help="continue from the last complete checkpoint in out")
    report_to: list = report_to_field()
    # method=inverse (InversePRM, rrm/inverse_prm.py): each iteration's PRM is trained with the
    # fields above (epochs, lr, batch_size, ...), promise-only (beta is not used: no advantage targets)
    demos: str | None = cfg(None, help="method=inverse: demonstration trajectory JSONL (reagent demos, or "
                            "expert traces); their task ids pick the tasks the policy is rolled out and trained on")
    policy: str | None = cfg(None, help="method=inverse: the starting (SFT) policy directory")
    iterations: int = cfg(3, help="method=inverse: K rounds of rollout -> discriminator PRM -> RL with the PRM")
    rollout_tasks: int = cfg(64, help="method=inverse: demonstration tasks the policy is rolled out on per "
                             "iteration (a fresh seeded sample each iteration)")
    rollout_n: int = cfg(2, help="method=inverse: policy rollouts per task")
    rl_steps: int = cfg(10, help="method=inverse: reagent train steps per iteration (outcome_weight=0)")
    mix_previous: bool = cfg(True, help="method=inverse: negatives are the policy steps of this AND every "
                             "earlier iteration (keeps the PRM from forgetting old mistakes)")
    env: str = cfg("toy", help="method=inverse: environment of the demonstrations' tasks (toy | math | qa)")
    env_seed: int = cfg(0, help="method=inverse: toy task generator seed the demonstrations were made with")
    tasks: str | None = cfg(None, help="method=inverse: Task JSONL holding the demonstrations' tasks (else "
                            "the environment's train split, regenerated)")
    max_turns: int = cfg(6, help="method=inverse: turns per episode (rollouts and RL)")
    max_tokens: int = cfg(512, help="method=inverse: response token budget per episode (rollouts and RL)")
    max_new_tokens: int = cfg(128, help="method=inverse: tokens per turn (rollouts and RL)")
    device: str = cfg("auto", help="method=inverse: device of the rollouts and RL: auto | cpu | cuda")
    train_args: list = cfg([], help="method=inverse: extra key=value settings for each iteration's "
                           "reagent train (e.g. lr=5e-4 prompts_per_step=8 group_size=8 kl_coef=0.05)")

    def __post_init__(self):
        self.report_to = validate_report_to(self.report_to)
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: use one of {', '.join(METHODS)}")
        needed = ("data", "model", "out") if self.method == "labels" else ("demos", "policy", "out")
        missing = [k for k in needed if not getattr(self, k)]
        if missing:
            raise ValueError(f"train-prm --method {self.method} needs "
                             f"{', '.join('--' + k.replace('_', '-') for k in missing)}")
        if self.method == "inverse":
            for name in ("iterations", "rollout_tasks", "rollout_n", "rl_steps"):
                if getattr(self, name) < 1:
                    raise ValueError(f"{name}={getattr(self, name)} must be >= 1 (method=inverse)")
            bad = [a for a in self.train_args if "=" not in str(a)]
            if bad:
                raise ValueError(f"train_args={bad}: each must be key=value (a reagent train setting)")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r}: use one of {', '.join(OBJECTIVES)}")
        if self.beta < 0:
            raise ValueError(f"beta={self.beta} must be >= 0 (0 = promise-only PVM)")
        if self.gamma is not None and not 0 < self.gamma <= 1:
            raise ValueError(f"gamma={self.gamma} must be in (0, 1]")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction={self.val_fraction} must be in [0, 1)")


def batch_loss(model, batch: dict, c: TrainPRMConfig, gamma: float) -> tuple[torch.Tensor, dict]:
    values = step_values(model, batch)
    if c.objective == "orm":
        last = last_step_mask(batch["step_mask"]).to(values.dtype)
        known = ~torch.isnan(batch["outcome"])
        mask = last * known.unsqueeze(1).to(values.dtype)
        target = torch.nan_to_num(batch["outcome"]).unsqueeze(1).expand_as(values)
        loss = promise_loss(values, target, mask)
        return loss, {"loss/promise": loss.item()}
    return agentprm_loss(values, batch["q"], batch["advantage"], batch["step_mask"], c.beta, gamma)


@torch.no_grad()
def evaluate(model, items: list[StepItem], pad_id: int, device, batch_size: int,
             mc: dict[str, list[float]] | None, objective: str) -> dict:
    model.eval()
    values: list[list[float]] = []
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        batch = {k: v.to(device) for k, v in collate_steps(chunk, pad_id).items()}
        v = step_values(model, batch).cpu()
        values += [v[r, :len(it.positions)].tolist() for r, it in enumerate(chunk)]
    model.train()
    outcomes = [it.outcome for it in items]
    if objective == "orm":  # the ORM is judged on its last step against the outcome, where there is one
        known = [i for i, o in enumerate(outcomes) if o is not None]
        report = prm_report([[values[i][-1]] for i in known], [[outcomes[i]] for i in known],
                            [outcomes[i] for i in known])
    else:
        report = prm_report(values, [it.q for it in items], outcomes)
    if mc is not None:
        report.update({k: v for k, v in prm_report(values, [it.q for it in items], [it.outcome for it in items],
                                                   [mc.get(it.id) for it in items]).items()
                       if k.startswith("mc_")})
    return report


def _mc_targets(c: TrainPRMConfig, labels: list[StepLabel]) -> dict[str, list[float]] | None:
    if c.mc_data:
        return {r.trajectory_id: [float(s["q"]) for s in r.steps]
                for r in load_records(c.mc_data, StepLabel, skip_bad=True) if r.method == "mc"}
    if labels and all(r.method == "mc" for r in labels):
        return {r.trajectory_id: [float(s["q"]) for s in r.steps] for r in labels}
    return None


def _label_gamma(c: TrainPRMConfig, labels: list[StepLabel]) -> float:
    if c.gamma is not None:
        return c.gamma
    found = {float(r.params["gamma"]) for r in labels if "gamma" in r.params}
    if len(found) > 1:
        raise ValueError(f"{c.data}: labels were made with several gammas {sorted(found)}; set --gamma")
    return found.pop() if found else 1.0


def train(c: TrainPRMConfig) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer

    acc = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no")
    ranks = Ranks(acc)
    set_seed(c.seed)
    out = Path(c.out)
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(c, out / "config.yaml")
    log = MetricsLogger(out, ranks.main, report_to=c.report_to, run_name=out.name, config=config_dict(c))
    labels = load_records(c.data, StepLabel, skip_bad=True)
    gamma = _label_gamma(c, labels)
    tokenizer = AutoTokenizer.from_pretrained(c.model)
    items, enc = encode_labels(tokenizer, labels, c.max_seq_len)
    log.print(f"train-prm: {c.data}: {enc.summary()}")
    if not items:
        raise ValueError(f"{c.data}: no usable step-label record ({enc.summary()})")
    train_items, val_items = split_by_group(items, lambda it: it.group, c.val_fraction, c.seed)
    if not train_items:
        raise ValueError(f"{c.data}: every task id went to validation; lower val_fraction={c.val_fraction}")
    mc = _mc_targets(c, labels)
    model = load_prm(c.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    sampler = LengthGroupedBatches([len(it.input_ids) for it in train_items], c.batch_size, c.seed)
    loader = torch.utils.data.DataLoader(train_items, batch_sampler=sampler,
                                         collate_fn=lambda chunk: collate_steps(chunk, pad_id))
    plugin = getattr(acc.state, "deepspeed_plugin", None)
    if plugin is not None:  # DeepSpeed cannot read the micro-batch size off a batch sampler
        plugin.deepspeed_config.update(gradient_accumulation_steps=1, train_micro_batch_size_per_gpu=c.batch_size,
                                       train_batch_size=c.batch_size * ranks.world)
    model, optimizer, loader = acc.prepare(model, optimizer, loader)
    step, epoch = 0, 0
    if c.resume and (last := latest_checkpoint(out)) is not None:
        state = load_checkpoint(acc, last)  # model, optimizer, RNG: exact
        step, epoch = state["step"], state["epoch"]
        log.truncate_after(step)
        log.print(f"train-prm: resumed from {last} (step {step}, epoch {epoch})")
    if step == 0:
        before = evaluate(model, val_items, pad_id, acc.device, c.batch_size, mc, c.objective) if val_items else {}
        log.log(0, {"data/train": len(train_items), "data/val": len(val_items),
                    "data/skipped": sum(enc.skipped.values()), "run/config_hash": config_hash(c),
                    "run/gamma": gamma, **{f"eval/{k}": v for k, v in before.items()}})
    report: dict = {}
    model.train()
    while epoch < c.epochs:
        for batch in epoch_batches(acc, loader, sampler, epoch):
            loss, parts = batch_loss(model, batch, c, gamma)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite PRM loss at step {step}; lower lr={c.lr}")
            acc.backward(loss)
            acc.clip_grad_norm_(model.parameters(), c.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            log.log(step, {"train/loss": loss.item(), **{f"train/{k}": v for k, v in parts.items()},
                           "train/epoch": epoch})
        epoch += 1
        report = evaluate(model, val_items, pad_id, acc.device, c.batch_size, mc, c.objective) if val_items else {}
        log.log(step, {"train/epoch_done": epoch, **{f"eval/{k}": v for k, v in report.items()}})
        log.print(f"epoch {epoch}: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                                   for k, v in report.items()}))
        save_checkpoint(acc, ranks, model, tokenizer, out, step,  # every rank calls it
                        {"epoch": epoch, "batches_in_epoch": 0, "config_hash": config_hash(c)},
                        keep=c.keep_checkpoints)
    save_model(acc, ranks, model, tokenizer, out / "final")
    if ranks.main:
        (out / "final" / "reagent_prm.json").write_text(json.dumps(
            {"base_model": c.model, "data": c.data, "objective": c.objective, "beta": c.beta, "gamma": gamma,
             "config_hash": config_hash(c), "step": step, "heldout": report}, indent=2))
    log.close()
    return report
