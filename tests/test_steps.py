"""Step boundaries: agent turns in a multi-turn trajectory and tagged single-response solutions."""

from __future__ import annotations

import pytest

from reagent.records import Message, ToolCall
from reagent.steps import (
    KI_TAG,
    agent_steps,
    join_steps,
    split_solution,
    step_positions_from_mask,
    step_token_positions,
)
from reagent.tokenization import tokenize_trajectory


def _multi_turn() -> list[Message]:
    call = ToolCall(id="c1", name="lookup", arguments='{"account": "A"}')
    call2 = ToolCall(id="c2", name="calc", arguments='{"expression": "3+4"}')
    return [
        Message(role="user", content="What is A plus 4?"),
        Message(role="assistant", content="look up A", tool_calls=[call]),
        Message(role="tool", content="3", tool_call_id="c1", name="lookup"),
        Message(role="assistant", content="add", tool_calls=[call2]),
        Message(role="tool", content="7", tool_call_id="c2", name="calc"),
        Message(role="assistant", content="The answer is \\boxed{7}"),
    ]


def test_agent_steps_are_assistant_turns_with_their_tool_results():
    steps = agent_steps(_multi_turn())
    assert [s.turn for s in steps] == [1, 3, 5]
    # A step's state runs through the tool results it caused.
    assert [s.state_end for s in steps] == [3, 5, 6]
    assert [s.tool_calls for s in steps] == [1, 1, 0]


def test_agent_step_positions_are_the_last_token_of_each_turn(tiny_tokenizer):
    msgs = _multi_turn()
    ids, pos = step_token_positions(tiny_tokenizer, msgs)
    assert len(pos) == 3 and pos == sorted(pos)
    eot = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert all(ids[p] == eot for p in pos)  # each turn is valued at its end-of-turn token
    # The prefix through a step's last token is exactly the conversation through that turn.
    text = tiny_tokenizer.decode(ids[: pos[1] + 1])
    assert text.rstrip().endswith("<|im_end|>") and "7" not in text.split("add")[-1].split("<|im_end|>")[0]
    assert "The answer" not in text and "add" in text
    # The same boundaries from the loss mask the agent loop keeps beside its token ids.
    ids2, mask = tokenize_trajectory(tiny_tokenizer, msgs)
    assert ids2 == ids and step_positions_from_mask(mask) == pos


def test_ki_tagged_solution_splits_and_maps_to_tokens(tiny_tokenizer):
    raw = f"We have 2 apples. {KI_TAG}\nWe buy 3 more. {KI_TAG}\nSo 5 apples. The answer is 5 {KI_TAG}"
    steps = split_solution(raw)
    assert steps == ["We have 2 apples.", "We buy 3 more.", "So 5 apples. The answer is 5"]
    msgs = [Message(role="user", content="How many apples?"),
            Message(role="assistant", content=join_steps(steps))]
    ids, pos = step_token_positions(tiny_tokenizer, msgs, step_texts=steps)
    assert len(pos) == 3
    # Decoding through each position ends at that step's text (a token may also hold the
    # separator's first newline); the next step's text is not yet there.
    for k, (p, s) in enumerate(zip(pos, steps)):
        prefix = tiny_tokenizer.decode(ids[: p + 1])
        assert prefix.rstrip("\n").endswith(s)
        assert k + 1 == len(steps) or steps[k + 1] not in prefix
    with pytest.raises(ValueError, match="join_steps"):
        step_token_positions(tiny_tokenizer, msgs, step_texts=steps[:2])


@pytest.mark.parametrize("text,expected", [
    ("Step 1: a\nStep 2: b\nStep 3: c", ["Step 1: a", "Step 2: b", "Step 3: c"]),
    ("first\n\nsecond\n \nthird", ["first", "second", "third"]),
    ("one\ntwo", ["one", "two"]),
])
def test_split_solution_separators(text, expected):
    assert split_solution(text) == expected


def test_split_solution_rejects_unknown_separator():
    with pytest.raises(ValueError, match="separator"):
        split_solution("a", "comma")
