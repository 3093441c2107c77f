"""One GRPO step of reagent against TRL's GRPOTrainer: same model, task and settings (run by hand).

    pip install trl          # a benchmark-only dependency, never a project dependency
    python benchmarks/vs_trl.py [--steps 6] [--rounds 3] [--threads 2]

Both sides, in one process and alternating (reagent, TRL, reagent, TRL, ...; ``--rounds``
of each), train the same untrained 4.7M-parameter tiny Qwen2 (``make_tiny_model``
size ``small``, seed 0) on the same single-turn GSM8K-style task: env=math with
``tools: []`` (configs/gsm8k_grpo_single_turn.yaml), so both prompts are the same system
prompt and question through the same chat template. 8 prompts x 8 completions, at most
64 new tokens, temperature 1, no KL (TRL beta=0; reagent loads no reference), fp32, one
optimizer step per batch (mu = 1), PPO-clip 0.2/0.28, token-mean loss (TRL
``loss_type="dapo"``), AdamW at lr 1e-6 (so the untrained model keeps generating to
the limit on both sides, ~4k tokens a step), gradient clip 1.0, the outcome reward
(boxed answer checked with math-verify). An untrained model earns 0 everywhere, so
every group is degenerate: reagent keeps them (``keep_degenerate_groups``) so that both
sides run the full update over all 64 completions, as TRL does.

Each round runs ``--steps`` steps on a freshly built trainer; its first step is warm-up
and not counted. Printed per side: the median over the counted steps of the step, the
generation (reagent ``timing_s/rollout``: generation plus the outcome check; TRL its
``_generate_and_score_completions``: the same plus advantages) and the update (reagent
``timing_s/update``; TRL the step minus generation), generated tokens per step, and the
ratio reagent / TRL, each on two clocks: wall time and this process's CPU time (``cpu_*``).
Wall times depend on the machine's load: run it on a quiet machine and report ``uptime``
with the figures (it prints the load average before, after and at each round). On a
shared machine the CPU times are the steadier measure of the work each side does (both
sides run in one thread with ``--threads 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

PROMPTS, GROUP, NEW_TOKENS, LR = 8, 8, 64, 1e-6


def make_tasks(path: Path, n: int = 256) -> None:
    """GSM8K-format word problems (``answer`` ends in ``#### N``), deterministic."""
    rng = random.Random(0)
    names = ["Tom", "Ana", "Li", "Sam", "Maya", "Omar"]
    things = ["apples", "books", "coins", "stamps", "marbles"]
    with path.open("w") as f:
        for _ in range(n):
            a, b, c = rng.randint(2, 90), rng.randint(2, 90), rng.randint(2, 9)
            who, what = rng.choice(names), rng.choice(things)
            q = (f"{who} has {a} {what}. {who} buys {b} more and then gives away a {c}th of the "
                 f"rounded-down total. How many {what} does {who} have left?")
            total = a + b
            ans = total - total // c
            f.write(json.dumps({"question": q, "answer": f"{total} - {total} // {c} = {ans}\n#### {ans}"}) + "\n")


def reagent_round(model_dir: Path, data: Path, steps: int) -> list[dict]:
    from reagent.train.config import TrainConfig
    from reagent.train.trainer import GRPOTrainer

    config = TrainConfig(variant="grpo", model=str(model_dir), output_dir=tempfile.mkdtemp(), env="math",
                         benchmark="gsm8k", train_data=str(data), tools=[], prompts_per_step=PROMPTS,
                         group_size=GROUP, max_turns=1, max_tokens=NEW_TOKENS, max_new_tokens=NEW_TOKENS,
                         temperature=1.0, kl_coef=0.0, lr=LR, micro_batch_size=PROMPTS * GROUP,
                         keep_degenerate_groups=True, device="cpu", max_steps=steps)
    trainer = GRPOTrainer(config)
    phase: dict[str, tuple[float, float]] = {}
    for name in ("rollout", "update"):
        setattr(trainer, name, _timed(getattr(trainer, name), phase, name))
    rows = []
    for _ in range(steps):
        phase.clear()
        start = _now()
        m = trainer.train_step()
        step = _since(start)
        trainer.step += 1
        rows.append({"step": step[0], "generation": phase["rollout"][0], "update": phase["update"][0],
                     "cpu_step": step[1], "cpu_generation": phase["rollout"][1], "cpu_update": phase["update"][1],
                     "tokens": m["response/length_mean"] * PROMPTS * GROUP})
    return rows[1:]


def trl_round(model_dir: Path, data: Path, steps: int) -> list[dict]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from reagent.envs.math_env import SYSTEM_PROMPT_NO_TOOLS
    from reagent.rewards.math import gsm8k_reference, math_reward

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    dataset = Dataset.from_list([{"prompt": [{"role": "system", "content": SYSTEM_PROMPT_NO_TOOLS},
                                             {"role": "user", "content": r["question"]}],
                                  "answer": gsm8k_reference(r["answer"])} for r in rows])

    def outcome(prompts, completions, answer, **_):
        return [math_reward(c[-1]["content"], a) for c, a in zip(completions, answer)]

    args = GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=PROMPTS * GROUP,
                      num_generations=GROUP, max_completion_length=NEW_TOKENS, temperature=1.0, top_p=1.0,
                      beta=0.0, num_iterations=1, steps_per_generation=1, gradient_accumulation_steps=1,
                      epsilon=0.2, epsilon_high=0.28, loss_type="dapo", learning_rate=LR,
                      lr_scheduler_type="constant", max_grad_norm=1.0, max_steps=steps, logging_steps=1,
                      save_strategy="no", report_to="none", use_cpu=True, bf16=False, seed=0,
                      dataloader_num_workers=0, disable_dropout=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    timings: list[dict] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            timings.append({"start": _now(), "phases": {}})

        def on_step_end(self, *a, **k):
            timings[-1]["step"] = _since(timings[-1]["start"])

        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "completions/mean_length" in logs and timings:
                timings[-1]["tokens"] = logs["completions/mean_length"] * PROMPTS * GROUP

    trainer = GRPOTrainer(model=model, reward_funcs=outcome, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[Timer()])
    generate = trainer._generate_and_score_completions
    trainer._generate_and_score_completions = lambda *a, **k: _timed(generate, timings[-1]["phases"],
                                                                     "generation")(*a, **k)
    trainer.train()
    rows = []
    for t in timings:
        gen = t["phases"].get("generation", (0.0, 0.0))
        rows.append({"step": t["step"][0], "generation": gen[0], "update": t["step"][0] - gen[0],
                     "cpu_step": t["step"][1], "cpu_generation": gen[1], "cpu_update": t["step"][1] - gen[1],
                     "tokens": t.get("tokens", float("nan"))})
    return rows[1:]


def _now() -> tuple[float, float]:
    """(wall, CPU) clocks. CPU time is this process's (all its threads): on a shared machine
    it barely moves with other jobs' load, where wall time is mostly waiting for a core."""
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    now = _now()
    return now[0] - start[0], now[1] - start[1]


def _timed(fn, into: dict, name: str):
    """``fn`` adding its (wall, CPU) seconds to ``into[name]``."""
    def wrapper(*a, **k):
        start = _now()
        try:
            return fn(*a, **k)
        finally:
            spent = _since(start)
            before = into.get(name, (0.0, 0.0))
            into[name] = (before[0] + spent[0], before[1] + spent[1])
    return wrapper


def summary(rows: list[dict]) -> dict:
    keys = ("step", "generation", "update", "cpu_step", "cpu_generation", "cpu_update", "tokens")
    return {k: statistics.median(r[k] for r in rows) for k in keys}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6, help="steps per round (the first is warm-up)")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the two sides")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from reagent.tiny_model import make_tiny_model

    work = Path(tempfile.mkdtemp())
    model_dir = make_tiny_model(work / "policy", size="small", seed=0)
    from transformers import AutoModelForCausalLM

    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
    data = work / "gsm8k_train.jsonl"
    make_tasks(data)
    import transformers
    import trl

    print(f"model {n_params / 1e6:.2f}M parameters; torch {torch.__version__}, transformers "
          f"{transformers.__version__}, trl {trl.__version__}; threads {torch.get_num_threads()}; "
          f"load before: {os.getloadavg()}")
    results: dict[str, list[dict]] = {"reagent": [], "trl": []}
    for r in range(args.rounds):
        for side, run in (("reagent", reagent_round), ("trl", trl_round)):
            rows = run(model_dir, data, args.steps)
            results[side] += rows
            s = summary(rows)
            print(f"round {r + 1} {side:<8} step {s['step']:.2f} s  generation {s['generation']:.2f} s  "
                  f"update {s['update']:.2f} s  (CPU {s['cpu_step']:.2f} / {s['cpu_generation']:.2f} / "
                  f"{s['cpu_update']:.2f} s)  tokens {s['tokens']:.0f}  load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"load after: {os.getloadavg()}")
    ours, theirs = summary(results["reagent"]), summary(results["trl"])
    print(f"\nmedian of {len(results['reagent'])} steps per side ({args.rounds} rounds x {args.steps - 1})")
    print(f"{'':<15}{'reagent':>10}{'TRL':>10}{'ratio':>8}")
    for k in ("step", "generation", "update", "cpu_step", "cpu_generation", "cpu_update"):
        print(f"{k:<15}{ours[k]:>9.2f}s{theirs[k]:>9.2f}s{ours[k] / theirs[k]:>8.2f}")
    print(f"{'tokens/step':<15}{ours['tokens']:>10.0f}{theirs['tokens']:>10.0f}")


if __name__ == "__main__":
    main()
