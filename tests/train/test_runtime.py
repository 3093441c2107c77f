"""The shared training runtime on one process: logger sinks and resume truncation,
checkpoint layout, keep-last-N, and an exact round trip through load_checkpoint."""

import json

import pytest
import torch

from reagent.trackers import JsonlSink
from reagent.train.data import split_by_group
from reagent.train.runtime import (
    MetricsLogger,
    Ranks,
    complete_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


class ListSink:
    """A tracker stand-in: what a wandb/other sink would receive."""

    def __init__(self):
        self.rows, self.truncated, self.closed = [], [], False

    def write(self, step, metrics):
        self.rows.append((step, dict(metrics)))

    def truncate_after(self, step):
        self.truncated.append(step)

    def close(self):
        self.closed = True


def test_logger_fans_out_to_sinks_and_truncates_on_resume(tmp_path):
    extra = ListSink()
    log = MetricsLogger(tmp_path, is_main=True, sinks=[JsonlSink(tmp_path / "metrics.jsonl"), extra])
    for step in (1, 2, 3):
        log.log(step, {"loss": 1.0 / step, "bad": float("nan")})
    log.truncate_after(2)
    log.log(3, {"loss": 0.3})
    log.close()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["loss"] == 0.3
    assert rows[0]["bad"] is None  # non-finite floats are written as null
    assert [s for s, _ in extra.rows] == [1, 2, 3, 3] and extra.truncated == [2] and extra.closed
    assert not list(tmp_path.glob("*.tmp"))  # the rewrite was renamed into place
    quiet = MetricsLogger(tmp_path / "other", is_main=False)
    quiet.log(1, {"loss": 1.0})
    assert not (tmp_path / "other").exists()  # only rank 0 writes


def test_split_by_group_keeps_groups_apart():
    items = [(g, i) for g in "abcdefghij" for i in range(3)]
    train, val = split_by_group(items, lambda x: x[0], 0.2, seed=1)
    assert {g for g, _ in train}.isdisjoint({g for g, _ in val}) and len(val) == 6
    assert split_by_group(items, lambda x: x[0], 0.2, seed=1) == (train, val)
    with pytest.raises(ValueError, match="fraction"):
        split_by_group(items, lambda x: x[0], 1.0, seed=0)
    assert split_by_group(items, lambda x: x[0], 0.0, seed=1) == (items, [])
    train, val = split_by_group(items[:6], lambda x: x[0], 0.9, seed=0)  # 2 groups
    assert len(train) == 3 and len(val) == 3  # one group always stays in train


def test_split_by_group_links_groups_through_a_second_key():
    # (task, question): t1-t2 share q1, t2-t3 share q2 -> one component {t1, t2, t3};
    # t4..t9 stand alone. Neither key may straddle, whatever the seed.
    items = [("t1", "q1"), ("t2", "q1"), ("t2", "q2"), ("t3", "q2")] + \
        [(f"t{i}", f"q{i}") for i in range(4, 10) for _ in range(2)]
    chained_in_val = 0
    for seed in range(20):
        train, val = split_by_group(items, lambda x: x[0], 0.3, seed, linked=lambda x: x[1])
        assert len(train) + len(val) == len(items)
        for key in (0, 1):
            assert {x[key] for x in train}.isdisjoint({x[key] for x in val}), (seed, key)
        assert len({x[0] for x in val if x[0] in ("t1", "t2", "t3")}) in (0, 3)
        chained_in_val += any(x[0] == "t1" for x in val)
        # 7 components, round(0.3 * 7) = 2 of them in validation
        assert len({x[0] for x in val} - {"t2", "t3"}) == 2
    assert 0 < chained_in_val < 20  # the seed moves the chained component between sides
    # without the link, t1 and t3 are separate groups and can be split apart
    apart = [split_by_group(items, lambda x: x[0], 0.3, s)[1] for s in range(20)]
    assert any(({"t1", "t3"} & {x[0] for x in v}) in ({"t1"}, {"t3"}) for v in apart)


def test_checkpoint_round_trip_and_keep_last(tiny_model_dir, tiny_tokenizer, tmp_path):
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM

    acc = Accelerator(cpu=True)
    ranks = Ranks(acc)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, optimizer = acc.prepare(model, optimizer)
    ids = torch.tensor([[1, 2, 3, 4]])
    for step in (1, 2, 3):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        save_checkpoint(acc, ranks, model, tiny_tokenizer, tmp_path, step, {"data_index": step}, keep=2)
    (tmp_path / "checkpoints" / "step-000004.tmp").mkdir()  # a kill mid-save
    assert [c.name for c in complete_checkpoints(tmp_path)] == ["step-000002", "step-000003"]
    last = latest_checkpoint(tmp_path)
    assert {p.name for p in last.iterdir()} == {"model", "state", "rng_rank0.pt", "trainer_state.json",
                                                "COMPLETE"}
    saved = AutoModelForCausalLM.from_pretrained(last / "model")  # a plain transformers model
    trained = {n: p.detach().clone() for n, p in acc.unwrap_model(model).named_parameters()}
    assert all(torch.equal(p, trained[n]) for n, p in saved.named_parameters())

    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    acc2 = Accelerator(cpu=True)
    fresh, fresh_opt = acc2.prepare(fresh, fresh_opt)
    torch.manual_seed(123)
    state = load_checkpoint(acc2, last)
    expected_draw = torch.rand(3)
    assert state == {"data_index": 3, "step": 3}
    assert all(torch.equal(p, trained[n]) for n, p in acc2.unwrap_model(fresh).named_parameters())
    assert fresh_opt.state_dict()["state"][0]["step"] == 3  # the optimizer came back too
    load_checkpoint(acc2, last)
    assert torch.equal(torch.rand(3), expected_draw)  # and the RNG
