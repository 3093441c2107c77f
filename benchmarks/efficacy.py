"""Does the judge's signal improve the policy? The efficacy study of issue 19, run by hand.

    python benchmarks/efficacy.py --out runs/efficacy --seeds 3 --steps 60 --size default
    python benchmarks/efficacy.py --out /tmp/eff --seeds 1 --steps 4 --size smoke   # pipeline check
    python benchmarks/efficacy_report.py --run runs/efficacy --records docs/results --md docs/results.md

Per seed, on the toy ledger task: the quickstart's own stages make one SFT policy and one
trained judge (:func:`reagent.quickstart.pipeline.seed_stages`, everything up to the
judge-quality report); then, at equal RL steps from that SFT start,

* ``grpo`` (outcome reward only),
* ``reagent-r`` and ``reagent-u`` with (a) the **oracle** judge, the rules checker behind
  the judge interface (``judge_model=rules``, :class:`rrm.judge.RulesJudge`), and (b) the
  **trained** judge;

each evaluated on held-out questions every ``--eval-every`` steps (accuracy, answer-neutral
flaws by kind, tool calls, tokens: :mod:`reagent.process`); the training runs log the
zero-signal group fraction (``groups/degenerate_frac``) and the same process metrics per
step. Reagent-C runs on the SFT and final grpo policies with both judges, revising every
scored attempt (``all``) and only those below ``--revise-below`` with a critique that names
a flaw (``below``), with keep and fix rates.

The stages go through the quickstart's scheduler and launcher, ``--jobs`` at a time
(two on a 2-core machine); each finished stage leaves a marker and a re-run skips it,
so a killed study resumes. Nothing here computes a number: ``efficacy_report.py`` does,
from the saved records.
"""

from __future__ import annotations

import argparse
import json
import dataclasses
import os
import sys
import time
from pathlib import Path

from reagent.quickstart.budgets import BUDGETS, Budget
from reagent.quickstart.launch import Stage, fork_available, preload
from reagent.quickstart.pipeline import _eval_args, _train_args, seed_stages
from reagent.quickstart.scheduler import run_plan

RL_RUNS = ("grpo", "reagent-r-rules", "reagent-u-rules", "reagent-r-trained", "reagent-u-trained")
JUDGES = ("rules", "trained")
JUDGE_RL_STAGES = ("train-judge-rl", "judge-quality-sft")
BASE_STAGES = ("make-policy", "make-judge", "demos", "sft", "judge-traces", "annotate-traces", "annotate-demos",
               "judge-dataset", "train-judge", "heldout-traces", "annotate-heldout", "judge-quality")


def variant_of(run: str) -> str:
    return run.removesuffix("-rules").removesuffix("-trained")


def eval_steps(steps: int, every: int) -> list[int]:
    """The RL steps with a held-out evaluation: every ``every`` and the last."""
    return sorted({*range(every, steps + 1, every), steps})


def study_budget(size: str, steps: int, judge_rl_steps: int = 0) -> Budget:
    """The quickstart budget ``size`` with ``steps`` RL steps and ``judge_rl_steps`` judge RL steps."""
    return dataclasses.replace(BUDGETS[size], rl_steps=steps, judge_rl_steps=judge_rl_steps)


def _replace_arg(args: list[str], key: str, value: str) -> list[str]:
    return [f"{key}={value}" if a.startswith(key + "=") else a for a in args]


