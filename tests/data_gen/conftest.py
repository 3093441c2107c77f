"""Toy trace fixtures, and the scripted OpenAI-compatible server (:mod:`tests.scripted`):
what it answers is a Python function of the request, so every output record can be
predicted."""

from __future__ import annotations

from pathlib import Path

import pytest

from reagent.envs.toy import ToyEnv
from reagent.envs.toy_demos import demonstrations
from reagent.jsonl import write_records
from reagent.records import Trajectory
from tests.scripted import ScriptedServer

__all__ = ["ScriptedServer", "toy_traces", "traces_file"]

def toy_traces(n: int, seed: int = 0, env_seed: int = 0) -> list[Trajectory]:
    """Demonstrator episodes (clean and flawed) on the first ``n`` toy training tasks."""
    env = ToyEnv(seed=env_seed)
    return demonstrations(env, env.tasks("train", n), flaw_rate=0.5, seed=seed)


@pytest.fixture
def traces_file(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    write_records(path, toy_traces(12))
    return path
