"""Do process rewards steer anything? The PRM evidence study of issue 18, run by hand.

    python benchmarks/prm_evidence.py --out runs/prm --seeds 3 --size study \\
        --sft /tmp/eff/seed0/sft/final --demos /tmp/eff/seed0/data/demos.jsonl
    python benchmarks/prm_evidence.py --out /tmp/prm-smoke --seeds 1 --size smoke   # pipeline check, < 1 min
    python benchmarks/prm_evidence_report.py --run runs/prm --records docs/prm_results --md docs/prm_results.md

Per seed, on the toy ledger task, from one SFT policy (the quickstart's own ``make-policy``,
``demos`` and ``sft`` stages, or ``--sft``/``--demos`` imported from an earlier run, the same
start for every seed) and the quickstart's trained generative judge (its judge stages,
unchanged, or ``--judge`` imported):

* **scorers**: the SFT policy's rollouts on training tasks, labelled twice
  (``reagent label-steps``: TD+GAE with gamma 1, lambda 0.95; Monte-Carlo with ``mc``
  continuations per step); three value heads from the SFT policy's backbone
  (``reagent train-prm``): **AgentPRM** (TD+GAE labels, promise + progress, beta 1),
  **PVM** (MC labels, beta 0) and the **ORM** (``--objective orm``);
* **Best-of-N** on held-out questions, N up to ``best_of`` (the curve at 1, 2, 4, ...),
  for the three value heads and the generative **judge**: one ``reagent eval --best-of``
  per scorer with the same sampling seed, so every scorer ranks the same candidates;
* **beam search** (``reagent eval --beam W --expand K --scorer prm``) at a few widths;
  its generated tokens per question are compared with Best-of-N's at the same budget
  (N x the SFT policy's mean generated tokens per episode, from the plain eval);
* **InversePRM**: ``reagent train-prm --method inverse`` from the SFT policy and the
  demonstrations, no outcome reward, then the final policy evaluated against the SFT start;
* **GRPO with and without** ``process_reward: prm`` (the AgentPRM head) at equal steps.

The stages go through the quickstart's scheduler and launcher (:mod:`reagent.quickstart`),
``--jobs`` at a time; a finished stage leaves a marker (``seedS/stages/NAME.json``) and a
re-run skips it. Nothing here computes a number: ``prm_evidence_report.py`` does, from
the saved records.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from reagent.quickstart.budgets import BUDGETS, Budget
from reagent.quickstart.launch import Stage, fork_available, preload
from reagent.quickstart.pipeline import _eval_args, seed_stages
from reagent.quickstart.scheduler import run_plan

SCORERS = ("prm", "pvm", "orm", "judge")  # AgentPRM (TD+GAE, beta 1), PVM (MC, beta 0), ORM, generative judge
START_STAGES = ("make-policy", "demos", "sft")
JUDGE_STAGES = ("make-judge", "judge-traces", "annotate-traces", "annotate-demos", "judge-dataset", "train-judge")
RL_RUNS = ("grpo", "grpo-prm")


@dataclass(frozen=True)
class Sizes:
    base: str  # quickstart budget: SFT (when not imported), the judge's data and training, turn limits
    prm_traces: int  # training tasks the SFT policy is rolled out on for PRM labels
    prm_n: int  # rollouts per task
    mc_rollouts: int  # Monte-Carlo continuations per step (PVM labels)
    prm_epochs: int
    heldout: int  # held-out questions of every evaluation
    best_of: int  # N of Best-of-N (the curve runs 1, 2, 4, ..., N)
    beams: tuple[tuple[int, int], ...]  # (W, K) of each beam-search run
    eval_k: int  # samples per question of the plain evaluations (SFT, RL, InversePRM policies)
    rl_steps: int
    prompts_per_step: int
    group_size: int
    inverse_iterations: int
    inverse_rl_steps: int
    inverse_tasks: int  # demonstration tasks rolled out per InversePRM iteration


SIZES = {
    "smoke": Sizes(base="smoke", prm_traces=6, prm_n=2, mc_rollouts=2, prm_epochs=1, heldout=3, best_of=4,
                   beams=((2, 2),), eval_k=2, rl_steps=2, prompts_per_step=2, group_size=2,
                   inverse_iterations=1, inverse_rl_steps=2, inverse_tasks=4),
    # ~30 min for 3 seeds on 2 busy CPU cores (one thread per stage), from an imported SFT policy
    "study": Sizes(base="default", prm_traces=32, prm_n=4, mc_rollouts=4, prm_epochs=4, heldout=24, best_of=16,
                   beams=((2, 4), (4, 4)), eval_k=4, rl_steps=10, prompts_per_step=4, group_size=8,
                   inverse_iterations=2, inverse_rl_steps=6, inverse_tasks=32),
}


def study_budget(z: Sizes) -> Budget:
    """The quickstart budget the study's own stages use for turn and token limits (and the judge)."""
    b = BUDGETS[z.base]
    if z.base == "default":  # a smaller judge set than the quickstart's: the study shares 2 cores
        b = dataclasses.replace(b, judge_traces=64, judge_epochs=3, judge_max_examples=384, judge_eval_tasks=8)
    return b


