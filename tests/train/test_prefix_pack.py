"""Shared-prompt packing (reagent/train/prefix_pack.py): a group packed behind its prompt
gives the padded rows' log-probs, loss and gradients on a real tiny model; no response
sees another; micro-batches cover every trajectory once and respect their size.

Tolerance as in test_logprobs.py (fp32 on CPU, sums reordered): rtol 1e-4, atol 1e-6.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM

from reagent.records import Trajectory
from reagent.train.algos import clipped_policy_loss, token_mean
from reagent.train.batch import collate
from reagent.train.logprobs import sequence_logprobs
from reagent.train.prefix_pack import clusters, pack, packed_logprobs, packed_micro_batches, shared_length

RTOL, ATOL = 1e-4, 1e-6


def traj(i: int, prompt: list[int], response: list[int], tool_span: tuple[int, int] | None = None) -> Trajectory:
    mask = [0] * len(prompt) + [1] * len(response)
    if tool_span:  # a tool result inside the response: not trained on
        for k in range(*tool_span):
            mask[len(prompt) + k] = 0
    return Trajectory(id=f"t{i}", task_id="x", messages=[], token_ids=prompt + response, loss_mask=mask)


def grouped(vocab: int, seed: int = 0) -> list[Trajectory]:
    """Two groups (prompts of 11 and 7 tokens) of ragged responses, and a singleton (a
    Reagent-U revision with a prompt of its own); one response has a masked tool span."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda n: torch.randint(3, vocab, (n,), generator=g).tolist()  # noqa: E731
    p1, p2 = rand(11), rand(7)
    return [traj(0, p1, rand(9)), traj(1, p2, rand(5)), traj(2, p1, rand(13), tool_span=(3, 7)),
            traj(3, p1, rand(4)), traj(4, rand(15), rand(6)), traj(5, p2, rand(10))]


def run(model, trajs, packed: bool, entropy_coef: float, temperature: float, size: int = 64):
    model.zero_grad()
    adv = torch.tensor([1.0, -0.5, 0.7, -1.2, 0.3, 0.9])
    n_tokens = float(sum(sum(t.loss_mask) for t in trajs))
    total, rows = 0.0, {}
    parts = packed_micro_batches(trajs, size) if packed else [[list(range(len(trajs)))]]
    for pieces in parts:
        idx = [i for piece in pieces for i in piece]
        mb = collate([trajs[i] for i in idx], adv[idx], 0)
        if packed:
            mb.packed = pack(trajs, pieces, 0, mb.input_ids.shape[1])
            logp, ent = packed_logprobs(model, mb.packed, mb.input_ids, mb.loss_mask, temperature,
                                        entropy_grad=entropy_coef != 0)
        else:
            logp, ent = sequence_logprobs(model, mb.input_ids, mb.attention_mask, None, temperature,
                                          entropy_grad=entropy_coef != 0)
        # ratio != 1, the same per (trajectory, position) whatever the micro-batch's layout
        shift = torch.tensor(idx, dtype=torch.float32)[:, None] * 100 + torch.arange(logp.shape[1])
        old = logp.detach() + 0.05 * torch.sin(shift)
        loss, _ = clipped_policy_loss(logp, old, mb.advantages, mb.loss_mask, 0.2, 0.28, "token-mean", n_tokens)
        loss = loss - entropy_coef * token_mean(ent, mb.loss_mask, n_tokens)
        loss.backward()
        total += float(loss.detach())
        for k, i in enumerate(idx):
            rows[i] = (logp[k].detach() * mb.loss_mask[k])[:len(trajs[i].token_ids)]
    return total, {n: p.grad.clone() for n, p in model.named_parameters()}, rows


@pytest.mark.parametrize("entropy_coef,temperature,size", [(0.0, 1.0, 64), (0.01, 0.7, 2)])
def test_packed_groups_give_the_padded_log_probs_loss_and_gradients(tiny_model_dir, entropy_coef,
                                                                    temperature, size):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trajs = grouped(model.config.vocab_size)
    plain = run(model, trajs, False, entropy_coef, temperature)
    fast = run(model, trajs, True, entropy_coef, temperature, size)
    torch.testing.assert_close(fast[0], plain[0], rtol=RTOL, atol=ATOL)
    for i in range(len(trajs)):
        assert plain[2][i].abs().sum() > 0
        torch.testing.assert_close(fast[2][i], plain[2][i], rtol=RTOL, atol=ATOL, msg=f"row {i}")
    for name, g in plain[1].items():
        assert g.abs().sum() > 0 or "bias" in name
        torch.testing.assert_close(fast[1][name], g, rtol=RTOL, atol=ATOL, msg=name)


