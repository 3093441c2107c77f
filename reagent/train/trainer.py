"""GRPO policy training with Reagent-R and Reagent-U (Fan et al., "Reagent", on top of GRPO).

One step reads like the algorithm:

1. **rollout**: B prompts x G episodes with the current policy (batched agent loop;
   token ids and loss masks kept as generated);
2. **judge** (reagent-r/u): the Agent-RRM scores every episode; under reagent-u each
   initial episode (all, or only failed ones) gets one **revised** episode whose
   prompt is question + first attempt + critique (:mod:`reagent.critique`), and the
   revised episodes are judged too;
3. **reward**: R = outcome + lambda * score (outcome alone for grpo, or for a judge
   failure under ``on_judge_failure=outcome_only``; ``drop`` removes the episode;
   ``stop`` ends the run);
4. **advantage**: (R - mean_g) / (std_g + eps) per prompt group (``dr_grpo``: no std);
   under reagent-u initial and revised episodes of a prompt form ONE pooled group of
   up to 2G; groups with all-equal rewards are dropped and counted;
5. **loss**: PPO-clip with eps_low/eps_high (0.2/0.28), ``token-mean`` or
   ``seq-mean-token-mean``, optional k3 KL to a reference model (off by default: no
   reference is loaded at coefficient 0) and entropy bonus; only the policy's own
   tokens are in the loss (prompts, tool results and critiques are masked);
6. **step**: mu optimizer steps per batch (AdamW, clip 1.0, warm-up + constant/cosine).

Runs single-process by default and under ``accelerate launch`` (DDP or DeepSpeed
ZeRO-2/3) for many processes; each process rolls out its own shard of prompts.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from reagent.agent import AgentConfig, AgentLoop, EpisodeSpec
from reagent.config import config_hash, save_config
from reagent.critique import revision_messages
from reagent.envs.base import initial_messages
from reagent.jsonl import write_records
from reagent.metrics_log import MetricsLogger
from reagent.records import Trajectory
from reagent.train import checkpoint as ckpt
from reagent.train.algos import clipped_policy_loss, kl_k3, token_logprobs, token_mean
from reagent.train.batch import Batch, assign_rewards, collate, select_and_advantage
from reagent.train.config import TrainConfig
from reagent.train.setup import build_env_and_tasks, build_judge, build_models
from rrm.metrics import pearson


@contextlib.contextmanager
def timed(name: str, timings: dict[str, float]):
    start = time.perf_counter()
    yield
    timings[f"timing_s/{name}"] = timings.get(f"timing_s/{name}", 0.0) + time.perf_counter() - start


class GRPOTrainer:
    def __init__(self, config: TrainConfig):
        self.c = config
        self.out = Path(config.output_dir)
        m = build_models(config)
        self.acc, self.model, self.ref_model = m.accelerator, m.model, m.ref_model
        self.rank, self.world = m.rank, m.world_size
        self.tokenizer, self.optimizer, self.scheduler, self.backend = m.tokenizer, m.optimizer, m.scheduler, m.backend
        self.log = MetricsLogger(self.out, is_main=self.rank == 0)
        self.env, tasks = build_env_and_tasks(config)
        self.tasks = tasks[self.rank::self.world]
        self.loop = AgentLoop(self.backend, self.env, AgentConfig(
            max_turns=config.max_turns, max_tokens=config.max_tokens, max_new_tokens=config.max_new_tokens,
            temperature=config.temperature, top_p=config.top_p,
            seed=config.seed * 7919 + self.rank), policy_name=config.model)
        self.judge, self.judge_counter = build_judge(config)
        self.step, self.data_epoch, self.data_index = 0, 0, 0
        self._order = self._permutation(0)

    # ---- data ------------------------------------------------------------------------------
    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(len(self.tasks)))
        random.Random(self.c.seed * 1000 + epoch).shuffle(order)
        return order

    def next_prompts(self):
        picked = []
        while len(picked) < self.c.prompts_per_step:
            if self.data_index >= len(self._order):
                self.data_epoch, self.data_index = self.data_epoch + 1, 0
                self._order = self._permutation(self.data_epoch)
            picked.append(self.tasks[self._order[self.data_index]])
            self.data_index += 1
        return picked

    # ---- one step --------------------------------------------------------------------------
    def train_step(self) -> dict:
        c, timings = self.c, {}
        prompts = self.next_prompts()
        specs = [EpisodeSpec(task=t, messages=initial_messages(self.env, t), id=f"s{self.step}-{t.id}#{k}",
                             extra={"group": g}) for g, t in enumerate(prompts) for k in range(c.group_size)]
        with timed("rollout", timings):
            trajs = self.rollout(specs)
        scores: list[float | None] = [None] * len(trajs)
        keep = [True] * len(trajs)
        if c.uses_judge:
            with timed("judge", timings):
                scores, keep = self.judge_all(trajs, n_context=[0] * len(trajs))
        revise_skips: dict = {}
        if c.variant == "reagent-u":
            revised, revised_scores, revised_keep, revise_skips = self.revise(trajs, timings)
            trajs, scores, keep = trajs + revised, scores + revised_scores, keep + revised_keep
        reward_counts = assign_rewards(
            trajs, scores, c.judge_lambda if c.uses_judge else 0.0, c.truncated, c.truncation_penalty,
            keep=keep, group_ids=[t.extra["group"] for t in trajs], judged=c.uses_judge)
        metrics = self.reward_metrics(trajs, scores)
        metrics.update(reward_counts)
        metrics.update(revise_skips)
        usable = [t for t, k in zip(trajs, keep) if k]
        kept, adv, group_stats = select_and_advantage(
            usable, [t.extra["group"] for t in usable], c.advantage, c.keep_degenerate_groups, c.truncated)
        metrics.update(group_stats)
        with timed("update", timings):
            metrics.update(self.update(kept, adv))
        if c.save_rollouts:
            write_records(self.out / "rollouts" / f"step-{self.step + 1:06d}-rank{self.rank}.jsonl",
                          trajs)
        metrics.update(timings)
        metrics["timing_s/step"] = sum(timings.values())
        return metrics

    def rollout(self, specs: list[EpisodeSpec]) -> list[Trajectory]:
        self.model.eval()
        with torch.no_grad(), self._generation_weights():
            trajs = self.loop.run(specs)
        self.model.train()
        return trajs

    def _zero_stage(self) -> int:
        plugin = getattr(self.acc.state, "deepspeed_plugin", None)
        return plugin.zero_stage if plugin is not None else 0

    @contextlib.contextmanager
    def _generation_weights(self):
        """ZeRO-3 shards parameters: gather them for generation; otherwise a no-op."""
        if self._zero_stage() == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self.acc.unwrap_model(self.model).parameters())):
                yield
        else:
            yield

    def judge_all(self, trajs: list[Trajectory], n_context: list[int]) -> tuple[list, list]:
        """Judge each episode on its own attempt (a revised episode without its context)."""
        from rrm.judge import apply_failure_policy

        views = [t if n == 0 else _attempt_view(t, n) for t, n in zip(trajs, n_context)]
        judgments = self.judge.score(views)
        for t, j in zip(trajs, judgments):
            t.judge = j
        return apply_failure_policy(judgments, self.c.on_judge_failure, self.judge_counter)

    def revise(self, trajs: list[Trajectory], timings: dict) -> tuple[list, list, list, dict]:
        """Reagent-U: one critique-conditioned revision per initial episode (or per failed one).

        An episode whose judgment failed has no critique to act on and is not revised (a made-up
        critique would teach the policy to revise on nothing); nor is one without an outcome.
        Both are counted in ``revise/skipped_judge_failed`` and ``revise/skipped_no_outcome``.
        """
        wanted = [t for t in trajs if self.c.revise == "all" or (t.outcome or 0.0) < 1.0]
        no_outcome = [t for t in wanted if t.outcome is None]
        failed = [t for t in wanted if t.outcome is not None
                  and (t.judge is None or t.judge.score is None)]
        skips = {"revise/skipped_judge_failed": len(failed), "revise/skipped_no_outcome": len(no_outcome)}
        chosen = [t for t in wanted if t.outcome is not None and t.judge is not None
                  and t.judge.score is not None]
        task_of = {t.id: t for t in self.tasks}
        specs = []
        for t in chosen:
            critique = t.judge.critique
            task = task_of[t.task_id]
            specs.append(EpisodeSpec(task=task, messages=revision_messages(t, critique), id=t.id + "/rev",
                                     stage="revised", parent_id=t.id, extra={"group": t.extra["group"]}))
        if not specs:
            return [], [], [], skips
        with timed("rollout", timings):
            revised = self.rollout(specs)
        with timed("judge", timings):
            scores, keep = self.judge_all(revised, [len(s.messages) for s in specs])
        return revised, scores, keep, skips

    def reward_metrics(self, trajs: list[Trajectory], scores: list[float | None]) -> dict:
        initial = [t for t in trajs if t.stage == "initial"]
        judged = [(s, t.outcome or 0.0) for t, s in zip(trajs, scores) if s is not None]
        m = {
            "reward/outcome_mean": _mean(t.rewards["outcome"] for t in trajs),
            "reward/total_mean": _mean(t.rewards["total"] for t in trajs),
            "accuracy": _mean((t.outcome or 0.0) >= 1.0 for t in initial),
            "response/length_mean": _mean(sum(t.loss_mask or []) for t in trajs),
            "response/truncated_frac": _mean(t.truncated for t in trajs),
            "tools/calls_per_traj": _mean(sum(len(m.tool_calls or []) for m in t.messages
                                              if m.role == "assistant") for t in initial),
        }
        if self.c.uses_judge:
            m["reward/judge_mean"] = _mean(s for s, _ in judged) if judged else float("nan")
            corr = pearson([s for s, _ in judged], [o for _, o in judged])
            m["judge/outcome_corr"] = float("nan") if corr is None else corr
            m.update(self.judge_counter.metrics())
        if self.c.variant == "reagent-u":
            m["accuracy_revised"] = _mean((t.outcome or 0.0) >= 1.0 for t in trajs if t.stage == "revised")
        return m

    # ---- update ----------------------------------------------------------------------------
    def _logprobs(self, model, mb: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.acc.device
        logits = model(input_ids=mb.input_ids.to(device), attention_mask=mb.attention_mask.to(device)).logits
        return token_logprobs(logits, mb.input_ids.to(device))

    def _micro_batches(self, batch: Batch):
        size = self.c.micro_batch_size
        return [batch.slice(i, i + size) for i in range(0, len(batch), size)]

    @torch.no_grad()
    def _fill_old_logprobs(self, batch: Batch) -> None:
        old, ref = [], []
        self.model.eval()
        for mb in self._micro_batches(batch):
            old.append(self._logprobs(self.model, mb)[0].cpu())
            if self.ref_model is not None:
                ref.append(self._logprobs(self.ref_model, mb)[0].cpu())
        self.model.train()
        batch.old_logp = torch.cat(old)
        batch.ref_logp = torch.cat(ref) if ref else None

    def update(self, kept: list[Trajectory], adv: torch.Tensor) -> dict:
        """mu optimizer steps on the batch; every step accumulates over all micro-batches."""
        if not kept:
            self.acc.wait_for_everyone()
            return {"actor/skipped_update": 1.0}
        batch = collate(kept, adv, self.tokenizer.pad_token_id)
        self._fill_old_logprobs(batch)
        n_tokens = float(batch.loss_mask.sum().clamp(min=1.0))
        normalizer = n_tokens if self.c.loss_agg == "token-mean" else float(len(batch))
        stats: dict[str, float] = {}
        micro = self._micro_batches(batch)
        for _ in range(self.c.updates_per_batch):
            for i, mb in enumerate(micro):
                last = i == len(micro) - 1
                with self._accumulation(last):
                    logp, entropy = self._logprobs(self.model, mb)
                    mask = mb.loss_mask.to(logp.device)
                    loss, s = clipped_policy_loss(logp, mb.old_logp.to(logp.device), mb.advantages.to(logp.device),
                                                  mask, self.c.clip_low, self.c.clip_high, self.c.loss_agg,
                                                  normalizer)
                    ent = token_mean(entropy, mask, n_tokens)
                    loss = loss - self.c.entropy_coef * ent
                    if self.ref_model is not None:
                        kl = token_mean(kl_k3(logp, mb.ref_logp.to(logp.device)), mask, n_tokens)
                        loss = loss + self.c.kl_coef * kl
                        _add(stats, "actor/kl", float(kl.detach()))
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"non-finite loss {float(loss)} at step {self.step + 1}")
                    self.acc.backward(loss)
                _add(stats, "actor/pg_loss", float(loss.detach()))
                _add(stats, "actor/entropy", float(ent.detach()))
                _add(stats, "actor/clip_frac", s["clip_frac"] * len(mb) / len(batch))
            grad_norm = self.acc.clip_grad_norm_(self.model.parameters(), self.c.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
            _add(stats, "actor/grad_norm", float(grad_norm) if grad_norm is not None else float("nan"))
        stats = {k: v / self.c.updates_per_batch for k, v in stats.items()}
        stats["actor/lr"] = self.scheduler.get_last_lr()[0]
        stats["actor/trajectories"] = float(len(batch))
        if self.c.rollout_backend == "vllm":
            self.backend.load_weights(self.acc.unwrap_model(self.model).state_dict().items())
        return stats

    @contextlib.contextmanager
    def _accumulation(self, boundary: bool):
        """Sync gradients only at the last micro-batch (DDP no_sync; DeepSpeed boundary flag)."""
        engine = getattr(self.model, "set_gradient_accumulation_boundary", None)
        if engine is not None:
            engine(boundary)
            yield
        elif not boundary and self.world > 1:
            with self.acc.no_sync(self.model):
                yield
        else:
            yield

    # ---- run -------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"data_epoch": self.data_epoch, "data_index": self.data_index,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "judge_counter": vars(self.judge_counter) if self.judge_counter else None,
                "sampling_calls": self.loop._calls}

    def save(self) -> None:
        self.acc.wait_for_everyone()
        if self.rank == 0:
            model = self.acc.unwrap_model(self.model)
            ckpt.save_checkpoint(self.out, self.step, model, self.tokenizer, self.state(),
                                 keep=self.c.keep_checkpoints)
        self.acc.wait_for_everyone()

    def resume(self) -> None:
        last = ckpt.latest_checkpoint(self.out)
        if last is None:
            self.log.print(f"resume: no complete checkpoint in {self.out}; starting at step 0")
            return
        from safetensors.torch import load_file

        weights = load_file(str(last / "model" / "model.safetensors"))
        self.acc.unwrap_model(self.model).load_state_dict(weights, strict=False)
        state = ckpt.load_state(last)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        self.step, self.data_epoch, self.data_index = state["step"], state["data_epoch"], state["data_index"]
        self.loop._calls = state["sampling_calls"]
        if state["judge_counter"] and self.judge_counter is not None:
            vars(self.judge_counter).update(state["judge_counter"])
        self.log.truncate_after(self.step)  # steps logged after the checkpoint are redone
        self._order = self._permutation(self.data_epoch)
        self.log.print(f"resume: continuing from {last.name} (step {self.step}, epoch {self.data_epoch}, "
                       f"position {self.data_index})")

    def train(self) -> Path:
        c = self.c
        if self.rank == 0:
            save_config(c, self.out / "config.yaml")
        if c.resume:
            self.resume()
        bar = tqdm(total=c.max_steps, initial=self.step, desc=f"train {c.variant}",
                   disable=not self.rank == 0)
        while self.step < c.max_steps:
            metrics = self.train_step()
            self.step += 1
            metrics.update({"data/epoch": self.data_epoch, "data/index": self.data_index,
                            "dist/world_size": self.world, "dist/zero_stage": self._zero_stage(),
                            "config_hash": config_hash(c)})
            self.log.log(self.step, metrics)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward/total_mean']:.3f}", acc=f"{metrics['accuracy']:.2f}")
            if self.step % c.save_every == 0 or self.step == c.max_steps:
                self.save()
        bar.close()
        self.log.close()
        return ckpt.checkpoint_dir(self.out, self.step)


def _attempt_view(traj: Trajectory, n_context: int) -> Trajectory:
    """A revised episode as the judge should see it: the question, then only the new attempt."""
    head = [m for m in traj.messages[:2] if m.role in ("system", "user")]
    return Trajectory(id=traj.id, task_id=traj.task_id, messages=head + traj.messages[n_context:])


def _mean(values) -> float:
    """Mean of the values that exist (None: not computed, e.g. no outcome); NaN when none do."""
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def _add(stats: dict, key: str, value: float) -> None:
    stats[key] = stats.get(key, 0.0) + value


