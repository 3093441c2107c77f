"""Judging overlapped with rollouts: an HTTP judge gets each episode as it finishes.

The judge is the scripted OpenAI-compatible server on 127.0.0.1 answering after a delay;
the policy is the scripted backend (real tokenizer, real agent loop) taking a fixed time
per turn, with episodes that end after 1 to 5 turns.
"""

import re
import shutil
import time

import pytest

from reagent.jsonl import load_records
from reagent.records import Trajectory
from reagent.train.trainer import GRPOTrainer
from rrm.prompt import format_judgment
from tests.scripted import ScriptedServer, SlowScripted, staggered_solver
from tests.train.test_trainer import config


def judge_reply(body):
    """Scores by the trajectory's answer; the critique names it; a revised attempt is
    judged without its critique context (checked by the caller)."""
    user = body["messages"][-1]["content"]
    answers = re.findall(r"\\boxed\{(\d+)\}", user)
    score = 0.9 if answers and int(answers[-1]) % 2 == 0 else 0.2
    return format_judgment("looked at it", f"- CRITIQUEMARK answer {answers[-1:]}", score)


@pytest.fixture
def policy_dir(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "policy")


def test_overlapped_step_takes_about_the_longer_of_rollout_and_judge(tmp_path, policy_dir):
    with ScriptedServer(judge_reply, delay_s=0.25) as server:
        trainer = GRPOTrainer(config(tmp_path, policy_dir, variant="reagent-r", judge_base_url=server.url,
                                     judge_concurrency=2, max_turns=6, max_tokens=400,
                                     keep_degenerate_groups=True))
        trainer.loop.backend = SlowScripted(trainer.tokenizer, staggered_solver(), delay_s=0.4)
        specs_step = trainer.c.prompts_per_step * trainer.c.group_size
        # the parts alone, on the same kind of batch
        from reagent.agent import EpisodeSpec
        from reagent.envs.base import initial_messages

        tasks = trainer.tasks[:trainer.c.prompts_per_step]
        specs = [EpisodeSpec(task=t, messages=initial_messages(trainer.env, t), id=f"alone-{t.id}#{k}",
                             extra={"group": g}) for g, t in enumerate(tasks) for k in range(trainer.c.group_size)]
        start = time.perf_counter()
        trajs = trainer.rollout(specs)
        rollout_s = time.perf_counter() - start
        assert len({t.extra["turns"] for t in trajs}) >= 4  # episodes really end at different turns
        start = time.perf_counter()
        trainer.judge.score(trajs)
        judge_s = time.perf_counter() - start
        n_before = len(server.requests)

        metrics = trainer.train_step()
        step_s = metrics["timing_s/rollout"] + metrics["timing_s/judge"]
        assert len(server.requests) - n_before == specs_step  # every episode judged once
        assert metrics["judge/judged"] == specs_step and metrics["judge/failed"] == 0
        assert 0.2 <= metrics["reward/judge_mean"] <= 0.9
        # judging ran while the rollout was still going: not rollout + judge (loose bound;
        # benchmarks/judge.py overlap measures it)
        assert step_s < 0.8 * (rollout_s + judge_s), (step_s, rollout_s, judge_s)


def test_overlapped_reagent_u_revises_as_critiques_arrive(tmp_path, policy_dir):
    """Revisions join the running rollout; each is judged on its own attempt (no critique
    in the judge's view); revised episodes come back in their parents' order."""
    with ScriptedServer(judge_reply, delay_s=0.05) as server:
        trainer = GRPOTrainer(config(tmp_path, policy_dir, variant="reagent-u", revise="all",
                                     judge_base_url=server.url, max_turns=6, max_tokens=400,
                                     keep_degenerate_groups=True, save_rollouts=True))
        trainer.loop.backend = backend = SlowScripted(trainer.tokenizer, staggered_solver(), delay_s=0.05)
        seen = []
        rollout = trainer.rollout
        trainer.rollout = lambda specs, stream=None: seen.append(specs) or rollout(specs, stream)
        metrics = trainer.train_step()
    assert len(seen) == 1  # one rollout: revisions ran inside it
    n = trainer.c.prompts_per_step * trainer.c.group_size
    judged = server.requests
    assert len(judged) == 2 * n and metrics["judge/failed"] == 0
    assert all("CRITIQUEMARK" not in r["messages"][-1]["content"] for r in judged)
    # revisions were generated in the same backend calls as unfinished first attempts
    assert backend.mixed_calls > 0
    assert metrics["revise/skipped_judge_failed"] == 0
    trajs = load_records(tmp_path / "run" / "rollouts" / "step-000001-rank0.jsonl", Trajectory)
    initial = [t for t in trajs if t.stage == "initial"]
    revised = [t for t in trajs if t.stage == "revised"]
    assert [t.parent_id for t in revised] == [t.id for t in initial]  # parents' order
    assert all(t.judge.status == "ok" and "CRITIQUEMARK" in (t.extra["critique"]) for t in revised)
