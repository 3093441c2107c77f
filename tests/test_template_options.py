"""Every command that renders a chat template takes the same ``chat_template_kwargs`` (and,
for the policy, ``tool_format``) field: same name, same help, same validation at load."""

from __future__ import annotations

import dataclasses

import pytest

from reagent.template_options import server_extra_body


def configs():
    from eval.cli_eval import EvalConfig
    from reagent.cli.rollout import RolloutConfig
    from reagent.train.config import TrainConfig
    from reagent.train.sft import SFTConfig
    from rrm.cli_eval import EvalRRMConfig
    from rrm.cli_judge import JudgeConfig
    from rrm.sft import TrainRRMConfig

    return [  # (class, minimal valid arguments, takes tool_format)
        (TrainConfig, {}, True),
        (SFTConfig, {"data": "d", "model": "m", "out": "o"}, True),
        (RolloutConfig, {"model": "m"}, True),
        (EvalConfig, {"benchmark": "toy", "out": "o", "model": "m"}, True),
        (TrainRRMConfig, {"data": "d", "model": "m", "out": "o"}, False),
        (JudgeConfig, {"model": "m", "traces": "t", "out": "o"}, False),
        (EvalRRMConfig, {"data": "d"}, False),
    ]


@pytest.mark.parametrize("cls, args, policy", configs(),
                         ids=lambda x: x.__name__ if isinstance(x, type) else "")
def test_template_fields_are_shared_and_validated(cls, args, policy):
    from reagent.train.config import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(cls)}
    reference = {f.name: f for f in dataclasses.fields(TrainConfig)}
    names = ["chat_template_kwargs"] + (["tool_format"] if policy else [])
    for name in names:
        assert fields[name].metadata["help"] == reference[name].metadata["help"]
    assert ("tool_format" in fields) == policy
    ok = cls(**args, chat_template_kwargs={"enable_thinking": False})
    assert ok.chat_template_kwargs == {"enable_thinking": False}
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.chat_template_kwargs='x'.*mapping"):
        cls(**args, chat_template_kwargs="x")
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.chat_template_kwargs=\{{1: 2\}}"):
        cls(**args, chat_template_kwargs={1: 2})
    if policy:
        with pytest.raises(ValueError, match=rf"{cls.__name__}\.tool_format='xml'.*auto, hermes, llama3_json"):
            cls(**args, tool_format="xml")
    if "judge_chat_template_kwargs" in fields:
        with pytest.raises(ValueError, match=rf"{cls.__name__}\.judge_chat_template_kwargs="):
            cls(**args, judge_chat_template_kwargs=["x"])


def test_server_extra_body_only_when_set():
    assert server_extra_body({}) is None
    assert server_extra_body({"enable_thinking": False}) == {
        "chat_template_kwargs": {"enable_thinking": False}}
