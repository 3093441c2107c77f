"""Fixtures for judge tests: a tiny local model and a rule-annotated toy judge set."""

from __future__ import annotations

import random

import pytest

from reagent.envs.toy import ToyEnv
from reagent.envs.toy_demos import FLAWS, demonstrate
from reagent.records import JudgeExample, Trajectory

# A rule-based "teacher": what a judge should say about each demonstrator flaw.
VERDICTS = {  # short, so a micro model learns the format in a few dozen steps
    None: ("All lookups needed, calc used.", "- No issues found.", 1.0),
    "guess": ("No lookup: a guess.", "- Look up the accounts first.", 0.0),
    "mental_math_error": ("Arithmetic done in the head.", "- Use calc.", 0.1),
    "wrong_account": ("Wrong account looked up.", "- Look up the asked accounts.", 0.1),
    "irrelevant_lookup": ("An extra lookup.", "- Skip unneeded lookups.", 0.6),
    "repeated_call": ("A repeated lookup.", "- Do not repeat a lookup.", 0.7),
    "missing_account": ("Looked up a missing account.", "- Only look up asked accounts.", 0.7),
    "needless_calc": ("calc on one number.", "- Skip calc with nothing to compute.", 0.8),
}


def toy_trajectories(n_tasks: int, seed: int = 0, split: str = "train") -> list[Trajectory]:
    """Per task: one clean episode and one with a random flaw (two per question)."""
    env = ToyEnv()
    rng = random.Random(seed)
    out = []
    for task in env.tasks(split, limit=n_tasks):
        flaw = rng.choice([f for f in FLAWS if f != "needless_calc"
                           or task.meta["kind"] == "single"])
        for f in (None, flaw):
            traj = demonstrate(env, task, f, rng)
            traj.id = f"{task.id}-{f or 'clean'}"
            out.append(traj)
    return out


def toy_judge_examples(n_tasks: int, seed: int = 0) -> list[JudgeExample]:
    """Judge examples with the rule-based teacher's verdicts (trajectory as messages)."""
    out = []
    for traj in toy_trajectories(n_tasks, seed):
        flaw = traj.extra["demo_flaw"]
        analysis, critique, score = VERDICTS[None if flaw == "none" else flaw]
        out.append(JudgeExample(question=traj.question,
                                trajectory=[m.to_dict() for m in traj.messages],
                                analysis=analysis, critique=critique, score=score,
                                outcome=traj.outcome, teacher="rules"))
    return out


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two spinning OpenMP threads made
    the SFT test ~10x slower (184 s against 19 s of CPU time)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def judge_model_dir(tmp_path_factory):
    """A randomly initialised nano Qwen2 (~0.3M parameters) whose tokenizer learned the judge
    prompt's words as whole tokens (shorter sequences: a faster SFT test)."""
    from reagent.tiny_model import make_tiny_model
    from rrm.prompt import judge_system_prompt

    return make_tiny_model(tmp_path_factory.mktemp("judge_model"), size="nano", seed=0,
                           extra_corpus=[judge_system_prompt()])
