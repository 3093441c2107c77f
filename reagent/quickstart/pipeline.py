"""The quickstart's stages: each one a call of a public ``reagent`` command.

Every stage runs ``reagent <command> ...`` in its own process, logs to
``DIR/seedS/logs/<stage>.log`` and, on success, writes ``DIR/seedS/stages/<stage>.json``
(command, seconds). A re-run skips stages with a marker, so an interrupted quickstart
picks up where it stopped; the commands themselves resume too.

Launchers: ``subprocess`` starts ``python -m reagent`` afresh for every stage;
``fork`` (Linux) imports torch and transformers once and forks a child per stage that
calls the same CLI entry point. A fresh interpreter pays 3-4 s of imports, and the
default budget has ~25 such stages, so forking saves 1.5 min of a 15-minute run.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from reagent.quickstart.budgets import Budget

VARIANTS = ("grpo", "reagent-r", "reagent-u")


@dataclass
class Stage:
    name: str
    args: list[str]
    estimate_s: float  # for the overall ETA
    needs: tuple[str, ...] = ()  # stages of the same seed that must finish first
    alone: bool = False  # on the critical path: runs with every core and nothing beside it

    @property
    def command(self) -> str:
        return "reagent " + shlex.join(self.args)


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
    sft, judge = str(s / "sft" / "final"), str(s / "judge" / "final")
    loop = ["--max-turns", str(b.max_turns), "--max-tokens", str(b.max_tokens),
            "--max-new-tokens", str(b.max_new_tokens), "--device", device]
    toy_seed = ["--env-seed", str(seed)]
    # ETA guesses (seconds) from the default budget on a 2-core machine with the fork
    # launcher, scaled by size.
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
                              "--no-eval-before"], 10 + 30 * b.judge_epochs * judge_data,
              ("judge-dataset", "make-judge"), alone=True),
        Stage("heldout-traces", ["rollout", "--model", sft, "--env", "toy", "--split", "heldout",
                                 "--limit", str(b.judge_eval_tasks), "--n", "2", "--seed", str(seed + 1),
                                 "--out", str(d / "heldout_traces.jsonl"), *toy_seed, *loop], 3, ("sft",)),
        Stage("annotate-heldout", ["annotate", "--traces", str(d / "heldout_traces.jsonl"), "--teacher", "rules",
                                   "--out", str(d / "heldout_annotations.jsonl"), "--no-progress",
                                   *toy_seed], 1, ("heldout-traces",)),
        Stage("judge-quality", ["eval-rrm", "--model", judge, "--data", str(d / "heldout_annotations.jsonl"),
                                "--out", str(s / "eval" / "judge_quality.json"), "--max-new-tokens", str(b.judge_tokens),
                                "--device", device], 2 + 0.04 * b.judge_eval_tasks, ("train-judge", "annotate-heldout")),
    ]
    # Longest first: the scheduler starts ready stages in list order.
    for v in ("reagent-u", "reagent-r", "grpo"):
        stages.append(Stage(f"rl-{v}", _train_args(s, v, seed, b, sft, judge, device),
                            {"grpo": 2.0, "reagent-r": 5.0, "reagent-u": 8.7}[v] * b.rl_steps + 10,
                            ("sft",) if v == "grpo" else ("sft", "train-judge")))
    stages += _eval_stages(s, seed, b, sft, judge, device)
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


def _eval_stages(s: Path, seed: int, b: Budget, sft: str, judge: str, device: str) -> list[Stage]:
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
                                                             "--judge-max-new-tokens", str(b.judge_tokens)], 20,
                            ("sft" if name == "sft" else "rl-grpo", "train-judge")))
    for name in ("sft", *VARIANTS):
        stages.append(Stage(f"score-{name}", ["judge", "--model", judge, "--traces",
                                              str(s / "eval" / name / "trajectories.jsonl"),
                                              "--out", str(s / "eval" / name / "judged.jsonl"),
                                              "--max-new-tokens", str(b.judge_tokens), "--device", device], 8,
                            (f"eval-{name}", "train-judge")))
    return stages


def stage_done(root: Path, seed: int, stage: Stage) -> dict | None:
    marker = root / f"seed{seed}" / "stages" / f"{stage.name}.json"
    return json.loads(marker.read_text()) if marker.exists() else None


def preload() -> None:
    """Import what every model stage imports, before forking, so children share it."""
    import torch  # noqa: F401
    import transformers.models.qwen2.modeling_qwen2  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    import reagent.generation  # noqa: F401


def fork_available() -> bool:
    # macOS forks badly after system frameworks load (objc fork-safety aborts).
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def _fork_child(args: list[str], log, threads: int) -> int:
    """Run ``reagent <args>`` in a forked child writing to ``log``; the child's pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child: never returns into the parent's code
        code = 1
        try:
            for fd, name in ((1, "stdout"), (2, "stderr")):  # both the fd and Python's stream
                os.dup2(log.fileno(), fd)
                setattr(sys, name, open(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False))
            if threads:
                import torch

                torch.set_num_threads(threads)
            from reagent.cli import main

            code = main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


@dataclass
class StageRun:
    """One started stage: poll it, then ``finish`` it to write its marker (or raise)."""

    stage: Stage
    seed_dir: Path
    log: Path
    fh: IO
    started: float
    pid: int | None = None  # fork launcher
    proc: subprocess.Popen | None = None  # subprocess launcher
    code: int | None = None
    seconds: float = 0.0

    def poll(self) -> int | None:
        if self.code is None:
            if self.proc is not None:
                self.code = self.proc.poll()
            else:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                self.code = os.waitstatus_to_exitcode(status) if pid else None
            if self.code is not None:
                self.seconds = time.time() - self.started
        return self.code

    def finish(self) -> dict:
        """The stage's marker record; raises with the log's tail when it failed."""
        while self.poll() is None:
            time.sleep(0.05)
        self.fh.close()
        if self.code != 0:
            tail = "".join(self.log.read_text().splitlines(keepends=True)[-25:])
            raise RuntimeError(f"stage {self.stage.name} failed (exit {self.code}); see {self.log}:\n{tail}")
        done = {"stage": self.stage.name, "command": self.stage.command, "seconds": round(self.seconds, 2),
                "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        (self.seed_dir / "stages" / f"{self.stage.name}.json").write_text(json.dumps(done, indent=2))
        return done


def start_stage(root: Path, seed: int, stage: Stage, launcher: str = "subprocess", threads: int = 0) -> StageRun:
    """Start one stage's command in its own process (``threads`` torch threads; 0: default)."""
    s = root / f"seed{seed}"
    (s / "logs").mkdir(parents=True, exist_ok=True)
    (s / "stages").mkdir(parents=True, exist_ok=True)
    if stage.name.startswith("score-"):  # the judge reads the eval attempts as a trajectory file
        export_trajectories(s / "eval" / stage.name[len("score-"):])
    log = s / "logs" / f"{stage.name}.log"
    fh = open(log, "w")
    fh.write(f"$ {stage.command}\n")
    fh.flush()
    run = StageRun(stage=stage, seed_dir=s, log=log, fh=fh, started=time.time())
    if launcher == "fork":
        run.pid = _fork_child(stage.args, fh, threads)
    else:
        env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
        run.proc = subprocess.Popen([sys.executable, "-m", "reagent", *stage.args], stdout=fh,
                                    stderr=subprocess.STDOUT, env=env)
    return run


def run_stage(root: Path, seed: int, stage: Stage, launcher: str = "subprocess", threads: int = 0) -> dict:
    """Run one stage to the end; raise with the log's tail when it fails."""
    return start_stage(root, seed, stage, launcher, threads).finish()


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
