"""Monte-Carlo step labels through the batched agent loop, with a real nano policy."""

from __future__ import annotations

import pytest

from data_gen.step_labels import LabelReport, agent_config, label_mc
from reagent.agent import AgentLoop
from reagent.envs.toy import ToyEnv
from reagent.generation.hf import HFBackend
from reagent.steps import agent_steps
from tests.rrm.conftest import toy_trajectories


class CountingBackend(HFBackend):
    """The real HF backend, counting its generate calls (one per turn when all prefixes batch together)."""

    calls = 0

    def generate(self, prompts, params):
        type(self).calls += 1
        return super().generate(prompts, params)


def test_mc_labels_batch_all_prefixes_and_record_cost(tiny_model_dir):
    env = ToyEnv()
    trajs = toy_trajectories(3, seed=2)
    tasks = {t.id: t for t in env.tasks("train", 3)}
    backend = CountingBackend(str(tiny_model_dir), device="cpu")
    loop = AgentLoop(backend, env, agent_config(max_turns=2, max_tokens=64, max_new_tokens=8, temperature=1.0,
                                                seed=0), policy_name="nano")
    report = LabelReport()
    labels = label_mc(trajs, tasks, loop, rollouts=3, gamma=0.9, batch_size=10_000, report=report)
    assert len(labels) == len(trajs) and report.labelled == len(trajs)
    assert CountingBackend.calls <= 2  # every continuation of every prefix shares each turn's call
    total = 0
    for label, traj in zip(labels, trajs):
        n = len(agent_steps(traj.messages))
        assert len(label.steps) == n
        assert label.steps[-1]["q"] == traj.outcome  # nothing left to sample after the last step
        assert all(0.0 <= s["q"] <= 1.0 for s in label.steps)
        assert label.steps[0]["advantage"] == 0.0
        for t in range(1, n):
            assert label.steps[t]["advantage"] == pytest.approx(label.steps[t]["q"] - label.steps[t - 1]["q"] / 0.9)
        assert label.params["rollouts"] == 3 and label.method == "mc"
        # Only non-final steps are continued: a one-step trajectory (a guess) costs nothing.
        assert (label.extra["cost"]["tokens_generated"] > 0) == (n > 1)
        total += label.extra["cost"]["tokens_generated"]
    assert total == report.tokens_generated > 0


def test_mc_skips_trajectories_whose_task_is_unknown(tiny_model_dir):
    env = ToyEnv()
    trajs = toy_trajectories(1, seed=2)
    loop = AgentLoop(HFBackend(str(tiny_model_dir), device="cpu"), env,
                     agent_config(max_turns=1, max_tokens=32, max_new_tokens=4, temperature=1.0, seed=0))
    report = LabelReport()
    assert label_mc(trajs, {}, loop, rollouts=1, gamma=1.0, batch_size=8, report=report) == []
    assert report.skipped["task not found"] == len(trajs)


def test_label_steps_cli_mc_regenerates_toy_tasks(tiny_model_dir, tmp_path):
    from reagent.cli import main as reagent_main
    from reagent.jsonl import load_records, write_records
    from reagent.records import StepLabel

    traces = tmp_path / "traces.jsonl"
    write_records(traces, toy_trajectories(1, seed=3))
    out = tmp_path / "mc.jsonl"
    assert reagent_main(["label-steps", "--traces", str(traces), "--method", "mc", "--model", str(tiny_model_dir),
                         "--rollouts", "2", "--max-turns", "1", "--max-new-tokens", "4", "--device", "cpu",
                         "--out", str(out)]) == 0
    labels = load_records(out, StepLabel)
    assert len(labels) == 2 and all(x.method == "mc" and x.params["rollouts"] == 2 for x in labels)
    assert all(x.extra["made_by"]["command"] == "label-steps" for x in labels)
    assert reagent_main(["label-steps", "--traces", str(traces), "--method", "mc", "--out", str(out)]) == 2


def test_td_gae_with_a_prm_uses_its_values_and_counts_tokens_read(tiny_model_dir):
    import torch

    from data_gen.step_labels import label_td_gae
    from rrm.prm import PRMScorer, load_prm
    from rrm.prm_losses import td_gae_targets

    trajs = toy_trajectories(2, seed=4)
    scorer = PRMScorer(load_prm(tiny_model_dir), tokenizer=HFBackend(str(tiny_model_dir), device="cpu").tokenizer,
                       device="cpu")
    report = LabelReport()
    labels = label_td_gae(trajs, gamma=0.9, lam=0.8, scorer=scorer, report=report)
    assert len(labels) == len(trajs) and report.tokens_scored == sum(scorer.lengths) > 0
    for label, traj in zip(labels, trajs):
        values = [s["value"] for s in label.steps]
        q, adv = td_gae_targets(torch.tensor([traj.outcome]), torch.tensor([values]),
                                torch.ones(1, len(values)), 0.9, 0.8)
        assert [s["q"] for s in label.steps] == pytest.approx(q[0].tolist())
        assert label.steps[-1]["q"] == pytest.approx(traj.outcome)
        assert label.params["bootstrap"] == "PRM values" and label.extra["cost"]["tokens_scored"] > 0
