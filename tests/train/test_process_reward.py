"""PRM step rewards as token advantages: hand-worked arithmetic, and a 2-step train run."""

import json
import shutil

import pytest
import torch

from reagent.train.process_reward import (
    normalise_in_groups,
    policy_runs,
    process_rewards,
    token_advantages,
)


def test_policy_runs_are_the_assistant_turns():
    #        prompt   turn 0   tool  turn 1
    mask = [0, 0, 0, 1, 1, 0, 0, 1, 1, 1]
    assert policy_runs(mask) == [(3, 5), (7, 10)]
    assert policy_runs([1, 0, 1]) == [(0, 1), (2, 3)] and policy_runs([0, 0]) == []


def test_promise_and_progress_rewards_by_hand():
    q = [[0.2, 0.6], [0.4, 0.1, 0.5], None]
    groups = [0, 0, 0]
    assert process_rewards(q, groups, "promise") == [[0.2, 0.6], [0.4, 0.1, 0.5], None]
    # Q_{-1} = group mean of the first-step values = (0.2 + 0.4) / 2 = 0.3
    # a: 0.2-0.3, 0.6-0.2 ; b: 0.4-0.3, 0.1-0.4, 0.5-0.1
    got = process_rewards(q, groups, "progress")
    assert got[0] == pytest.approx([-0.1, 0.4]) and got[1] == pytest.approx([0.1, -0.3, 0.4]) and got[2] is None
    with pytest.raises(ValueError, match="prm_reward='value' is not one of promise, progress"):
        process_rewards(q, groups, "value")


def test_group_normalisation_by_hand():
    # group 0 pools 1, 2, 3 (mean 2, population std sqrt(2/3)); group 1 has one step -> 0.
    got = normalise_in_groups([[1.0, 3.0], [2.0], [5.0], None], [0, 0, 1, 1])
    s = (2 / 3) ** 0.5
    assert got[0] == pytest.approx([-1 / s, 1 / s], rel=1e-5) and got[1] == pytest.approx([0.0])
    assert got[2] == [0.0] and got[3] is None


def test_token_advantages_add_each_steps_process_advantage_to_its_tokens():
    masks = [[0, 1, 1, 0, 1], [0, 0, 1], [0, 1, 0, 1]]
    outcome = torch.tensor([0.5, -1.0, 2.0])
    steps = [[1.0, -2.0], [0.5], [1.0]]  # the third has 2 turns but 1 value: unscored
    adv, stats = token_advantages(outcome, steps, masks, coef=0.5)
    expected = torch.tensor([
        [0.5, 0.5 + 0.5, 0.5 + 0.5, 0.5, 0.5 - 1.0],  # step 0 tokens +0.5*1, step 1 tokens +0.5*(-2)
        [-1.0, -1.0, -1.0 + 0.25, 0.0, 0.0],           # padding beyond its mask: 0
        [2.0, 2.0, 2.0, 2.0, 0.0],                      # unscored: the outcome advantage only
    ])
    assert torch.allclose(adv, expected)
    assert stats == {"process/unscored": 1, "process/scored": 2}
    # A vectorised check against the simple loop of the docstring formula.
    for i, m in enumerate(masks[:2]):
        runs = policy_runs(m)
        for t in range(len(m)):
            k = next((j for j, (s, e) in enumerate(runs) if s <= t < e), None)
            want = outcome[i] + (0.5 * steps[i][k] if k is not None else 0.0)
            assert float(adv[i, t]) == pytest.approx(float(want))


def test_config_needs_a_prm_model():
    from reagent.train.config import TrainConfig

    with pytest.raises(ValueError, match="process_reward=prm needs prm_model"):
        TrainConfig(process_reward="prm")
    with pytest.raises(ValueError, match="prm_reward='q' is not valid"):
        TrainConfig(process_reward="prm", prm_model="x", prm_reward="q")


@pytest.mark.slow
def test_process_reward_prm_trains_two_steps_with_a_tiny_prm(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from reagent.train.trainer import GRPOTrainer
    from rrm.prm import load_prm
    from tests.scripted import ScriptedBackend
    from tests.train.test_trainer import config, lookup_then_answer

    prm_dir = tmp_path / "prm"  # a tiny PRM: the nano backbone with its seeded value head
    torch.manual_seed(0)
    load_prm(tiny_model_dir).save_pretrained(prm_dir)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(prm_dir)
    policy = shutil.copytree(tiny_model_dir, tmp_path / "policy")
    trainer = GRPOTrainer(config(tmp_path, policy, max_steps=2, process_reward="prm", prm_model=str(prm_dir),
                                 prm_reward="progress", keep_degenerate_groups=True))
    trainer.loop.backend = ScriptedBackend(trainer.tokenizer, lookup_then_answer)
    seen = []
    real = trainer.update

    def spy(kept, adv):
        seen.append(adv.clone())
        return real(kept, adv)

    trainer.update = spy
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["process/scored"] > 0 and r["process/unscored"] == 0 and "timing_s/process_reward" in r
               for r in rows)
    assert all(a.dim() == 2 for a in seen)
    # Within a trajectory, different steps got different advantages (the PRM's, not one number).
    assert any(len(set(torch.round(row[row != 0], decimals=5).tolist())) > 1 for a in seen for row in a)
    unchanged = [n for n, p in trainer.model.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == []
