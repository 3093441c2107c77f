"""Judge speed (run by hand): batched vs one at a time, prefix cache, overlap with rollouts.

    # throughput of a local judge on trajectories (defaults: the quickstart's files)
    python benchmarks/judge.py throughput --judge QS/seed0/judge/final \\
        --traces QS/seed0/data/heldout_traces.jsonl [--n 64] [--max-new-tokens 512]
    # a Reagent-R step against a judge server answering in --delay seconds
    python benchmarks/judge.py overlap [--delay 1.0] [--prompts 8 --group 8]

``throughput`` judges the same ``n`` trajectories four ways -- batch ``n`` or batch 1,
with or without the shared system-prompt KV cache -- alternating the ways for
``--repeats`` rounds, and prints the median seconds, items/s, generated tokens/s, the
statuses (which must agree: the ways differ in speed only) and the ratios.

``overlap`` runs Reagent-R steps of ``prompts x group`` episodes against the scripted
judge server of the tests (127.0.0.1, answering after ``--delay`` seconds,
``judge_concurrency`` requests in flight). The policy is the tests' scripted one taking
``--turn-s`` seconds a turn, its episodes ending after 1 to 5 turns as a real policy's do
(an untrained tiny model ends every episode in the same turn, which leaves nothing to
overlap; ``--turn-s 0`` uses it anyway); the trainer's update is real. It prints the rollout alone, the
judge alone (the same episodes after the rollout: what a step cost before overlap), and
the overlapped step's rollout + judge time, with the ratios.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.scripted for `overlap`


def throughput(args: argparse.Namespace) -> None:
    from reagent.jsonl import load_records
    from reagent.records import Trajectory
    from rrm.judge import LocalJudge

    trajs = load_records(args.traces, Trajectory, skip_bad=True)
    trajs = (trajs * (args.n // max(len(trajs), 1) + 1))[:args.n]
    judge = LocalJudge(args.judge, batch_size=args.n, device="cpu", dtype="float32",
                       max_new_tokens=args.max_new_tokens)
    tokens = [0]
    generate = judge._generate

    def counting(convs, params):
        gens = generate(convs, params)
        tokens[0] += sum(len(g.token_ids) for g in gens)
        return gens
    judge._generate = counting
    ways = {"batched+cache": (args.n, True), "batched": (args.n, False),
            "one-at-a-time+cache": (1, True), "one-at-a-time": (1, False)}
    times: dict[str, list[float]] = {w: [] for w in ways}
    made: dict[str, tuple[int, Counter]] = {}
    judge.score(trajs[:2])  # warm-up
    for _ in range(args.repeats):
        for way, (batch, cache) in ways.items():
            judge.backend.batch_size, judge.backend.prefix_cache = batch, cache
            tokens[0] = 0
            start = time.perf_counter()
            judgments = judge.score(trajs)
            times[way].append(time.perf_counter() - start)
            made[way] = (tokens[0], Counter(j.status for j in judgments))
    print(f"judge {args.judge}: {len(trajs)} trajectories from {args.traces}, "
          f"max_new_tokens {args.max_new_tokens}, median of {args.repeats}")
    med = {w: statistics.median(t) for w, t in times.items()}
    for way in ways:
        n_tok, statuses = made[way]
        print(f"  {way:<20} {med[way]:7.2f} s  {len(trajs) / med[way]:7.1f} items/s  "
              f"{n_tok / med[way]:8.0f} tok/s  {n_tok} tokens  {dict(statuses)}")
    print(f"  batched / one-at-a-time (both with cache): "
          f"{med['one-at-a-time+cache'] / med['batched+cache']:.2f}x faster")
    print(f"  batched+cache / one-at-a-time (no cache, the old way): "
          f"{med['one-at-a-time'] / med['batched+cache']:.2f}x faster")
    print(f"  prefix cache, batched: {med['batched'] / med['batched+cache']:.2f}x faster; "
          f"one at a time: {med['one-at-a-time'] / med['one-at-a-time+cache']:.2f}x faster")


def overlap(args: argparse.Namespace) -> None:
    from reagent.agent import EpisodeSpec
    from reagent.envs.base import initial_messages
    from reagent.tiny_model import make_tiny_model
    from reagent.train.config import TrainConfig
    from reagent.train.trainer import GRPOTrainer
    from rrm.prompt import format_judgment
    from tests.scripted import ScriptedServer, SlowScripted, staggered_solver

    out = Path(tempfile.mkdtemp())
    policy = make_tiny_model(out / "policy", size=args.size, seed=0)
    with ScriptedServer(lambda body: format_judgment("a", "- b", 0.5), delay_s=args.delay) as srv:
        trainer = GRPOTrainer(TrainConfig(
            model=str(policy), output_dir=str(out / "run"), variant="reagent-r", env="toy",
            judge_base_url=srv.url, judge_concurrency=args.concurrency, prompts_per_step=args.prompts,
            group_size=args.group, max_turns=6, max_tokens=args.max_tokens,
            max_new_tokens=args.max_new_tokens, device="cpu", max_steps=args.steps, train_tasks=256))
        if args.turn_s > 0:  # a policy whose episodes end after 1-5 turns of turn_s seconds each
            trainer.loop.backend = SlowScripted(trainer.tokenizer, staggered_solver(), delay_s=args.turn_s)
        rollout_s, judge_s, step_s = [], [], []
        for k in range(args.steps + 1):
            tasks = trainer.next_prompts()
            specs = [EpisodeSpec(task=t, messages=initial_messages(trainer.env, t), id=f"b{k}-{t.id}#{i}",
                                 extra={"group": g}) for g, t in enumerate(tasks) for i in range(args.group)]
            start = time.perf_counter()
            trajs = trainer.rollout(specs)
            r = time.perf_counter() - start
            start = time.perf_counter()
            trainer.judge.score(trajs)
            j = time.perf_counter() - start
            m = trainer.train_step()
            if k:  # the first round warms up
                rollout_s.append(r)
                judge_s.append(j)
                step_s.append(m["timing_s/rollout"] + m["timing_s/judge"])
    r, j, s = (statistics.median(x) for x in (rollout_s, judge_s, step_s))
    print(f"reagent-r, {args.prompts}x{args.group} episodes, judge answers in {args.delay} s, "
          f"{args.concurrency} in flight; median of {args.steps} steps after a warm-up")
    print(f"  rollout alone {r:6.2f} s   judge alone {j:6.2f} s   sum {r + j:6.2f} s")
    print(f"  overlapped rollout+judge {s:6.2f} s = {s / r:.2f}x the rollout alone, "
          f"{s / (r + j):.2f}x the sum, {s / max(r, j):.2f}x max(rollout, judge)")


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # per-item judge warnings would flood the output
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--judge", required=True)
    t.add_argument("--traces", required=True)
    t.add_argument("--n", type=int, default=64)
    t.add_argument("--max-new-tokens", type=int, default=512)
    t.add_argument("--repeats", type=int, default=3)
    o = sub.add_parser("overlap")
    o.add_argument("--delay", type=float, default=1.0)
    o.add_argument("--concurrency", type=int, default=64)
    o.add_argument("--prompts", type=int, default=8)
    o.add_argument("--group", type=int, default=8)
    o.add_argument("--turn-s", type=float, default=0.5,
                   help="scripted policy: seconds per turn (episodes end after 1-5 turns); "
                        "0: the untrained tiny policy itself (every episode ends at once)")
    o.add_argument("--max-tokens", type=int, default=600)
    o.add_argument("--max-new-tokens", type=int, default=64)
    o.add_argument("--size", default="micro")
    o.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    throughput(args) if args.cmd == "throughput" else overlap(args)


if __name__ == "__main__":
    main()
