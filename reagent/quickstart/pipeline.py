"""The quickstart's stages: each one a call of a public ``reagent`` command.

:func:`seed_stages` lists one seed's stages, each with the stages it needs; the
scheduler (:mod:`reagent.quickstart.scheduler`) runs them and the launcher
(:mod:`reagent.quickstart.launch`) starts each in its own process.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from reagent.quickstart.budgets import Budget
from reagent.quickstart.launch import Stage

VARIANTS = ("grpo", "reagent-r", "reagent-u")


def _repo_file(*parts: str) -> Path | None:
    """A file shipped beside the package in a source checkout (configs/), if present."""
    import reagent

    path = Path(reagent.__file__).resolve().parents[1].joinpath(*parts)
    return path if path.exists() else None


def _package_file(module: str, *parts: str) -> str:
    import importlib

    return str(Path(importlib.import_module(module).__file__).parent.joinpath(*parts))


def seed_stages(root: Path, seed: int, b: Budget, device: str = "cpu") -> list[Stage]:
    """Every stage of one seed's run, in order."""
    s = root / f"seed{seed}"
    p, d = str(s / "models" / "policy0"), s / "data"
    sft, judge_sft = str(s / "sft" / "final"), str(s / "judge" / "final")
    # With a judge RL stage, every later stage uses the RL judge (the SFT one is still scored)
    judge = str(s / "judge_rl" / "final") if b.judge_rl_steps else judge_sft
    judge_done = "train-judge-rl" if b.judge_rl_steps else "train-judge"
    loop = ["--max-turns", str(b.max_turns), "--max-tokens", str(b.max_tokens),
            "--max-new-tokens", str(b.max_new_tokens), "--device", device]
    toy_seed = ["--env-seed", str(seed)]
    # ETA guesses (seconds) from the default budget on a 2-core machine with the fork
    # launcher (one thread per stage unless it runs alone), scaled by size.
    judge_data = b.judge_max_examples / 640
    # One tokenizer corpus for both models: every text either of them reads or writes.
    corpus = [_package_file("reagent.envs", "toy.py"), _package_file("reagent", "prompts", "critique_injection.txt"),
              _package_file("rrm", "prompts", "judge_system.txt"), _package_file("reagent.envs", "toy_checker.py")]
    judge0 = str(s / "models" / "judge0")
    stages = [
        Stage("make-policy", ["make-tiny-model", "--out", p, "--size", b.policy_size, "--seed", str(seed),
                              "--extra-corpus", *corpus], 1),
        Stage("make-judge", ["make-tiny-model", "--out", judge0, "--size", b.judge_size,
                             "--seed", str(seed + 100), "--extra-corpus", *corpus], 1),
        Stage("demos", ["demos", "--out", str(d / "demos.jsonl"), "--limit", str(b.demos), "--seed", str(seed),
                        "--flaw-rate", str(b.flaw_rate), "--revision-rate", str(b.revision_rate), *toy_seed], 1),
        Stage("sft", ["sft", "--data", str(d / "demos.jsonl"), "--model", p, "--out", str(s / "sft"),
                      "--max-steps", str(b.sft_steps), "--batch-size", str(b.sft_batch), "--lr", str(b.sft_lr),
                      "--seed", str(seed), "--schedule", "constant", "--val-fraction", str(b.sft_val_fraction),
                      "--eval-every", str(max(b.sft_steps // 4, 1))], 10 + 0.22 * b.sft_steps, ("make-policy", "demos"),
              alone=True),
        Stage("judge-traces", ["rollout", "--model", sft, "--env", "toy", "--split", "train",
                               "--limit", str(b.judge_traces), "--n", str(b.judge_n), "--seed", str(seed),
                               "--out", str(d / "policy_traces.jsonl"), *toy_seed, *loop], 5 + 0.02 * b.judge_traces * b.judge_n, ("sft",)),
        Stage("annotate-traces", ["annotate", "--traces", str(d / "policy_traces.jsonl"), "--teacher", "rules",
                                  "--out", str(d / "annotations.jsonl"), "--no-progress", *toy_seed], 1, ("judge-traces",)),
        Stage("annotate-demos", ["annotate", "--traces", str(d / "demos.jsonl"), "--teacher", "rules",
                                 "--limit", str(b.judge_max_examples // 2), "--out", str(d / "demo_annotations.jsonl"),
                                 "--no-progress", *toy_seed], 1, ("demos",)),
        Stage("judge-dataset", ["build-dataset", "--judgments", str(d / "annotations.jsonl"),
                                str(d / "demo_annotations.jsonl"), "--out-dir", str(d / "judge"),
                                "--no-save-hf", "--seed", str(seed)], 1, ("annotate-traces", "annotate-demos")),
        Stage("train-judge", ["train-rrm", "--data", str(d / "judge" / "train.jsonl"), "--val-data",
                              str(d / "judge" / "validation.jsonl"), "--model", judge0,
                              "--out", str(s / "judge"), "--epochs", str(b.judge_epochs), "--lr", "3e-3",
                              "--batch-size", "16", "--grad-accum", "1", "--seed", str(seed),
                              "--eval-max-examples", str(b.judge_eval_tasks), "--eval-max-new-tokens", str(b.judge_tokens),
                              "--no-eval-before"], 10 + 37 * b.judge_epochs * judge_data,
              ("judge-dataset", "make-judge"), alone=True),
        Stage("heldout-traces", ["rollout", "--model", sft, "--env", "toy", "--split", "heldout",
                                 "--limit", str(b.judge_eval_tasks), "--n", "2", "--seed", str(seed + 1),
                                 "--out", str(d / "heldout_traces.jsonl"), *toy_seed, *loop], 3, ("sft",)),
        Stage("annotate-heldout", ["annotate", "--traces", str(d / "heldout_traces.jsonl"), "--teacher", "rules",
                                   "--out", str(d / "heldout_annotations.jsonl"), "--no-progress",
                                   *toy_seed], 1, ("heldout-traces",)),
        Stage("judge-quality", ["eval-rrm", "--model", judge, "--data", str(d / "heldout_annotations.jsonl"),
                                "--out", str(s / "eval" / "judge_quality.json"), "--max-new-tokens", str(b.judge_tokens),
                                "--device", device], 2 + 0.04 * b.judge_eval_tasks, (judge_done, "annotate-heldout")),
    ]
    if b.judge_rl_steps:
        stages += _judge_rl_stages(s, d, seed, b, judge_sft, device)
    rl_seconds = {v: per_step * b.rl_steps + 10 for v, per_step in
                  {"grpo": 2.0, "reagent-r": 6.5, "reagent-u": 11.6}.items()}
    # Longest first: the scheduler starts ready stages in list order.
    for v in sorted(VARIANTS, key=rl_seconds.get, reverse=True):
        stages.append(Stage(f"rl-{v}", _train_args(s, v, seed, b, sft, judge, device), rl_seconds[v],
                            ("sft",) if v == "grpo" else ("sft", judge_done)))
    stages += _eval_stages(s, seed, b, sft, judge, judge_done, device)
    return stages


def _train_args(s: Path, variant: str, seed: int, b: Budget, sft: str, judge: str, device: str) -> list[str]:
    """Same steps, prompts and trajectories per step for every variant: reagent-u samples
    G/2 initial rollouts and revises each once, so it too trains on G per prompt."""
    config = _repo_file("configs", f"toy_{variant.replace('-', '_')}.yaml")
    group = b.group_size // 2 if variant == "reagent-u" else b.group_size
    args = ["train"] + (["--config", str(config)] if config else [])
    args += [f"variant={variant}", f"model={sft}", f"output_dir={s / 'rl' / variant}", f"seed={seed}",
             f"env_seed={seed}", f"max_steps={b.rl_steps}", f"save_every={max(b.rl_steps // 2, 1)}",
             "keep_checkpoints=0", f"prompts_per_step={b.prompts_per_step}", f"group_size={max(group, 2)}",
             f"max_turns={b.max_turns}", f"max_tokens={b.max_tokens}", f"max_new_tokens={b.max_new_tokens}",
             "lr=5e-4", f"device={device}", "create_missing_model=false"]
    if variant != "grpo":
        args += [f"judge_model={judge}", f"judge_max_new_tokens={b.judge_tokens}"]
    return args


def _eval_args(s: Path, name: str, model: str, seed: int, b: Budget, device: str, limit: int,
               k: int) -> list[str]:
    return ["eval", "--benchmark", "toy", "--split", "heldout", "--env-seed", str(seed), "--limit", str(limit),
            "--model", model, "--k", str(k), "--out", str(s / "eval" / name), "--seed", str(seed + 7),
            "--temperature", "1.0", "--top-p", "1.0", "--max-turns", str(b.max_turns),
            "--max-tokens", str(b.max_tokens), "--max-new-tokens", str(b.max_new_tokens), "--device", device]


def _judge_rl_stages(s: Path, d: Path, seed: int, b: Budget, judge_sft: str, device: str) -> list[Stage]:
    """SFT judge -> RL judge (``train-rrm-rl`` on the same judge data), and the SFT judge's own
    held-out report (``judge_quality_sft.json``) beside the RL judge's (``judge_quality.json``)."""
    rl = Stage("train-judge-rl", ["train-rrm-rl", "--data", str(d / "judge" / "train.jsonl"),
                                  "--val-data", str(d / "judge" / "validation.jsonl"), "--model", judge_sft,
                                  "--out", str(s / "judge_rl"), "--steps", str(b.judge_rl_steps),
                                  "--prompts-per-step", "8", "--group-size", "8", "--lr", str(b.judge_rl_lr),
                                  "--max-new-tokens", str(b.judge_tokens), "--seed", str(seed),
                                  "--eval-max-examples", str(b.judge_eval_tasks),
                                  "--eval-max-new-tokens", str(b.judge_tokens), "--no-eval-before"],
               10 + 3.0 * b.judge_rl_steps, ("train-judge",), alone=True)
    quality = Stage("judge-quality-sft", ["eval-rrm", "--model", judge_sft, "--data",
                                          str(d / "heldout_annotations.jsonl"),
                                          "--out", str(s / "eval" / "judge_quality_sft.json"),
                                          "--max-new-tokens", str(b.judge_tokens), "--device", device],
                    2 + 0.04 * b.judge_eval_tasks, ("train-judge", "annotate-heldout"))
    return [rl, quality]


def _eval_stages(s: Path, seed: int, b: Budget, sft: str, judge: str, judge_done: str,
                 device: str) -> list[Stage]:
    half = max(b.rl_steps // 2, 1)
    stages = [Stage("eval-sft", _eval_args(s, "sft", sft, seed, b, device, b.eval_tasks, b.eval_k), 5, ("sft",))]
    for v in VARIANTS:
        ckpt = s / "rl" / v / "checkpoints"
        if half < b.rl_steps:
            mid = str(ckpt / f"step-{half:06d}" / "model")
            stages.append(Stage(f"eval-{v}-step{half}", _eval_args(s, f"{v}-step{half}", mid, seed, b, device,
                                                                   b.eval_tasks, b.eval_k), 5, (f"rl-{v}",)))
        final = str(ckpt / f"step-{b.rl_steps:06d}" / "model")
        stages.append(Stage(f"eval-{v}", _eval_args(s, v, final, seed, b, device, b.eval_tasks, b.eval_k), 5,
                            (f"rl-{v}",)))
    for name, model in (("sft", sft), ("grpo", str(s / "rl" / "grpo" / "checkpoints" / f"step-{b.rl_steps:06d}"
                                                   / "model"))):
        args = _eval_args(s, f"{name}-critique", model, seed, b, device, b.eval_tasks, b.eval_k)
        stages.append(Stage(f"eval-{name}-critique", args + ["--critique", "--judge-model", judge,
                                                             "--judge-max-new-tokens", str(b.judge_tokens),
                                                             "--revise-below", str(b.revise_below)], 25,
                            ("sft" if name == "sft" else "rl-grpo", judge_done)))
    for name in ("sft", *VARIANTS):
        stages.append(Stage(f"score-{name}", ["judge", "--model", judge, "--traces",
                                              str(s / "eval" / name / "trajectories.jsonl"),
                                              "--out", str(s / "eval" / name / "judged.jsonl"),
                                              "--max-new-tokens", str(b.judge_tokens), "--device", device,
                                              # an unscorable verdict is kept (score null), so a
                                              # judge that fails them all is reported, not fatal
                                              "--on-failure", "outcome_only"], 13,
                            (f"eval-{name}", judge_done),
                            prepare=partial(export_trajectories, s / "eval" / name)))
    return stages


def export_trajectories(eval_dir: Path) -> Path:
    """The final trajectory of every eval attempt, as a trajectory file a judge can score."""
    out = eval_dir / "trajectories.jsonl"
    with open(eval_dir / "records.jsonl") as src, open(out, "w") as dst:
        for line in src:
            if line.strip():
                rec = json.loads(line)
                traj = dict(rec["trajectory"])
                traj.setdefault("id", rec["id"])
                traj.setdefault("task_id", rec["task_id"])
                traj.setdefault("messages", [])
                dst.write(json.dumps(traj) + "\n")
    return out
