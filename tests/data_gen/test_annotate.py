"""``reagent annotate`` with an OpenAI-compatible teacher on 127.0.0.1: every record checked."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter

from data_gen.annotate import RateLimiter
from reagent.cli import main
from reagent.envs.toy import ToyEnv
from reagent.jsonl import load_records
from reagent.records import JudgeExample, Trajectory
from rrm.prompt import build_judge_messages, format_judgment, judge_system_prompt

from .conftest import ScriptedServer


def verdict_for(user_message: str) -> tuple[str, str, float]:
    """What the scripted teacher says about a trajectory: a function of what it was shown."""
    h = int(hashlib.sha1(user_message.encode()).hexdigest(), 16)
    return f"analysis {h % 997}", f"- critique {h % 991}", (h % 101) / 100


def good_reply(body: dict) -> str:
    return format_judgment(*verdict_for(body["messages"][-1]["content"]))


def run(*argv: str) -> int:
    return main(["annotate", "--no-progress", *argv])


def lines(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def test_every_record_matches_what_the_teacher_saw_and_said(traces_file, tmp_path):
    trajs = {t.id: t for t in load_records(traces_file, Trajectory)}
    tasks = {t.id: t for t in ToyEnv(seed=0).tasks("train", len(trajs))}
    out = tmp_path / "judge.jsonl"
    with ScriptedServer(good_reply, delay_s=0.02) as srv:
        rc = run("--traces", str(traces_file), "--base-url", srv.url, "--model", "teacher-x",
                 "--out", str(out), "--concurrency", "3")
    assert rc == 0
    records = lines(out)
    assert sorted(r["trajectory_id"] for r in records) == sorted(trajs)
    for r in records:
        ex = JudgeExample.from_dict(r)
        traj = trajs[r["trajectory_id"]]
        expected_user = build_judge_messages(traj)[1]["content"]
        analysis, critique, score = verdict_for(expected_user)
        assert ex.trajectory == expected_user and ex.trajectory.startswith("Question: ")
        assert ex.question == traj.question
        assert (ex.analysis, ex.critique, ex.score) == (analysis, critique, score)
        assert ex.outcome == traj.outcome and ex.teacher == "teacher-x"
        assert r["status"] == "ok" and r["task_id"] == traj.task_id
        assert r["reference"] == tasks[traj.task_id].answer
        made_by = r["made_by"]
        assert made_by["model"] == "teacher-x" and made_by["teacher"] == "openai"
        assert made_by["base_url"] == srv.url and len(made_by["config_hash"]) == 12
    # What went over the wire: the one judge prompt, greedy, stopping at </score>.
    assert len(srv.requests) == len(trajs)
    for body in srv.requests:
        assert body["messages"][0] == {"role": "system", "content": judge_system_prompt()}
        assert body["model"] == "teacher-x" and body["temperature"] == 0
        assert "</score>" in body["stop"]
    assert 1 <= srv.max_in_flight <= 3


def test_garbage_answers_are_kept_with_their_parse_status(traces_file, tmp_path):
    def reply(body):
        user = body["messages"][-1]["content"]
        kind = int(hashlib.sha1(user.encode()).hexdigest(), 16) % 3
        return ["Looks fine to me.", "<think>a</think><critique>- b</critique><score>high</score>",
                good_reply(body)][kind]

    out = tmp_path / "judge.jsonl"
    with ScriptedServer(reply) as srv:
        assert run("--traces", str(traces_file), "--base-url", srv.url, "--out", str(out)) == 0
    records = lines(out)
    assert len(records) == 12
    statuses = Counter(r["status"] for r in records)
    assert set(statuses) <= {"missing_score", "unparseable_score", "ok"} and len(statuses) > 1
    for r in records:
        if r["status"] != "ok":
            assert r["score"] is None and r["raw"] and r["error"]
        assert r["teacher"] == "scripted-teacher"  # no --model: the server's first model


def test_transient_errors_are_retried_and_hard_failures_left_for_the_rerun(traces_file, tmp_path):
    seen: Counter = Counter()
    lock = threading.Lock()
    broken = {"on": True}

    def reply(body):
        user = body["messages"][-1]["content"]
        if broken["on"] and user == hard_user:
            return 400, "context too long"  # not worth a retry
        with lock:
            seen[user] += 1
            first = seen[user] == 1
        return (503, "busy") if first else good_reply(body)  # every first try fails

    trajs = load_records(traces_file, Trajectory)
    hard_user = build_judge_messages(trajs[3])[1]["content"]
    out = tmp_path / "judge.jsonl"
    args = ("--traces", str(traces_file), "--out", str(out), "--backoff-s", "0.01",
            "--max-retries", "2")
    with ScriptedServer(reply) as srv:
        assert run(*args, "--base-url", srv.url) == 1  # one failure: reported, not written
        records = lines(out)
        assert len(records) == 11 and trajs[3].id not in {r["trajectory_id"] for r in records}
        assert all(r["status"] == "ok" for r in records)
        broken["on"] = False
        assert run(*args, "--base-url", srv.url) == 0
    records = lines(out)
    assert Counter(r["trajectory_id"] for r in records) == Counter(t.id for t in trajs)


def test_rerun_after_a_torn_line_skips_done_ids_and_repairs(traces_file, tmp_path):
    out = tmp_path / "judge.jsonl"
    with ScriptedServer(good_reply) as srv:
        assert run("--traces", str(traces_file), "--base-url", srv.url, "--out", str(out)) == 0
        full = out.read_text().splitlines(keepends=True)
        out.write_text("".join(full[:7]) + full[7][: len(full[7]) // 2])  # killed mid-line
        srv.requests.clear()
        assert run("--traces", str(traces_file), "--base-url", srv.url, "--out", str(out)) == 0
        assert len(srv.requests) == 12 - 7
    records = lines(out)  # every line parses: the torn one was cut
    assert len(records) == 12 and len({r["trajectory_id"] for r in records}) == 12


def test_another_teacher_cannot_append_to_the_same_file(traces_file, tmp_path, capsys):
    out = tmp_path / "judge.jsonl"
    assert run("--traces", str(traces_file), "--teacher", "rules", "--out", str(out),
               "--limit", "3") == 0
    with ScriptedServer(good_reply) as srv:
        assert run("--traces", str(traces_file), "--base-url", srv.url, "--out", str(out)) == 2
        assert not srv.requests
    assert "already holds verdicts by teacher 'rules'" in capsys.readouterr().err


def test_sharegpt_input_is_read_directly(tmp_path):
    src = tmp_path / "chats.jsonl"
    src.write_text(json.dumps({"gt": "Paris", "success": True, "conversations": [
        {"from": "human", "value": "Capital of France?"},
        {"from": "gpt", "value": "<tool_call>\n{\"name\": \"search\", \"arguments\": "
                                 "{\"q\": \"France capital\"}}\n</tool_call>"},
        {"from": "human", "value": "<tool_response>\nParis is the capital.\n</tool_response>"},
        {"from": "gpt", "value": "\\boxed{Paris}"}]}) + "\n")
    out = tmp_path / "judge.jsonl"
    with ScriptedServer(good_reply) as srv:
        assert run("--traces", str(src), "--format", "sharegpt", "--base-url", srv.url,
                   "--out", str(out)) == 0
        [body] = srv.requests
    [r] = lines(out)
    assert r["outcome"] == 1.0 and r["reference"] == "Paris" and r["status"] == "ok"
    assert r["trajectory"] == body["messages"][1]["content"]
    assert '"name": "search"' in r["trajectory"] and "<tool_response>" in r["trajectory"]


def test_unreachable_teacher_is_a_clear_error(traces_file, tmp_path, capsys):
    with ScriptedServer(good_reply) as srv:
        url = srv.url
    assert run("--traces", str(traces_file), "--base-url", url, "--max-retries", "0",
               "--out", str(tmp_path / "j.jsonl")) == 2
    assert "check --base-url or pass --model" in capsys.readouterr().err


def test_config_errors_name_the_field(traces_file, capsys):
    assert run("--traces", str(traces_file), "--teacher", "openai") == 2
    assert "base_url" in capsys.readouterr().err
    assert run("--traces", str(traces_file), "--teacher", "gpt") == 2
    assert "teacher='gpt'" in capsys.readouterr().err


def test_rate_limiter_spaces_request_starts():
    limiter = RateLimiter(50.0)  # one start every 20 ms
    starts: list[float] = []
    threads = [threading.Thread(target=lambda: (limiter.wait(), starts.append(time.monotonic())))
               for _ in range(6)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Six starts 20 ms apart span at least 100 ms, whatever the thread scheduling.
    assert max(starts) - t0 >= 5 * 0.02 - 0.002