def study_stages(root: Path, seed: int, b: Budget, every: int, revise_below: float,
                 device: str = "cpu", trained_judge: str = "sft") -> list[Stage]:
    """One seed's stages: the quickstart's base stages, then the RL runs, evals and Reagent-C.
    ``trained_judge`` (sft | rl): which trained judge the ``*-trained`` runs and Reagent-C use
    when a judge RL stage runs (both judges get a held-out quality report either way)."""
    if trained_judge not in ("sft", "rl"):
        raise ValueError(f"trained_judge must be 'sft' or 'rl', got {trained_judge!r}")
    base = BASE_STAGES + (JUDGE_RL_STAGES if b.judge_rl_steps else ())
    stages = [st for st in seed_stages(root, seed, b, device) if st.name in base]
    s = root / f"seed{seed}"
    sft = str(s / "sft" / "final")
    # The judge of the "trained" runs: the SFT one, or with trained_judge="rl" the RL one
    rl = bool(b.judge_rl_steps) and trained_judge == "rl"
    trained = str(s / ("judge_rl" if rl else "judge") / "final")
    judge_done = "train-judge-rl" if rl else "train-judge"
    judge_path = {"rules": "rules", "trained": trained}
    steps = eval_steps(b.rl_steps, every)
    stages.append(Stage("eval-sft", _eval_args(s, "sft", sft, seed, b, device, b.eval_tasks, b.eval_k), 5,
                        ("sft",)))
    for run in RL_RUNS:
        variant, judge = variant_of(run), run.rsplit("-", 1)[-1]
        args = _train_args(s, variant, seed, b, sft, judge_path.get(judge, trained), device)
        args = _replace_arg(_replace_arg(args, "output_dir", str(s / "rl" / run)), "save_every", str(every))
        needs = ("sft",) + ((judge_done,) if judge == "trained" else ())
        stages.append(Stage(f"rl-{run}", args, 4.0 * b.rl_steps, needs))
        for step in steps:
            model = str(s / "rl" / run / "checkpoints" / f"step-{step:06d}" / "model")
            stages.append(Stage(f"eval-{run}-step{step}", _eval_args(s, f"{run}-step{step}", model, seed, b,
                                                                     device, b.eval_tasks, b.eval_k), 5,
                                (f"rl-{run}",)))
    grpo_final = str(s / "rl" / "grpo" / "checkpoints" / f"step-{b.rl_steps:06d}" / "model")
    for policy, model, need in (("sft", sft, "sft"), ("grpo", grpo_final, "rl-grpo")):
        for judge in JUDGES:
            for mode, extra in (("all", []), ("below", ["--revise-below", str(revise_below)])):
                name = f"critique-{policy}-{judge}-{mode}"
                args = _eval_args(s, name, model, seed, b, device, b.eval_tasks, b.eval_k)
                args += ["--critique", "--judge-model", judge_path[judge],
                         "--judge-max-new-tokens", str(b.judge_tokens), *extra]
                stages.append(Stage(f"eval-{name}", args, 10,
                                    (need,) + ((judge_done,) if judge == "trained" else ())))
    return stages


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="study directory (resumable: finished stages are skipped)")
    p.add_argument("--seeds", type=int, default=3, help="independent seeds 0..N-1 (the issue asks for 3)")
    p.add_argument("--steps", type=int, default=60, help="RL steps of every run (the issue asks for >= 60)")
    p.add_argument("--eval-every", type=int, default=20, help="held-out evaluation every N RL steps")
    p.add_argument("--size", default="default", choices=sorted(BUDGETS),
                   help="quickstart budget for model sizes, SFT, judge data and eval sizes")
    p.add_argument("--revise-below", type=float, default=0.9,
                   help="Reagent-C 'below' mode: revise only attempts the judge scored below this")
    p.add_argument("--judge-rl-steps", type=int, default=0,
                   help="judge RL (train-rrm-rl) steps after the judge's SFT; both judges get a held-out "
                        "quality report (see --trained-judge). 0: SFT judge only")
    p.add_argument("--trained-judge", default="sft", choices=("sft", "rl"),
                   help="with --judge-rl-steps: the judge of the '*-trained' runs and of Reagent-C "
                        "(sft: the SFT judge; rl: SFT then RL)")
    p.add_argument("--jobs", type=int, default=2, help="stages at once (2 on a 2-core machine)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--launcher", default="fork", choices=("fork", "subprocess"))
    a = p.parse_args(argv)
    for name in ("seeds", "steps", "eval_every", "jobs"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if not 0 < a.revise_below <= 1:
        p.error(f"--revise-below must be in (0, 1], got {a.revise_below}")
    if a.judge_rl_steps < 0:
        p.error(f"--judge-rl-steps must be >= 0, got {a.judge_rl_steps}")
    root, b = Path(a.out), study_budget(a.size, a.steps, a.judge_rl_steps)
    plan = [(s, st) for s in range(a.seeds)
            for st in study_stages(root, s, b, min(a.eval_every, a.steps), a.revise_below, a.device,
                                   a.trained_judge)]
    launcher = a.launcher if fork_available() else "subprocess"
    if launcher == "fork":
        preload()
    threads = max(1, (os.cpu_count() or 1) // a.jobs)
    start = time.time()

    def on_done(seed: int, stage: Stage, done: dict) -> None:
        how = "skipped (done before)" if done.get("skipped") else f"{done['seconds']:.1f} s"
        print(f"efficacy: seed {seed}: {stage.name}: {how} [{time.time() - start:.0f} s]", file=sys.stderr)

    run_plan(root, plan, a.jobs, launcher, threads, on_done)
    (root / "study.json").write_text(json.dumps(
        {"seeds": a.seeds, "steps": a.steps, "eval_every": min(a.eval_every, a.steps), "size": a.size,
         "revise_below": a.revise_below, "trained_judge": a.trained_judge, "budget": dataclasses.asdict(b)}, indent=2))
    print(f"efficacy: done in {time.time() - start:.0f} s; now run benchmarks/efficacy_report.py --run {root}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
