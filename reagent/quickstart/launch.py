"""Start one quickstart stage in its own process and record when it finished.

Every stage runs ``reagent <command> ...``, logs to ``DIR/seedS/logs/<stage>.log`` and,
on success, writes ``DIR/seedS/stages/<stage>.json`` (command, seconds). A re-run skips
stages with a marker, so an interrupted quickstart picks up where it stopped; the
commands themselves resume too.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass
class Stage:
    name: str
    args: list[str]
    estimate_s: float  # for the overall ETA
    needs: tuple[str, ...] = ()  # stages of the same seed that must finish first
    alone: bool = False  # on the critical path: runs with every core and nothing beside it
    prepare: Callable[[], object] | None = None  # run in the parent just before the command

    @property
    def command(self) -> str:
        return "reagent " + shlex.join(self.args)

    def eta_share(self, jobs: int) -> float:
        """Seconds of the overall ETA: stages beside others take 1/jobs of the wall clock."""
        return self.estimate_s if self.alone else self.estimate_s / max(jobs, 1)


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
    if stage.prepare is not None:
        stage.prepare()
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
