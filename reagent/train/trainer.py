"""GRPO policy training with Reagent-R and Reagent-U (Fan et al., "Reagent", on top of GRPO).

One step reads like the algorithm:

1. **rollout**: B prompts x G episodes with the current policy (batched agent loop;
   token ids and loss masks kept as generated);
2. **judge** (reagent-r/u): the Agent-RRM scores every episode; under reagent-u each
   initial episode (all, or only failed ones) gets one **revised** episode whose
   prompt is question + first attempt + critique (:mod:`reagent.critique`), and the
   revised episodes are judged too. With an HTTP judge (``judge_base_url``) this
   overlaps the rollout: each episode is judged as it ends and each revision joins the
   running rollout when its critique arrives (:mod:`reagent.train.overlap`);
3. **reward**: R = outcome + lambda * score (outcome alone for grpo, or for a judge
   failure under ``on_judge_failure=outcome_only``; ``drop`` removes the episode;
   ``stop`` ends the run); ``outcome_weight`` w scales the outcome term (w = 0 for
   InversePRM: the PRM's step rewards below are then the only signal);
4. **advantage**: (R - mean_g) / (std_g + eps) per prompt group (``dr_grpo``: no std);
   under reagent-u initial and revised episodes of a prompt form ONE pooled group of
   up to 2G; groups with all-equal rewards are dropped and counted; with
   ``process_reward: prm`` each step's tokens also get alpha times the PRM's
   group-normalised step reward (:mod:`reagent.train.process_reward`);
5. **loss**: PPO-clip with eps_low/eps_high (0.2/0.28), ``token-mean`` or
   ``seq-mean-token-mean``, optional k3 KL to a reference model (off by default: no
   reference is loaded at coefficient 0) and entropy bonus; only the policy's own
   tokens are in the loss (prompts, tool results and critiques are masked);
6. **step**: mu optimizer steps per batch (AdamW, clip 1.0, warm-up + constant/cosine).
   At mu = 1 the "old" log-probs are the current ones detached (ratio 1; TRL and verl
   skip that forward too); only mu > 1 recomputes them before the first step. Logits are
   computed at loss positions only (:mod:`reagent.train.logprobs`); with ``share_prompt``
   each group's prompt runs once, its responses packed behind it with a block attention
   mask (:mod:`reagent.train.prefix_pack`), else micro-batches are length-bucketed padded
   rows; the update's peak memory is logged (``memory/``).

Runs single-process by default and under ``accelerate launch`` (DDP or DeepSpeed
ZeRO-2/3) for many processes; each process rolls out its own shard of prompts.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections import Counter
from pathlib import Path

import torch
from tqdm import tqdm

from reagent.agent import AgentConfig, AgentLoop, EpisodeSpec
from reagent.config import config_dict, config_hash, save_config
from reagent.critique import attempt_view, critique_of, revise_decision, revision_spec
from reagent.envs.base import initial_messages
from reagent.jsonl import write_records
from reagent.process import process_metrics, process_stats
from reagent.records import Trajectory
from reagent.train import runtime
from reagent.train.algos import clipped_policy_loss, kl_k3, token_mean
from reagent.train.batch import (Batch, assign_rewards, collate, length_buckets, padding_batch,
                                 select_and_advantage)
from reagent.tokenization import pad_token_id
from reagent.train.config import TrainConfig
from reagent.train.logprobs import sequence_logprobs
from reagent.train.memory import peak_memory, reset_peak_memory
from reagent.train.prefix_pack import PACKABLE_ATTENTION, pack, packed_logprobs, packed_micro_batches
from reagent.train.process_reward import prm_advantages
from reagent.train.setup import build_env_and_tasks, build_judge, build_models, build_prm
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
        self.ranks = m.ranks
        self.rank, self.world = self.ranks.rank, self.ranks.world
        self.tokenizer, self.optimizer, self.scheduler, self.backend = m.tokenizer, m.optimizer, m.scheduler, m.backend
        self.log = runtime.MetricsLogger(self.out, is_main=self.ranks.main, report_to=config.report_to,
                                         run_name=self.out.name, config=config_dict(config))
        self.env, tasks = build_env_and_tasks(config)
        self.tasks = tasks[self.rank::self.world]
        self.loop = AgentLoop(self.backend, self.env, AgentConfig(
            max_turns=config.max_turns, max_tokens=config.max_tokens, max_new_tokens=config.max_new_tokens,
            temperature=config.temperature, top_p=config.top_p,
            seed=config.seed * 7919 + self.rank, chat_template_kwargs=config.chat_template_kwargs,
            tool_format=config.tool_format), policy_name=config.model)
        self.judge, self.judge_counter = build_judge(config)
        self.prm = build_prm(config)
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
        # An HTTP judge runs elsewhere: episodes go to it as they finish and (reagent-u)
        # revisions join the rollout as their critiques arrive (reagent.train.overlap).
        stream = None
        if c.uses_judge and getattr(self.judge, "remote", False):
            from reagent.train.overlap import StreamingJudge

            stream = StreamingJudge(self.judge, len(specs), self.judge.backend.concurrency,
                                    self._revision_of if c.variant == "reagent-u" else None)
        try:
            with timed("rollout", timings):
                trajs = self.rollout(specs) if stream is None else self.rollout(specs, stream)
            trajs, streamed = trajs[:len(specs)], trajs[len(specs):]
            scores: list[float | None] = [None] * len(trajs)
            keep = [True] * len(trajs)
            if c.uses_judge:
                with timed("judge", timings):
                    scores, keep = self.judge_all(trajs, n_context=[0] * len(trajs), stream=stream)
            revise_skips: dict = {}
            if c.variant == "reagent-u":
                revised, revised_scores, revised_keep, revise_skips = self.revise(
                    trajs, timings, stream=stream, streamed=streamed)
                trajs, scores, keep = trajs + revised, scores + revised_scores, keep + revised_keep
        finally:
            if stream is not None:
                stream.close()
        reward_counts = assign_rewards(
            trajs, scores, c.judge_lambda if c.uses_judge else 0.0, c.truncated, c.truncation_penalty,
            keep=keep, group_ids=[t.extra["group"] for t in trajs], judged=c.uses_judge)
        if c.outcome_weight != 1.0:  # R = w * outcome (+ lambda * judge); w = 0: InversePRM
            for t in trajs:
                if t.rewards["total"] is not None and not (t.truncated and c.truncated == "penalise"):
                    t.rewards["total"] -= (1.0 - c.outcome_weight) * t.rewards["outcome"]
        metrics = self.reward_metrics(trajs, scores)
        metrics.update(reward_counts)
        metrics.update(revise_skips)
        usable = [t for t, k in zip(trajs, keep) if k]
        kept, adv, group_stats = select_and_advantage(
            usable, [t.extra["group"] for t in usable], c.advantage, c.keep_degenerate_groups, c.truncated)
        metrics.update(group_stats)
        if self.prm is not None and kept:  # process_reward=prm: (N,) -> (N, L) token advantages
            with timed("process_reward", timings):
                adv, process_stats = prm_advantages(self.prm, kept, adv, [t.extra["group"] for t in kept],
                                                    c.prm_reward, c.process_reward_coef)
            metrics.update(process_stats)
        with timed("update", timings):
            metrics.update(self.update(kept, adv))
        if c.save_rollouts:
            write_records(self.out / "rollouts" / f"step-{self.step + 1:06d}-rank{self.rank}.jsonl",
                          trajs)
        metrics.update(timings)
        metrics["timing_s/step"] = sum(timings.values())
        return metrics

    def rollout(self, specs: list[EpisodeSpec], stream=None) -> list[Trajectory]:
        """Under ZeRO-3 the weights are gathered for generation and every rank keeps
        generating until all are done (the backend's ``sync_ranks``). With ``stream``
        (a :class:`~reagent.train.overlap.StreamingJudge`) each episode is judged as it
        ends and revisions it hands back join the batch (returned after ``specs``')."""
        self.model.eval()
        with torch.no_grad(), runtime.generation_model(self.acc, self.model):
            trajs = self.loop.run(specs, on_finish=stream and stream.on_finish,
                                  more=stream and stream.revision_for and stream.more)
        self.model.train()
        return trajs

    def judge_all(self, trajs: list[Trajectory], n_context: list[int], stream=None) -> tuple[list, list]:
        """Judge each episode on its own attempt (a revised episode without its context);
        with ``stream`` the judgments were requested as the episodes finished: collect them."""
        from rrm.judge import apply_failure_policy

        if stream is not None:
            judgments = stream.judgments(trajs)
        else:
            views = [t if n == 0 else attempt_view(t, n) for t, n in zip(trajs, n_context)]
            judgments = self.judge.score(views)
            for t, j in zip(trajs, judgments):
                t.judge = j
        return apply_failure_policy(judgments, self.c.on_judge_failure, self.judge_counter)

    def revise(self, trajs: list[Trajectory], timings: dict, stream=None,
               streamed: list[Trajectory] | None = None) -> tuple[list, list, list, dict]:
        """Reagent-U: one critique-conditioned revision per initial episode (or per failed one).

        An episode whose judgment failed has no critique to act on and is not revised (a made-up
        critique would teach the policy to revise on nothing); nor is one without an outcome.
        Both are counted in ``revise/skipped_judge_failed`` and ``revise/skipped_no_outcome``.
        With ``stream`` the revisions already ran inside the rollout (``streamed``, in
        arrival order: put back in their parents' order) and were judged as they ended.
        """
        reasons = [self._revise_skip(t) for t in trajs]
        skips = {f"revise/skipped_{r}": reasons.count(r) for r in ("judge_failed", "no_outcome")}
        if stream is not None:
            position = {t.id: i for i, t in enumerate(trajs)}
            revised = sorted(streamed or [], key=lambda t: position[t.parent_id])
            n_context = [0] * len(revised)
        else:
            specs = [s for s in map(self._revision_of, trajs) if s is not None]
            if not specs:
                return [], [], [], skips
            with timed("rollout", timings):
                revised = self.rollout(specs)
            n_context = [len(s.messages) for s in specs]
        if not revised:
            return [], [], [], skips
        with timed("judge", timings):
            scores, keep = self.judge_all(revised, n_context, stream=stream)
        return revised, scores, keep, skips

    def _revise_skip(self, t: Trajectory) -> str | None:
        """Why an initial episode is not revised (``not_chosen`` by ``revise``, ``no_outcome``,
        ``judge_failed``: :func:`reagent.critique.revise_decision`), or None to revise it."""
        if not (self.c.revise == "all" or (t.outcome or 0.0) < 1.0):
            return "not_chosen"
        if t.outcome is None:
            return "no_outcome"
        return revise_decision(t.judge, None)

    def _revision_of(self, t: Trajectory) -> EpisodeSpec | None:
        """The revision of a judged initial episode, or None when it is not to be revised."""
        if self._revise_skip(t) is not None:
            return None
        return revision_spec(t, critique_of(t.judge), self._task_by_id[t.task_id],
                             extra={"group": t.extra["group"]})

    @functools.cached_property
    def _task_by_id(self) -> dict:
        return {t.id: t for t in self.tasks}

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
        if self.c.env == "toy":  # how the initial episodes worked: flaws by kind (issue 19)
            task_of = {t.id: t for t in self.tasks}
            m.update(process_metrics(process_stats(task_of[t.task_id], t) for t in initial))
        if self.c.variant == "reagent-u":
            m["accuracy_revised"] = _mean((t.outcome or 0.0) >= 1.0 for t in trajs if t.stage == "revised")
        return m

    # ---- update ----------------------------------------------------------------------------
    def _logprobs(self, model, mb: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs under the sampling distribution (logits / temperature), with logits
        only at the loss positions (:mod:`reagent.train.logprobs`); the entropy keeps its
        graph only when it is in the loss."""
        device = self.acc.device
        if mb.packed is not None:
            return packed_logprobs(model, mb.packed, mb.input_ids, mb.loss_mask, temperature=self.c.temperature,
                                   entropy_grad=self.c.entropy_coef != 0)
        return sequence_logprobs(model, mb.input_ids.to(device), mb.attention_mask.to(device),
                                 mb.loss_mask.to(device), temperature=self.c.temperature,
                                 entropy_grad=self.c.entropy_coef != 0)

    def _own_micro_batches(self, kept: list[Trajectory], adv: torch.Tensor) -> list[Batch]:
        """This rank's micro-batches: with ``share_prompt`` (and an attention kernel that takes
        a 4D mask) each group packed behind its prompt (:mod:`reagent.train.prefix_pack`),
        else length-bucketed padded rows; either way of similar lengths, at most
        ``micro_batch_size`` trajectories each."""
        pad_id = pad_token_id(self.tokenizer)
        size = self.c.micro_batch_size
        attention = getattr(self.acc.unwrap_model(self.model).config, "_attn_implementation", None)
        if self.c.share_prompt and attention in PACKABLE_ATTENTION:
            out = []
            for pieces in packed_micro_batches(kept, size, self.c.share_prompt_max_tokens):
                idx = [i for piece in pieces for i in piece]
                mb = collate([kept[i] for i in idx], adv[idx], pad_id)
                mb.packed = pack(kept, pieces, pad_id, mb.input_ids.shape[1])
                out.append(mb)
            return out
        return [collate([kept[i] for i in idx], adv[idx], pad_id)
                for idx in length_buckets([len(t.token_ids) for t in kept], size)]

    @torch.no_grad()
    def _fill_old_logprobs(self, micro: list[Batch], old: bool) -> None:
        """Old log-probs (only when mu > 1: at mu = 1 they are the current ones detached, as
        TRL and verl take them) and the reference model's (only with a KL term)."""
        self.model.eval()
        for mb in micro:
            if old:
                mb.old_logp = self._logprobs(self.model, mb)[0].cpu()
            if self.ref_model is not None:
                mb.ref_logp = self._logprobs(self.ref_model, mb)[0].cpu()
        self.model.train()

    def update(self, kept: list[Trajectory], adv: torch.Tensor) -> dict:
        """mu optimizer steps on the batch; every step accumulates over all micro-batches.

        Ranks agree first on the number of micro-batches (the most any rank has): a rank
        with fewer, or with nothing left after dropping degenerate groups, pads with
        zero-weight micro-batches; only when no rank has anything is the update skipped.
        """
        reset_peak_memory()
        own = self._own_micro_batches(kept, adv) if kept else []
        n_micro = self.ranks.max_int(len(own))
        if n_micro == 0:
            return {"actor/skipped_update": 1.0, **peak_memory()}
        # zero-weight padding (all-masked rows): every rank runs as many forwards and
        # backwards as the busiest (ZeRO-3, DDP)
        micro = own + [padding_batch(pad_token_id(self.tokenizer)) for _ in range(n_micro - len(own))]
        recompute_old = self.c.updates_per_batch > 1
        if recompute_old or self.ref_model is not None:
            self._fill_old_logprobs(micro, old=recompute_old)
        n_tokens = max(float(sum(sum(t.loss_mask) for t in kept)), 1.0)
        normalizer = n_tokens if self.c.loss_agg == "token-mean" else float(len(kept) or 1)
        n_rows = max(len(kept), 1)
        stats: dict[str, float] = {}
        for _ in range(self.c.updates_per_batch):
            for i, mb in enumerate(micro):
                last = i == len(micro) - 1
                with self._accumulation(last):
                    logp, entropy = self._logprobs(self.model, mb)
                    mask = mb.loss_mask.to(logp.device)
                    old_logp = logp.detach() if mb.old_logp is None else mb.old_logp.to(logp.device)
                    loss, s = clipped_policy_loss(logp, old_logp, mb.advantages.to(logp.device),
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
                _add(stats, "actor/clip_frac", s["clip_frac"] * len(mb) / n_rows)
            grad_norm = self.acc.clip_grad_norm_(self.model.parameters(), self.c.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
            _add(stats, "actor/grad_norm", float(grad_norm) if grad_norm is not None else float("nan"))
        stats = {k: v / self.c.updates_per_batch for k, v in stats.items()}
        stats["actor/lr"] = self.scheduler.get_last_lr()[0]
        stats["actor/trajectories"] = float(len(kept))
        stats["actor/micro_batches"] = float(n_micro)
        stats["actor/padded_tokens"] = float(sum((mb.input_ids if mb.packed is None else mb.packed.input_ids).numel()
                                                 for mb in micro))
        stats.update(peak_memory())
        if self.c.rollout_backend == "vllm":  # full tensors, gathered one by one under ZeRO-3
            self.backend.load_weights(runtime.full_weights(self.acc, self.model))
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
        """What the checkpoint's trainer_state.json holds (the optimizer, scheduler and
        RNG states are in its accelerate ``state/``)."""
        counter = self.judge_counter
        mine = None if counter is None else {
            "judged": counter.judged, "failed": counter.failed, "by_status": dict(counter.by_status)}
        # per rank (in rank order): each rank judges its own episodes, and without ZeRO-3
        # makes as many sampling calls as its own episodes need
        return {"data_epoch": self.data_epoch, "data_index": self.data_index,
                "judge_counter": self.ranks.gather([mine]),
                "sampling_calls": self.ranks.gather([self.loop._calls]), "config_hash": config_hash(self.c)}

    def save(self) -> None:
        runtime.save_checkpoint(self.acc, self.ranks, self.model, self.tokenizer, self.out, self.step,
                                self.state(), keep=self.c.keep_checkpoints)

    def resume(self) -> None:
        last = runtime.latest_checkpoint(self.out)
        if last is None:
            self.log.print(f"resume: no complete checkpoint in {self.out}; starting at step 0")
            return
        state = runtime.load_checkpoint(self.acc, last)  # weights, optimizer, scheduler, RNG
        self.step, self.data_epoch, self.data_index = state["step"], state["data_epoch"], state["data_index"]
        calls = state["sampling_calls"]
        if len(calls) != self.world:
            raise ValueError(f"{last} was written by {len(calls)} processes; resume it with as many "
                             f"(this run has {self.world})")
        self.loop._calls = calls[self.rank]
        counter = state["judge_counter"][self.rank]
        if counter and self.judge_counter is not None:
            self.judge_counter.judged, self.judge_counter.failed = counter["judged"], counter["failed"]
            self.judge_counter.by_status = Counter(counter["by_status"])
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
                            "dist/world_size": self.world, "dist/zero_stage": runtime.zero_stage(self.acc),
                            "config_hash": config_hash(c)})
            self.log.log(self.step, metrics)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward/total_mean']:.3f}", acc=f"{metrics['accuracy']:.2f}")
            if self.step % c.save_every == 0 or self.step == c.max_steps:
                self.save()
        bar.close()
        self.log.close()
        return runtime.checkpoint_dir(self.out, self.step)


def _mean(values) -> float:
    """Mean of the values that exist (None: not computed, e.g. no outcome); NaN when none do."""
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def _add(stats: dict, key: str, value: float) -> None:
    stats[key] = stats.get(key, 0.0) + value


