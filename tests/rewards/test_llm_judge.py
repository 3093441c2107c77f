"""LLMAnswerChecker against a scripted OpenAI-compatible server on 127.0.0.1."""

import itertools

import pytest

from reagent.rewards.llm_judge import (
    PROMPT_FILE,
    AnswerCheck,
    LLMAnswerChecker,
    build_prompt,
    parse_verdict,
)
from tests.scripted import ScriptedServer


def served(reply, delay_s: float = 0.0) -> ScriptedServer:
    """The scripted server answering ``reply(n, body) -> (status, content)``; n counts calls."""
    calls = itertools.count(1)

    def answer(body):
        status, content = reply(next(calls), body)
        return content if status == 200 else (status, content)

    return ScriptedServer(answer, delay_s=delay_s)


def _checker(url, **kw):
    kw.setdefault("backoff_s", 0.0)
    kw.setdefault("timeout", 5.0)
    return LLMAnswerChecker(url, "judge-model", **kw)


def test_parse_verdict():
    assert parse_verdict("Same city.\nVerdict: CORRECT") == "correct"
    assert parse_verdict("Different.\nVerdict: INCORRECT") == "incorrect"  # not read as CORRECT
    assert parse_verdict("**Verdict:** correct") == "correct"
    assert parse_verdict("<think>Verdict: INCORRECT?</think>Verdict: CORRECT") == "correct"
    assert parse_verdict("I think so.\nINCORRECT") == "incorrect"
    assert parse_verdict("It is probably right.") is None
    assert parse_verdict("") is None


def test_prompt_file_and_literal_placeholders():
    assert PROMPT_FILE.is_file()
    prompt = build_prompt("What is {x}?", r"\frac{1}{2}", ["0.5", "1/2"])
    assert "What is {x}?" in prompt and r"\frac{1}{2}" in prompt
    assert "- 0.5" in prompt and "- 1/2" in prompt
    assert "{prediction}" not in prompt


def test_correct_and_incorrect_verdicts():
    def reply(n, body):
        prompt = body["messages"][0]["content"]
        ok = "Predicted answer:\nParis" in prompt
        return 200, "Reasoning.\nVerdict: " + ("CORRECT" if ok else "INCORRECT")

    with served(reply) as srv, _checker(srv.base_url) as checker:
        good = checker.check("Capital of France?", "Paris", "Paris")
        bad = checker.check("Capital of France?", "Lyon", "Paris")
    assert (good.verdict, good.score, good.attempts) == ("correct", 1.0, 1)
    assert (bad.verdict, bad.score) == ("incorrect", 0.0)
    assert srv.requests[0]["model"] == "judge-model"
    assert srv.requests[0]["temperature"] == 0.0
    assert "Capital of France?" in srv.requests[0]["messages"][0]["content"]


def test_retries_after_server_errors():
    def reply(n, body):
        return (500, "overloaded") if n <= 2 else (200, "Verdict: CORRECT")

    with served(reply) as srv, _checker(srv.base_url, max_retries=3) as checker:
        result = checker.check("q", "a", "a")
    assert (result.verdict, result.score, result.attempts) == ("correct", 1.0, 3)
    assert len(srv.requests) == 3


def test_always_failing_server_gives_could_not_judge_not_zero():
    with (
        served(lambda n, b: (503, "down")) as srv,
        _checker(srv.base_url, max_retries=2) as c,
    ):
        result = c.check("q", "a", "a")
    assert result.verdict == "could_not_judge"
    assert result.score is None
    assert result.attempts == 3 and len(srv.requests) == 3
    assert "503" in result.error


def test_client_errors_are_not_retried():
    with served(lambda n, b: (400, "bad model")) as srv, _checker(srv.base_url) as c:
        result = c.check("q", "a", "a")
    assert (result.verdict, result.score, result.attempts) == ("could_not_judge", None, 1)


def test_reply_without_verdict_is_could_not_judge():
    with (
        served(lambda n, b: (200, "Looks fine to me.")) as srv,
        _checker(srv.base_url) as c,
    ):
        result = c.check("q", "a", "a")
    assert (result.verdict, result.score) == ("could_not_judge", None)
    assert result.explanation == "Looks fine to me."


def test_unreachable_server_is_could_not_judge():
    with served(lambda n, b: (200, "")) as srv:
        url = srv.base_url
    # The server is closed now: connections are refused.
    with _checker(url, max_retries=1, timeout=2.0) as c:
        result = c.check("q", "a", "a")
    assert (result.verdict, result.score, result.attempts) == ("could_not_judge", None, 2)


def test_empty_prediction_is_incorrect_without_a_call():
    with served(lambda n, b: (200, "Verdict: CORRECT")) as srv, _checker(srv.base_url) as c:
        result = c.check("q", "  ", "a")
    assert (result.verdict, result.score) == ("incorrect", 0.0)
    assert srv.requests == []


def test_batch_keeps_order_and_bounds_concurrency():
    def reply(n, body):
        ok = "Predicted answer:\nright" in body["messages"][0]["content"]
        return 200, "Verdict: " + ("CORRECT" if ok else "INCORRECT")

    preds = ["right", "wrong", "right", "wrong", "right", "right", "wrong", "right"]
    with served(reply, delay_s=0.05) as srv, _checker(srv.base_url, concurrency=3) as c:
        results = c.check_batch(["q"] * len(preds), preds, ["right"] * len(preds))
        scores = c.scores(["q"], ["wrong"], ["right"])
    assert [r.score for r in results] == [1.0 if p == "right" else 0.0 for p in preds]
    assert scores == [0.0]
    assert 1 < srv.max_in_flight <= 3
    with pytest.raises(ValueError, match="lengths differ"):
        c.check_batch(["q"], ["a", "b"], ["a"])


def test_api_key_from_environment(monkeypatch):
    monkeypatch.delenv("REAGENT_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(ValueError, match="REAGENT_TEST_JUDGE_KEY"):
        LLMAnswerChecker("http://127.0.0.1:1/v1", "m", api_key_env="REAGENT_TEST_JUDGE_KEY")
    monkeypatch.setenv("REAGENT_TEST_JUDGE_KEY", "sk-test")
    with (
        served(lambda n, b: (200, "Verdict: CORRECT")) as srv,
        _checker(srv.base_url, api_key_env="REAGENT_TEST_JUDGE_KEY") as c,
    ):
        c.check("q", "a", "a")
    assert srv.headers[0]["Authorization"] == "Bearer sk-test"


def test_answer_check_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="verdict"):
        AnswerCheck("maybe", None)