def _mark_imported(s: Path, names: tuple[str, ...], source: dict) -> None:
    (s / "stages").mkdir(parents=True, exist_ok=True)
    for name in names:
        (s / "stages" / f"{name}.json").write_text(json.dumps(
            {"stage": name, "imported": source, "seconds": 0.0, "finished": time.strftime("%Y-%m-%d %H:%M:%S")},
            indent=2))


def import_start(root: Path, seed: int, sft: Path, demos: Path, judge: Path | None = None) -> None:
    """Copy an SFT policy, its demonstrations and (optionally) a trained judge into seed ``seed``
    and mark the stages that would have made them done."""
    s = root / f"seed{seed}"
    if not (s / "stages" / "sft.json").exists():
        shutil.copytree(sft, s / "sft" / "final", dirs_exist_ok=True)
        (s / "data").mkdir(parents=True, exist_ok=True)
        shutil.copy(demos, s / "data" / "demos.jsonl")
        _mark_imported(s, START_STAGES, {"sft": str(sft), "demos": str(demos)})
    if judge is not None and not (s / "stages" / "train-judge.json").exists():
        shutil.copytree(judge, s / "judge" / "final", dirs_exist_ok=True)
        _mark_imported(s, JUDGE_STAGES, {"judge": str(judge)})


