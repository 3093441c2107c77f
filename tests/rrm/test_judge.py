"""Judge logic with a scripted generate function: retries, failures, failure policy."""

import pytest

from reagent.generation.base import Generation
from reagent.records import Trajectory
from rrm.judge import FailureCounter, FailurePolicy, Judge, JudgeFailure, apply_failure_policy
from rrm.prompt import format_judgment, judge_system_prompt

TRAJ = Trajectory.from_dict({"id": "t1", "task_id": "q1", "messages": [
    {"role": "user", "content": "What is A's balance?"},
    {"role": "assistant", "content": "It is 5. \\boxed{5}"}]})


def test_messages_carry_question_and_trajectory_not_answer():
    calls = []

    def gen(convs, params):
        calls.append((convs, params))
        return [Generation(text=format_judgment("a", "- guessed", 0.2))]

    [j] = Judge(gen, "m").score([TRAJ])
    assert j.status == "ok" and j.score == 0.2 and j.model == "m"
    [conv], params = calls[0]
    assert conv[0] == {"role": "system", "content": judge_system_prompt()}
    assert conv[1]["content"].startswith("Question: What is A's balance?")
    assert "\\boxed{5}" in conv[1]["content"]
    assert params.temperature == 0 and "</score>" in params.stop


def test_truncated_output_is_retried_once_with_a_larger_limit():
    # (Before issue 20 a verdict truncated anywhere was retried; now only one that had
    # finished its analysis is -- a truncation inside <think> is a runaway, see below.)
    limits = []

    def gen(convs, params):
        limits.append(params.max_new_tokens)
        if params.max_new_tokens < 100:
            return [Generation(text="<think>a</think><critique>lo", finish_reason="length") for _ in convs]
        return [Generation(text=format_judgment("a", "b", 0.9)) for _ in convs]

    judge = Judge(gen, "m", max_new_tokens=50, retry_max_new_tokens=200)
    js = judge.score([TRAJ, TRAJ])
    assert limits == [50, 200]
    assert [j.score for j in js] == [0.9, 0.9] and js[0].extra["retried"] == "truncated"


def test_runaway_verdicts_are_cut_and_not_retried():
    """Truncated inside <think>, or looping: no retry (it would only loop longer); the
    verdict stays truncated with score None and says why. A near-finished one in the
    same batch is retried alone."""
    looping = "<think>ok</think><critique>" + "the agent is wrong. " * 20
    near = "<think>ok</think><critique>- misread the ledger</critique><sco"
    first = {0: "<think>" + "hmm " * 40, 1: looping, 2: near}
    calls = []

    def gen(convs, params):
        calls.append((len(convs), params.max_new_tokens))
        if params.max_new_tokens == 50:
            return [Generation(text=first[k], finish_reason="length") for k in range(len(convs))]
        return [Generation(text=format_judgment("ok", "- misread the ledger", 0.4)) for _ in convs]

    js = Judge(gen, "m", max_new_tokens=50).score([TRAJ, TRAJ, TRAJ])
    assert calls == [(3, 50), (1, 100)]  # only the near-finished verdict is retried
    assert [j.status for j in js] == ["truncated", "truncated", "ok"]
    assert [j.score for j in js] == [None, None, 0.4]
    assert js[0].extra["runaway"] == "think" and js[1].extra["runaway"] == "repetition"
    assert "retried" not in js[0].extra and js[2].extra["retried"] == "truncated"


def test_runaway_rule_on_hand_written_tails():
    from rrm.judge import runaway

    assert runaway("<think>still thinking") == "think"
    assert runaway("<think>a</think><critique>" + "ab" * 120) == "repetition"
    assert runaway("<think>a</think><critique>" + "x" * 100) is None  # a loop, but too short to call
    varied = " ".join(f"step {i} checks account {i * 7 % 13}" for i in range(20))
    assert runaway("<think>a</think><critique>" + varied) is None


def test_backend_exception_is_a_failure_not_a_zero():
    def gen(convs, params):
        raise ConnectionError("server down")

    judge = Judge(gen, "m")
    js = judge.score([TRAJ, TRAJ])
    assert all(j.status == "failed" and j.score is None for j in js)
    assert "server down" in js[0].extra["error"] and judge.stats["failed"] == 2


def test_error_generation_is_a_failure():
    judge = Judge(lambda c, p: [Generation(text="", finish_reason="error")], "m")
    [j] = judge.score([TRAJ])
    assert j.status == "failed" and j.score is None


def _js():
    judge = Judge(lambda c, p: [Generation(text=format_judgment("a", "b", 0.5)),
                                Generation(text="high", finish_reason="stop"),
                                Generation(text="", finish_reason="error")], "m")
    return judge.score([TRAJ] * 3)


def test_failure_policies():
    counter = FailureCounter()
    assert apply_failure_policy(_js(), "drop", counter) == ([0.5, None, None], [True, False, False])
    assert apply_failure_policy(_js(), FailurePolicy.OUTCOME_ONLY, counter) == (
        [0.5, None, None], [True, True, True])
    assert counter.judged == 6 and counter.failed == 4
    assert counter.by_status == {"missing_score": 2, "failed": 2}
    assert counter.metrics()["judge/failure_rate"] == pytest.approx(4 / 6)
    with pytest.raises(JudgeFailure, match="2/3"):
        apply_failure_policy(_js(), "stop")
    with pytest.raises(ValueError, match="drop, outcome_only, stop"):
        FailurePolicy.parse("ignore")