def test_one_response_never_sees_another(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trajs = grouped(model.config.vocab_size)
    changed = list(trajs)
    changed[0] = traj(0, trajs[0].token_ids[:11], [5] * 9)  # same prompt, another response
    with torch.no_grad():
        a, b = (run_rows(model, ts) for ts in (trajs, changed))
    assert not torch.equal(a[0], b[0])
    for i in (2, 3):  # its group mates read the same prompt, never response 0
        torch.testing.assert_close(a[i], b[i], rtol=RTOL, atol=ATOL)


def run_rows(model, trajs):
    pieces = [i for mb in packed_micro_batches(trajs, 64) for i in mb]
    idx = [i for piece in pieces for i in piece]
    mb = collate([trajs[i] for i in idx], torch.zeros(len(idx)), 0)
    mb.packed = pack(trajs, pieces, 0, mb.input_ids.shape[1])
    logp, _ = packed_logprobs(model, mb.packed, mb.input_ids, mb.loss_mask)
    return {i: logp[k] for k, i in enumerate(idx)}


def test_clusters_and_micro_batches_cover_every_trajectory_once():
    trajs = grouped(50)
    assert [shared_length(t) for t in trajs] == [11, 7, 11, 11, 15, 7]
    assert clusters(trajs) == [[0, 2, 3], [1, 5], [4]]
    for size in (1, 2, 3, 64):
        mbs = packed_micro_batches(trajs, size)
        flat = sorted(i for mb in mbs for piece in mb for i in piece)
        assert flat == list(range(6))
        assert all(sum(len(p) for p in mb) <= size for mb in mbs)
    # the packed row holds each prompt once: 11 + 9 + 13 + 4 tokens for the first group
    packed = pack(trajs, [[0, 2, 3]], 0, 24)
    assert packed.input_ids.shape == (1, 37)
    assert packed.position_ids[0, 11 + 9].item() == 11  # the second response restarts after the prompt


def test_trainer_update_is_the_same_step_with_and_without_sharing(tmp_path, tiny_model_dir):
    """The trainer's packed update (groups of 4 multi-turn episodes, micro-batches of 3) takes
    the same SGD step as its padded-row update, over fewer token positions."""
    import shutil

    from reagent.agent import EpisodeSpec
    from reagent.envs.base import initial_messages
    from reagent.train.config import TrainConfig
    from reagent.train.trainer import GRPOTrainer
    from tests.scripted import ScriptedBackend
    from tests.test_agent import solver

    steps, tokens = [], []
    for share in (False, True):
        policy = shutil.copytree(tiny_model_dir, tmp_path / f"policy{share}")
        trainer = GRPOTrainer(TrainConfig(model=str(policy), output_dir=str(tmp_path / f"run{share}"),
                                          prompts_per_step=2, group_size=4, max_turns=3, max_tokens=96,
                                          max_new_tokens=32, micro_batch_size=3, train_tasks=8, device="cpu",
                                          max_grad_norm=1e9, share_prompt=share))
        trainer.loop.backend = ScriptedBackend(trainer.tokenizer, solver)
        trajs = trainer.rollout([EpisodeSpec(task=t, messages=initial_messages(trainer.env, t), id=f"{t.id}#{k}")
                                 for t in trainer.next_prompts() for k in range(4)])
        trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.5)
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        stats = trainer.update(trajs, torch.linspace(-1.0, 1.0, len(trajs)))
        steps.append({n: before[n] - p.detach() for n, p in trainer.model.named_parameters()})
        tokens.append(stats["actor/padded_tokens"])
    assert tokens[1] < tokens[0]
    for name, delta in steps[0].items():
        assert delta.abs().sum() > 0 or "bias" in name
        torch.testing.assert_close(steps[1][name], delta, rtol=RTOL, atol=ATOL, msg=name)


def test_a_group_longer_than_the_cap_is_split_into_several_packed_rows():
    from reagent.train.prefix_pack import packed_micro_batches, shared_length

    prompt = list(range(10))
    trajs = [Trajectory(id=f"g#{k}", token_ids=prompt + [100 + k] * 5, loss_mask=[0] * 10 + [1] * 5)
             for k in range(4)]
    assert shared_length(trajs[0]) == 10
    assert packed_micro_batches(trajs, size=8) == [[[0, 1, 2, 3]]]  # one row: 10 + 4 x 5 = 30 tokens
    # cap 20: at most 2 responses behind the prompt (10 + 2 x 5); every trajectory kept once
    mbs = packed_micro_batches(trajs, size=8, max_tokens=20)
    pieces = [p for mb in mbs for p in mb]
    assert sorted(i for p in pieces for i in p) == [0, 1, 2, 3] and all(len(p) == 2 for p in pieces)
    # a cap below one trajectory still keeps each trajectory (its own row, as long as padded)
    assert sorted(len(p) for mb in packed_micro_batches(trajs, size=8, max_tokens=5) for p in mb) == [1, 1, 1, 1]