def study_stages(root: Path, seed: int, z: Sizes, device: str = "cpu", judge: bool = True) -> list[Stage]:
    """One seed's stages (see the module doc), each a public ``reagent`` command; without
    ``judge``, no judge is trained and the judge's Best-of-N is left out for this seed."""
    b = study_budget(z)
    s = root / f"seed{seed}"
    d, sft, judge_dir = s / "data", str(s / "sft" / "final"), str(s / "judge" / "final")
    loop = ["--max-turns", str(b.max_turns), "--max-tokens", str(b.max_tokens),
            "--max-new-tokens", str(b.max_new_tokens), "--device", device]
    # The quickstart's own start and judge stages; none runs "alone": the study shares its cores
    stages = [dataclasses.replace(st, alone=False) for st in seed_stages(root, seed, b, device)
              if st.name in START_STAGES + (JUDGE_STAGES if judge else ())]
    # InversePRM first: its three commands in a row are the longest path
    inv = s / "inverse"
    stages.append(Stage("inverse-prm", [
        "train-prm", "--method", "inverse", "--demos", str(d / "demos.jsonl"), "--policy", sft, "--out", str(inv),
        "--iterations", str(z.inverse_iterations), "--rollout-tasks", str(z.inverse_tasks), "--rollout-n", "4",
        "--rl-steps", str(z.inverse_rl_steps), "--epochs", str(z.prm_epochs), "--lr", "1e-3", "--batch-size", "16",
        "--env-seed", str(seed), "--seed", str(seed), "--max-turns", str(b.max_turns), "--max-tokens",
        str(b.max_tokens), "--max-new-tokens", str(b.max_new_tokens), "--device", device,
        "--train-args", f"prompts_per_step={z.prompts_per_step}", f"group_size={z.group_size}", "lr=5e-4"],
        60, ("sft",)))
    stages += [
        Stage("prm-traces", ["rollout", "--model", sft, "--env", "toy", "--env-seed", str(seed), "--split", "train",
                             "--limit", str(z.prm_traces), "--n", str(z.prm_n), "--seed", str(seed + 3),
                             "--out", str(d / "prm_traces.jsonl"), *loop], 10, ("sft",)),
        Stage("labels-td", ["label-steps", "--traces", str(d / "prm_traces.jsonl"), "--method", "td_gae",
                            "--gamma", "1", "--lam", "0.95", "--out", str(d / "labels_td.jsonl")], 2, ("prm-traces",)),
        Stage("labels-mc", ["label-steps", "--traces", str(d / "prm_traces.jsonl"), "--method", "mc",
                            "--rollouts", str(z.mc_rollouts), "--model", sft, "--env", "toy",
                            "--env-seed", str(seed), "--seed", str(seed + 5), "--out", str(d / "labels_mc.jsonl"),
                            *loop], 30, ("prm-traces",)),
    ]
    prm_common = ["--model", sft, "--epochs", str(z.prm_epochs), "--batch-size", "16", "--lr", "1e-3",
                  "--seed", str(seed), "--resume"]
    stages += [
        Stage("train-prm", ["train-prm", "--data", str(d / "labels_td.jsonl"), "--out", str(s / "prm" / "prm"),
                            "--beta", "1", "--mc-data", str(d / "labels_mc.jsonl"), *prm_common], 20,
              ("labels-td", "labels-mc")),
        Stage("train-pvm", ["train-prm", "--data", str(d / "labels_mc.jsonl"), "--out", str(s / "prm" / "pvm"),
                            "--beta", "0", *prm_common], 20, ("labels-mc",)),
        Stage("train-orm", ["train-prm", "--data", str(d / "labels_td.jsonl"), "--out", str(s / "prm" / "orm"),
                            "--objective", "orm", *prm_common], 20, ("labels-td",)),
    ]
    sample_seed = str(seed + 11)  # one sampling seed for every Best-of-N run: the same candidates

    def evaluation(name: str, model: str, k: int, extra: list[str], needs: tuple[str, ...], eta: float) -> Stage:
        args = _eval_args(s, name, model, seed, b, device, z.heldout, k)
        args[args.index("--seed") + 1] = sample_seed
        return Stage(f"eval-{name}", args + extra, eta, needs)

    stages.append(evaluation("sft", sft, z.eval_k, [], ("sft",), 10))
    for scorer in SCORERS if judge else SCORERS[:-1]:
        extra = ["--best-of", str(z.best_of), "--scorer", scorer]
        if scorer == "judge":
            extra += ["--judge-model", judge_dir, "--judge-max-new-tokens", str(b.judge_tokens)]
            needs = ("sft", "train-judge")
        else:
            extra += ["--scorer-model", str(s / "prm" / scorer / "final")]
            needs = ("sft", f"train-{scorer}")
        stages.append(evaluation(f"bon-{scorer}", sft, 1, extra, needs, 30))
    for w, k in z.beams:
        stages.append(evaluation(f"beam-w{w}k{k}", sft, 1, ["--beam", str(w), "--expand", str(k), "--scorer", "prm",
                                                             "--scorer-model", str(s / "prm" / "prm" / "final")],
                                 ("sft", "train-prm"), 30))
    last_inverse = inv / f"iter-{z.inverse_iterations - 1}" / "policy" / "checkpoints" / \
        f"step-{z.inverse_rl_steps:06d}" / "model"
    stages.append(evaluation("inverse", str(last_inverse), z.eval_k, [], ("inverse-prm",), 10))
    for run in RL_RUNS:
        args = ["train", f"model={sft}", f"output_dir={s / 'rl' / run}", f"seed={seed}", f"env_seed={seed}",
                f"max_steps={z.rl_steps}", f"save_every={z.rl_steps}", "keep_checkpoints=1",
                f"prompts_per_step={z.prompts_per_step}", f"group_size={z.group_size}", f"max_turns={b.max_turns}",
                f"max_tokens={b.max_tokens}", f"max_new_tokens={b.max_new_tokens}", "lr=5e-4", f"device={device}",
                "create_missing_model=false", "resume=true"]
        needs: tuple[str, ...] = ("sft",)
        if run == "grpo-prm":
            args += ["process_reward=prm", f"prm_model={s / 'prm' / 'prm' / 'final'}"]
            needs = ("sft", "train-prm")
        stages.append(Stage(f"rl-{run}", args, 3.0 * z.rl_steps, needs))
        final = str(s / "rl" / run / "checkpoints" / f"step-{z.rl_steps:06d}" / "model")
        stages.append(evaluation(run, final, z.eval_k, [], (f"rl-{run}",), 10))
    return stages


