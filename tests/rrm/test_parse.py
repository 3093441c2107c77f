"""Parser cases: well-formed, truncated, missing blocks, out of range, garbage."""

import pytest

from rrm.parse import is_scored, parse_judgment, parse_score
from rrm.prompt import format_judgment

GOOD = "<think>\nlooked up A twice\n</think>\n<critique>\n- drop the repeat\n</critique>\n<score>{}</score>"


@pytest.mark.parametrize("raw,value", [("0.7", 0.7), (".7", 0.7), ("0.70 ", 0.7), (" 1 ", 1.0),
                                       ("0", 0.0), ("1.0", 1.0), ("\n0.25\n", 0.25)])
def test_scores_that_parse(raw, value):
    j = parse_judgment(GOOD.format(raw))
    assert j.status == "ok" and j.score == pytest.approx(value)
    assert j.analysis == "looked up A twice" and j.critique == "- drop the repeat"
    assert is_scored(j)


@pytest.mark.parametrize("raw", ["7/10", "high", "", "0.7 or 0.8", "70%", "nan", "inf", "0.7.1"])
def test_scores_that_do_not_parse(raw):
    assert parse_score(raw) is None
    j = parse_judgment(GOOD.format(raw))
    assert j.status == "unparseable_score" and j.score is None and not is_scored(j)
    assert "error" in j.extra and j.extra["raw"].endswith("</score>")


@pytest.mark.parametrize("raw,clipped", [("1.5", 1.0), ("-0.2", 0.0), ("7", 1.0)])
def test_out_of_range_is_clipped_and_flagged(raw, clipped):
    j = parse_judgment(GOOD.format(raw))
    assert j.status == "out_of_range" and j.score == clipped
    assert j.extra["raw_score"] == float(raw)
    assert is_scored(j)


def test_truncated_before_score():
    text = "<think>\nthe agent looked up the balance and then"
    j = parse_judgment(text, finish_reason="length")
    assert j.status == "truncated" and j.score is None
    # An unclosed score at the token limit may be cut mid-number ("0." of "0.75").
    j = parse_judgment(GOOD.format("0.7")[: -len("5</score>")], finish_reason="length")
    assert j.status == "truncated"


def test_length_with_complete_score_still_parses():
    j = parse_judgment(GOOD.format("0.4") + "\nand some rambling", finish_reason="length")
    assert j.status == "ok" and j.score == 0.4


def test_stop_string_stripped_by_server():
    # vLLM/OpenAI servers drop the stop string "</score>" from the returned text.
    j = parse_judgment(GOOD.format("0.6")[: -len("</score>")], finish_reason="stop")
    assert j.status == "ok" and j.score == 0.6


@pytest.mark.parametrize("text,missing", [
    ("<critique>- x</critique>\n<score>0.5</score>", "think"),
    ("<think>a</think>\n<score>0.5</score>", "critique"),
    ("<think>a\n<critique>- x</critique>\n<score>0.5</score>", "think"),
    ("<critique>- x</critique>\n<think>a</think>\n<score>0.5</score>", "order"),
])
def test_missing_or_misordered_blocks(text, missing):
    j = parse_judgment(text)
    assert j.status == "missing_blocks" and j.score is None
    assert j.extra["raw_score"] == 0.5
    assert missing in j.extra["error"]


@pytest.mark.parametrize("text", ["", None, "The trajectory looks fine. 0.8",
                                  "<think>ok</think><critique>- none</critique>",
                                  "\x00\x01 garbage <<<>>>"])
def test_missing_score_and_garbage(text):
    j = parse_judgment(text)
    assert j.status == "missing_score" and j.score is None and not is_scored(j)


def test_last_score_block_wins():
    text = ("<think>the format asks for <score>x</score> at the end</think>\n"
            "<critique>- none</critique>\n<score>0.9</score>")
    j = parse_judgment(text)
    assert j.status == "ok" and j.score == 0.9


def test_format_judgment_round_trips():
    text = format_judgment("analysis\n", " - flaw one\n- flaw two", 0.654)
    assert text.endswith("<score>0.65</score>")
    j = parse_judgment(text, model="m")
    assert (j.status, j.score, j.critique, j.model) == ("ok", 0.65, "- flaw one\n- flaw two", "m")
    assert parse_judgment(format_judgment("a", "b", 1.0)).score == 1.0
    assert "<score>0</score>" in format_judgment("a", "b", 0.0)


@pytest.mark.parametrize("tail", ["<score>0.3</score>\n<score>0.9</score>",
                                  "<score>0.3</score> and <score>0.9"])
def test_several_score_blocks_are_rejected(tail):
    j = parse_judgment("<think>a</think>\n<critique>- b</critique>\n" + tail)
    assert j.status == "unparseable_score" and j.score is None
    assert "2 <score> blocks" in j.extra["error"]


@pytest.mark.parametrize("raw", ["٠.٧", "０.７", "۰.۵", "1\u0660", "0.\u0967"])
def test_non_ascii_digits_are_not_a_score(raw):
    assert float(raw) >= 0  # Python itself would take them
    assert parse_score(raw) is None
    assert parse_judgment(GOOD.format(raw)).status == "unparseable_score"

