"""The judge sees the question and every turn in order; long tool output is elided in the middle."""

from reagent.judge_render import elide_middle, render_for_judge
from reagent.records import Message, ToolCall
from tests.test_records import make_trajectory


def test_render_has_question_turns_and_tool_responses_in_order():
    text = render_for_judge(make_trajectory())
    assert text.startswith("Question: What is A's balance?")
    order = ["<think>look it up</think>", '"name": "lookup"', "<tool_response>\n42\n</tool_response>",
             "\\boxed{42}"]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions)
    assert "You are an agent." not in text  # the system prompt is not part of the episode


def test_long_tool_output_is_elided_in_the_middle_and_marked():
    big = "HEAD " + "x" * 50_000 + " TAIL"
    msgs = [Message(role="user", content="q"),
            Message(role="assistant", content="call", tool_calls=[ToolCall(id="1", name="f")]),
            Message(role="tool", content=big, tool_call_id="1"),
            Message(role="assistant", content="ANSWER " + "y" * 3000)]
    text = render_for_judge(msgs, max_chars=8000)
    assert len(text) <= 8000
    assert "HEAD" in text and "TAIL" in text and "characters elided" in text
    assert "ANSWER " + "y" * 3000 in text  # assistant turns are never cut


def test_elide_middle_bounds():
    assert elide_middle("short", 100) == "short"
    out = elide_middle("a" * 1000 + "b" * 1000, 200)
    assert len(out) <= 200 and out.startswith("a") and out.endswith("b")


def test_reasoning_is_judged_and_cut_last_with_a_budget():
    think = "<think>\n" + "step " * 400 + "\n</think>\n\n"
    msgs = [Message(role="user", content="Q?"),
            Message(role="assistant", content=think + "I will look.",
                    extra={"generated_text": think + "I will look.\n<tool_call>\n{}\n</tool_call>"}),
            Message(role="tool", content="x" * 3000),
            Message(role="assistant", content=think + "\\boxed{7}")]
    full = render_for_judge(msgs, max_chars=None)
    assert full.count("step ") == 800 and "<tool_call>\n{}\n</tool_call>" in full  # as generated
    # over budget: the tool result goes to its floor first, then the think blocks shrink
    cut = render_for_judge(msgs, max_chars=2500, min_tool_chars=300, min_think_chars=500)
    assert len(cut) <= 2600 and cut.count("<think>") == 2 and "characters elided" in cut
    assert "I will look." in cut and "\\boxed{7}" in cut
    assert cut.count("step ") < 800 and "step " in cut