def plan_order(plan: list[tuple[int, Stage]]) -> list[tuple[int, Stage]]:
    """Seed 0 whole first; then the other seeds side by side, the Best-of-N chain (labels, value
    heads, Best-of-N) before beam search and before the RL runs. The scheduler starts ready stages
    in this order, so a study cut short has one complete seed and the scorers' curves of the others."""
    def rank(item: tuple[int, Stage]) -> tuple[int, int, int]:
        seed, st = item
        late = 2 if st.name.startswith(("rl-", "inverse", "eval-grpo", "eval-inverse")) else \
            1 if st.name.startswith("eval-beam") else 0
        return (seed > 0, late if seed > 0 else 0, seed)
    return sorted(plan, key=rank)  # stable: within a rank, the stages keep their order


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="study directory (resumable: finished stages are skipped)")
    p.add_argument("--seeds", type=int, default=3, help="independent seeds 0..N-1 (the issue asks for 3)")
    p.add_argument("--size", default="study", choices=sorted(SIZES), help="smoke: pipeline check (< 1 min)")
    p.add_argument("--sft", default=None, help="an SFT policy to start every seed from (else the quickstart's "
                                               "make-policy/demos/sft stages make one per seed)")
    p.add_argument("--demos", default=None, help="with --sft: the demonstrations it was trained on")
    p.add_argument("--judge", default=None, help="with --sft: a trained judge for every seed (else the "
                                                "quickstart's judge stages train one per seed)")
    p.add_argument("--judge-seeds", type=int, default=None,
                   help="train the generative judge (and run its Best-of-N) on the first N seeds only "
                        "(default: every seed); the judge is the study's most expensive part on a CPU")
    p.add_argument("--jobs", type=int, default=2, help="stages at once (2 on a 2-core machine)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per stage (0: cores / jobs)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--launcher", default="fork", choices=("fork", "subprocess"))
    a = p.parse_args(argv)
    if a.seeds < 1 or a.jobs < 1:
        p.error(f"--seeds ({a.seeds}) and --jobs ({a.jobs}) must be >= 1")
    if (a.sft is None) != (a.demos is None) or (a.judge and not a.sft):
        p.error("--sft and --demos go together (the policy and the demonstrations it was trained on); "
                "--judge needs them")
    root, z = Path(a.out), SIZES[a.size]
    if a.sft:
        for seed in range(a.seeds):
            import_start(root, seed, Path(a.sft), Path(a.demos), Path(a.judge) if a.judge else None)
    judged = a.seeds if a.judge_seeds is None else a.judge_seeds
    plan = plan_order([(seed, st) for seed in range(a.seeds)
                       for st in study_stages(root, seed, z, a.device, judge=seed < judged)])
    launcher = a.launcher if fork_available() else "subprocess"
    if launcher == "fork":
        preload()
    threads = a.threads or max(1, (os.cpu_count() or 1) // a.jobs)
    start = time.time()

    def on_done(seed: int, stage: Stage, done: dict) -> None:
        how = "skipped (done before)" if done.get("skipped") else f"{done['seconds']:.1f} s"
        print(f"prm-evidence: seed {seed}: {stage.name}: {how} [{time.time() - start:.0f} s]", file=sys.stderr)

    root.mkdir(parents=True, exist_ok=True)  # the settings first: a study cut short can still be reported
    (root / "study.json").write_text(json.dumps(
        {"seeds": a.seeds, "size": a.size, "sizes": dataclasses.asdict(z), "sft": a.sft, "demos": a.demos,
         "judge": a.judge, "judge_seeds": judged,
         "budget": dataclasses.asdict(study_budget(z))}, indent=2))
    run_plan(root, plan, a.jobs, launcher, threads, on_done)
    print(f"prm-evidence: done in {time.time() - start:.0f} s; now run benchmarks/prm_evidence_report.py "
          f"--run {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