def _dead_url():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/v1"


def test_judge_cli_with_a_dead_server_counts_failures(tmp_path, capsys):
    from reagent.cli import main
    from reagent.jsonl import load_records, write_records

    traces = tmp_path / "t.jsonl"
    write_records(traces, [TRAJ, Trajectory.from_dict({**TRAJ.to_dict(), "id": "t2"})])
    out = tmp_path / "j.jsonl"
    args = ["judge", "--base-url", _dead_url(), "--served-model", "m", "--traces", str(traces),
            "--out", str(out), "--max-retries", "1", "--backoff-s", "0.01", "--timeout", "2"]
    # Default policy drop: nothing written, a rerun retries them; every judgment failed, so
    # the run is an error (issue 21: it used to exit 0).
    assert main(args) == 1
    assert not out.exists() or load_records(out, Trajectory) == []
    assert "failed 2 (failed: 2)" in capsys.readouterr().err
    assert main(args + ["--on-failure", "outcome_only"]) == 0
    judged = load_records(out, Trajectory)
    assert [(t.id, t.judge.status, t.judge.score) for t in judged] == [
        ("t1", "failed", None), ("t2", "failed", None)]
    out.unlink()
    assert main(args + ["--on-failure", "stop"]) == 1
    assert main(["judge", "--traces", str(traces), "--out", str(out)]) == 2  # no judge given


def test_judge_example_trajectory_forms_render_the_same():
    from reagent.records import JudgeExample
    from rrm.prompt import judge_user_message

    msgs = [m.to_dict() for m in TRAJ.messages]
    as_list = JudgeExample(question=TRAJ.question, trajectory=msgs, score=1.0)
    as_dict = JudgeExample(question=TRAJ.question, trajectory={"messages": msgs}, score=1.0)
    text = judge_user_message(TRAJ)
    assert judge_user_message(as_list) == judge_user_message(as_dict) == text
    rendered = JudgeExample(question=TRAJ.question, trajectory=text, score=1.0)
    assert judge_user_message(rendered) == text


def test_verdict_that_starts_inside_an_open_think_block_is_scored():
    # A QwQ-style template ends the generation prompt with "<think>\n": the judge's text
    # starts inside the block. It parsed as missing_blocks with no score before.
    inside = "\nthe agent guessed\n</think>\n<critique>\n- look it up\n</critique>\n<score>0.25</score>"

    def generate(convs, params):
        return [Generation(text=inside, token_ids=[], finish_reason="stop") for _ in convs]

    (j,) = Judge(generate, "qwq-style").score(["Question: q\nTrajectory: t"])
    assert (j.status, j.score, j.analysis.strip()) == ("ok", 0.25, "the agent guessed")
    whole = format_judgment("a", "- b", 0.5)
    (k,) = Judge(lambda c, p: [Generation(text=whole, token_ids=[], finish_reason="stop")],
                 "plain").score(["x"])
    assert (k.status, k.score) == ("ok", 0.5)  # an already opened block is left alone


@pytest.mark.slow
def test_judge_cli_renders_the_judges_template_with_chat_template_kwargs(family_model_dir, tmp_path,
                                                                        hf_prompts):
    """`reagent judge --model` (a tiny Qwen3 judge, real tokenizer): with enable_thinking
    false every judge prompt ends with the template's empty think block; without, none does."""
    from reagent.cli import main
    from reagent.jsonl import write_records

    prompts = hf_prompts
    traces = tmp_path / "t.jsonl"
    write_records(traces, [TRAJ, Trajectory.from_dict({**TRAJ.to_dict(), "id": "t2"})])
    base = ["judge", "--model", str(family_model_dir("qwen3")), "--traces", str(traces),
            "--max-new-tokens", "2", "--retry-max-new-tokens", "2", "--device", "cpu",
            "--on-failure", "outcome_only"]
    assert main(base + ["--out", str(tmp_path / "a.jsonl")]) == 0
    assert len(prompts) == 2 and all(p.endswith("<|im_start|>assistant\n") for p in prompts)
    prompts.clear()
    assert main(base + ["--out", str(tmp_path / "b.jsonl"),
                        "--chat-template-kwargs", '{"enable_thinking": false}']) == 0
    assert len(prompts) == 2
    assert all(p.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") for p in prompts)


def test_eval_rrm_sends_chat_template_kwargs_to_the_judge_server(tmp_path):
    from reagent.cli import main
    from reagent.jsonl import write_records
    from tests.rrm.conftest import toy_judge_examples
    from tests.scripted import ScriptedServer

    data = tmp_path / "labelled.jsonl"
    write_records(data, toy_judge_examples(1))
    with ScriptedServer(lambda body: format_judgment("fine", "- none", 0.8)) as srv:
        base = ["eval-rrm", "--base-url", srv.url, "--data", str(data), "--timeout", "10"]
        assert main(base) == 0
        assert all("chat_template_kwargs" not in r for r in srv.requests)
        n = len(srv.requests)
        assert main(base + ["--chat-template-kwargs", '{"enable_thinking": false}']) == 0
        assert n > 0 and len(srv.requests) == 2 * n
        assert all(r["chat_template_kwargs"] == {"enable_thinking": False}
                   for r in srv.requests[n:])
    assert main(base + ["--chat-template-kwargs", "enable_thinking"]) == 2  # not a mapping
