"""GRPO trainer: a real update changes parameters; masked tokens get no gradient; variants run."""

import itertools
import json
import shutil

import pytest
import torch

from reagent.agent import AgentConfig, AgentLoop, EpisodeSpec, specs_for
from reagent.critique import revision_messages
from reagent.train.algos import clipped_policy_loss
from reagent.train.batch import assign_rewards, collate, select_and_advantage
from reagent.train.config import TrainConfig
from reagent.train.trainer import GRPOTrainer
from tests.scripted import ScriptedBackend
from tests.test_agent import solver


_answers = itertools.count()


def lookup_then_answer(text, turn):
    """The correct scripted agent, but every other final answer is off by one: every group
    gets mixed rewards."""
    reply = solver(text, turn)
    if not reply.startswith("\\boxed"):
        return reply
    value = int(reply[len("\\boxed{"):-1])
    return f"\\boxed{{{value + next(_answers) % 2}}}"


def config(tmp_path, model_dir, **kw):
    base = dict(model=str(model_dir), output_dir=str(tmp_path / "run"), prompts_per_step=4, group_size=4,
                max_turns=3, max_tokens=96, max_new_tokens=32, lr=1e-2, max_steps=1, save_every=1,
                micro_batch_size=4, train_tasks=64, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def policy_dir(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "policy")


def test_one_step_changes_every_parameter(tmp_path, policy_dir):
    trainer = GRPOTrainer(config(tmp_path, policy_dir, keep_degenerate_groups=False))
    # Scripted rollouts (through the real loop, tokenizer and masks) guarantee mixed rewards.
    trainer.loop.backend = ScriptedBackend(trainer.tokenizer, lookup_then_answer)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    metrics = trainer.train_step()
    assert metrics["groups/dropped_frac"] < 1.0 and metrics["actor/trajectories"] > 0
    unchanged = [n for n, p in trainer.model.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == []
    for key in ("actor/pg_loss", "actor/clip_frac", "actor/grad_norm", "timing_s/rollout", "timing_s/update",
                "reward/total_mean", "tools/calls_per_traj", "response/length_mean", "accuracy"):
        assert key in metrics


def test_tool_prompt_and_critique_tokens_get_no_gradient(tiny_tokenizer):
    from reagent.envs.toy import INSTRUCTIONS, ToyEnv

    env = ToyEnv(instructions=INSTRUCTIONS)  # with a system turn, so it too is checked
    tasks = env.tasks("train", 2)
    loop = AgentLoop(ScriptedBackend(tiny_tokenizer, lookup_then_answer), env, AgentConfig())
    first = loop.run(specs_for(env, tasks, 2))
    critique = "- CRITIQUEMARK look up every account."
    revised = loop.run([EpisodeSpec(task=tasks[i // 2], messages=revision_messages(t, critique), id=t.id + "/r",
                                    stage="revised", parent_id=t.id) for i, t in enumerate(first)])
    trajs = first + revised
    for t in trajs:
        t.extra["group"] = 0
    assign_rewards(trajs, [None] * len(trajs), 0.0, "keep", 0.0)
    for i, t in enumerate(trajs):
        t.rewards["total"] = float(i % 2)
    kept, adv, _ = select_and_advantage(trajs, [0] * len(trajs), "grpo", True, "keep")
    batch = collate(kept, adv, tiny_tokenizer.pad_token_id)
    logp = torch.zeros(batch.input_ids.shape, requires_grad=True)
    loss, _ = clipped_policy_loss(logp, torch.zeros_like(logp), batch.advantages, batch.loss_mask)
    loss.backward()
    grad_on = (logp.grad != 0)
    assert not (grad_on & (batch.loss_mask == 0)).any()  # nothing outside the policy's tokens
    assert grad_on.any()
    for row, t in enumerate(kept):
        trained = tiny_tokenizer.decode(batch.input_ids[row][grad_on[row]])
        assert "CRITIQUEMARK" not in trained and "<tool_response>" not in trained
        question = next(m.content for m in t.messages if m.role == "user")
        assert INSTRUCTIONS not in trained and question not in trained


class HalfFailingJudge:
    """In-process judge (the trainer only calls ``score``): fails on every episode whose final
    answer is odd, scores the others 0.7 with a critique."""

    def __init__(self):
        self.failed_ids: set[str] = set()

    def score(self, trajs):
        from reagent.records import Judgment

        out = []
        for t in trajs:
            answer = (t.final_answer or "").strip()
            if answer.isdigit() and int(answer) % 2 == 0:
                out.append(Judgment(analysis="a", critique="- JUDGEMARK check the sum.", score=0.7))
            else:
                self.failed_ids.add(t.id)
                out.append(Judgment(status="missing_blocks", score=None))
        return out


def test_reagent_u_never_revises_an_episode_whose_judgment_failed(tmp_path, policy_dir, tiny_model_dir):
    trainer = GRPOTrainer(config(tmp_path, policy_dir, variant="reagent-u", judge_model=str(tiny_model_dir),
                                 keep_degenerate_groups=True))
    trainer.loop.backend = ScriptedBackend(trainer.tokenizer, lookup_then_answer)
    trainer.judge = judge = HalfFailingJudge()
    seen = []
    rollout = trainer.rollout
    trainer.rollout = lambda specs: seen.append(specs) or rollout(specs)
    metrics = trainer.train_step()
    initial_specs, revised_specs = seen
    initial_ids = {s.id for s in initial_specs}
    failed_initial = judge.failed_ids & initial_ids
    assert 0 < len(failed_initial) < len(initial_ids)  # some failed, some did not
    parents = {s.parent_id for s in revised_specs}
    assert parents == initial_ids - failed_initial  # every scored one revised, no failed one
    assert metrics["revise/skipped_judge_failed"] == len(failed_initial)
    for spec in revised_specs:
        context = "\n".join(m.content or "" for m in spec.messages)
        assert "JUDGEMARK" in context and "No specific flaws" not in context


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["grpo", "reagent-r", "reagent-u"])
def test_train_cli_runs_each_variant(variant, tmp_path, tiny_model_dir):
    import subprocess
    import sys

    policy = shutil.copytree(tiny_model_dir, tmp_path / "policy")
    cmd = [sys.executable, "-m", "reagent", "train", "--config", f"configs/toy_{variant.replace('-', '_')}.yaml",
           f"model={policy}", f"output_dir={tmp_path / 'run'}", "max_steps=2", "prompts_per_step=2",
           "group_size=2", "max_tokens=48", "max_new_tokens=24", "device=cpu", "keep_degenerate_groups=true",
           "entropy_coef=0.01", "save_rollouts=true"]
    if variant != "grpo":
        cmd += [f"judge_model={tiny_model_dir}", "judge_max_new_tokens=8"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2]
    assert all("actor/pg_loss" in m for m in lines)
    if variant != "grpo":
        assert lines[-1]["judge/judged"] > 0  # the untrained judge fails; failures are counted
    rollouts = sorted((tmp_path / "run" / "rollouts").glob("*.jsonl"))
    stages = {json.loads(x)["stage"] for x in rollouts[0].read_text().splitlines()}
    # The untrained judge fails on every episode, and an episode without a critique is not
    # revised (test_reagent_u_never_revises_an_episode_whose_judgment_failed covers revisions).
    assert stages == {"initial"}
    if variant == "reagent-u":
        assert lines[0]["revise/skipped_judge_failed"] == 4
    assert (tmp_path / "run" / "checkpoints" / "step-000002" / "COMPLETE").exists()


@pytest.mark.slow
def test_two_process_zero2_on_cpu(tmp_path, tiny_model_dir):
    import subprocess
    import sys

    policy = shutil.copytree(tiny_model_dir, tmp_path / "policy")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/zero2.yaml",
           "--num_processes", "2", "-m", "reagent", "train", "--config", "configs/toy_grpo.yaml",
           f"model={policy}", f"output_dir={tmp_path / 'run'}", "max_steps=2", "prompts_per_step=2",
           "group_size=2", "max_tokens=32", "max_new_tokens=16", "keep_degenerate_groups=true",
           "entropy_coef=0.01", "device=cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2]  # rank 0 alone writes metrics
    assert lines[-1]["dist/world_size"] == 2 and lines[-1]["dist/zero_stage"] == 2
    assert all(m["actor/trajectories"] > 0 for m in lines)
    assert (tmp_path / "run" / "checkpoints" / "step-000002" / "COMPLETE").exists()


@pytest.mark.slow
def test_kill_and_resume_continues_exactly(tmp_path, tiny_model_dir):
    """A run killed after step 3 and resumed from its step-2 checkpoint ends where an
    uninterrupted run ends: same data positions, same logged steps, same weights."""
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    policy = shutil.copytree(tiny_model_dir, tmp_path / "policy")

    def cmd(out, *extra):
        return [sys.executable, "-m", "reagent", "train", "--config", "configs/toy_grpo.yaml", f"model={policy}",
                f"output_dir={out}", "max_steps=5", "save_every=2", "prompts_per_step=4", "group_size=4",
                "max_tokens=64", "max_new_tokens=32", "keep_degenerate_groups=true", "entropy_coef=0.05",
                "device=cpu", "train_tasks=12", *extra]

    subprocess.run(cmd(tmp_path / "a"), check=True, capture_output=True, timeout=600)
    metrics_b = tmp_path / "b" / "metrics.jsonl"
    proc = subprocess.Popen(cmd(tmp_path / "b"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics_b.exists() and len(metrics_b.read_text().splitlines()) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "b" / "checkpoints" / "step-000005").exists(), "the kill should land mid-run"
    subprocess.run(cmd(tmp_path / "b", "resume=true"), check=True, capture_output=True, timeout=600)
    a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in metrics_b.read_text().splitlines()]
    assert [m["step"] for m in b] == [1, 2, 3, 4, 5]  # nothing repeated, nothing lost
    assert [(m["data/epoch"], m["data/index"]) for m in b] == [(m["data/epoch"], m["data/index"]) for m in a]
    assert b[-1]["data/epoch"] == 1  # 12 tasks / 4 per step: the data wrapped around in between
    wa = load_file(str(tmp_path / "a" / "checkpoints" / "step-000005" / "model" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "checkpoints" / "step-000005" / "model" / "model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    sa = json.loads((tmp_path / "a" / "checkpoints" / "step-000005" / "trainer_state.json").read_text())
    sb = json.loads((tmp_path / "b" / "checkpoints" / "step-000005" / "trainer_state.json").read_text())
    same = ("step", "data_epoch", "data_index", "sampling_calls")
    assert [sa[k] for k in same] == [sb[k] for k in same] and sa["step"] == 5  # data position, sampling
    oa = torch.load(tmp_path / "a" / "checkpoints" / "step-000005" / "state" / "optimizer.bin", weights_only=False)
    ob = torch.load(tmp_path / "b" / "checkpoints" / "step-000005" / "state" / "optimizer.bin", weights_only=False)
    assert oa["state"][0]["step"] == ob["state"][0]["step"] == 5


def test_reagent_r_with_the_oracle_rules_judge(tmp_path, policy_dir):
    """judge_model=rules: the trainer scores with the rules checker through the same interface,
    and logs the process metrics of its episodes."""
    from rrm.judge import RulesJudge

    trainer = GRPOTrainer(config(tmp_path, policy_dir, variant="reagent-r", judge_model="rules"))
    assert isinstance(trainer.judge, RulesJudge)
    trainer.loop.backend = ScriptedBackend(trainer.tokenizer, lookup_then_answer)
    metrics = trainer.train_step()
    assert metrics["judge/judged"] == 16 and metrics["judge/failed"] == 0
    # right answers follow from the balances (score 1), off-by-one ones do not (arithmetic: 0.5)
    assert 0.5 <= metrics["reward/judge_mean"] < 1.0 and metrics["judge/outcome_corr"] > 0.9
    assert metrics["process/answer_neutral_flaws"] == 0.0 and metrics["process/tool_calls"] > 0
    with pytest.raises(ValueError, match="judge_model=rules"):
        config(tmp_path, policy_dir, variant="reagent-r", judge_model="rules", env="math", benchmark="gsm8k")
