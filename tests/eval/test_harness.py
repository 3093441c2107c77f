"""`reagent eval` end to end: exact pass@k against a scripted server, resume after SIGKILL,
a tiny local model on CPU, the toy benchmark, Reagent-C and Best-of-N, benchmark setups,
and `reagent rollout --benchmark/--critique`."""

import json
import math
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from eval import cli_eval
from eval.cli_eval import EvalConfig
from reagent.tasksets.loaders import load_benchmark
from reagent.cli import main as reagent_main
from reagent.records import Judgment
from tests.scripted import ScriptedBackend, ScriptedServer
from tests.test_agent import solver


def served(reply, delay_s: float = 0.0) -> ScriptedServer:
    """The scripted server answering ``reply(body, n)``, where ``n`` counts earlier requests
    with the same first user message (the question), so a reply can depend on which
    attempt at a question this is."""
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def answer(body):
        question = next(m["content"] for m in body["messages"] if m["role"] == "user")
        with lock:
            n = calls[question]
            calls[question] += 1
        return reply(body, n)

    server = ScriptedServer(answer, delay_s=delay_s, model="scripted")
    server.calls = calls  # requests per question, for the tests to read
    return server

def gsm8k_golds(limit):
    return {t.question: t.answer for t in load_benchmark("gsm8k", limit=limit)}


def results(out):
    return json.loads((out / "results.json").read_text())


def record_ids(out):
    return [json.loads(line)["id"] for line in (out / "records.jsonl").read_text().splitlines()]


def test_eval_reports_exact_pass_at_k_against_a_scripted_server(tmp_path):
    golds = gsm8k_golds(6)
    questions = list(golds)
    # correct answers per question over its 3 attempts: 3, 3, 1 (first), 2 (first two), 0, 0
    correct_calls = [3, 3, 1, 2, 0, 0]

    def reply(body, n):
        q = body["messages"][1]["content"]
        gold = int(golds[q])
        ok = n < correct_calls[questions.index(q)]
        return f"Let me think. The answer is \\boxed{{{gold if ok else gold + 1}}}."

    out = tmp_path / "run"
    argv = [
        "eval",
        "--benchmark",
        "gsm8k",
        "--limit",
        "6",
        "--k",
        "3",
        "--out",
        str(out),
        "--concurrency",
        "2",
        "--max-turns",
        "2",
    ]
    with served(reply) as server:
        assert reagent_main([*argv, "--base-url", server.url]) == 0
        calls = sum(server.calls.values())
        m = results(out)["benchmarks"]["gsm8k"]
        assert (m["questions"], m["attempts"], m["k"]) == (6, 18, 3)
        assert m["pass@1"] == pytest.approx(9 / 18)  # (3+3+1+2+0+0) / 18
        # pass@2 = mean over questions of 1 - C(n-c,2)/C(3,2): 1, 1, 1-1/3, 1, 0, 0
        assert m["pass@2"] == pytest.approx((1 + 1 + 2 / 3 + 1) / 6)
        assert m["pass@3"] == pytest.approx(4 / 6)
        # attempt runs score 4/6, 3/6, 2/6: stderr = std(1/6) / sqrt(3)
        assert m["pass@1_stderr"] == pytest.approx(1 / 6 / math.sqrt(3))
        q_means = [1, 1, 1 / 3, 2 / 3, 0, 0]
        var = sum((x - 0.5) ** 2 for x in q_means) / 5
        assert m["pass@1_stderr_questions"] == pytest.approx(math.sqrt(var / 6))
        assert sorted(record_ids(out)) == sorted(
            f"gsm8k-{i}#{a}" for i in range(6) for a in range(3)
        )
        rec = json.loads((out / "records.jsonl").read_text().splitlines()[0])
        assert {"trajectory", "answer", "verdict", "score", "attempt"} <= set(rec)
        assert rec["trajectory"]["messages"][-1]["role"] == "assistant"
        md = (out / "results.md").read_text()
        assert "| gsm8k | 6 | 3 | 0.500 ± 0.096" in md and "pass@3" in md
        # A re-run finds everything done: no request is made and the numbers stay.
        assert reagent_main([*argv, "--base-url", server.url]) == 0
        assert sum(server.calls.values()) == calls
        assert results(out)["benchmarks"]["gsm8k"]["pass@1"] == pytest.approx(0.5)


@pytest.mark.slow
def test_eval_resumes_after_sigkill(tmp_path):
    golds = gsm8k_golds(8)
    order = list(golds)

    def reply(body, n):  # even questions right, odd ones wrong, whatever the attempt
        q = body["messages"][1]["content"]
        return f"\\boxed{{{int(golds[q]) + order.index(q) % 2}}}"

    out = tmp_path / "run"
    with served(reply, delay_s=0.3) as server:
        cmd = [
            sys.executable,
            "-m",
            "reagent",
            "eval",
            "--benchmark",
            "gsm8k",
            "--limit",
            "8",
            "--k",
            "2",
            "--out",
            str(out),
            "--base-url",
            server.url,
            "--batch-size",
            "1",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and (
            not (out / "records.jsonl").exists() or len(record_ids(out)) < 3
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 3 <= len(record_ids(out)) < 16, "the kill should land mid-run"
        done = subprocess.run(cmd, check=False, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    ids = record_ids(out)
    assert len(ids) == 16 and set(ids) == {f"gsm8k-{i}#{a}" for i in range(8) for a in range(2)}
    m = results(out)["benchmarks"]["gsm8k"]
    assert m["pass@1"] == pytest.approx(0.5) and m["pass@2"] == pytest.approx(0.5)


def test_eval_with_a_tiny_local_model_on_cpu(tiny_model_dir, tmp_path):
    out = tmp_path / "tiny"
    code = reagent_main(
        [
            "eval",
            "--benchmark",
            "gsm8k",
            "--limit",
            "10",
            "--k",
            "2",
            "--model",
            str(tiny_model_dir),
            "--device",
            "cpu",
            "--out",
            str(out),
            "--max-turns",
            "1",
            "--max-new-tokens",
            "8",
            "--max-tokens",
            "8",
            "--temperature",
            "1.0",
        ]
    )
    assert code == 0
    m = results(out)["benchmarks"]["gsm8k"]
    assert (m["questions"], m["attempts"], m["k"]) == (10, 20, 2)
    assert 0.0 <= m["pass@1"] <= m["pass@2"] <= 1.0
    for line in (out / "records.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert rec["verdict"] in ("correct", "incorrect") and "token_ids" not in rec["trajectory"]


@pytest.fixture
def scripted_toy(monkeypatch, tiny_tokenizer):
    """`reagent eval` with the policy replaced by a scripted token backend."""

    def use(script):
        monkeypatch.setattr(
            cli_eval, "make_policy_backend", lambda c: ScriptedBackend(tiny_tokenizer, script)
        )

    return use


class RuleJudge:
    """Scores 1.0 when the attempt's boxed answer is the ledger's true answer (peeks)."""

    model = "rule-judge"

    def __init__(self, critique="- Look up every account before answering."):
        self.critique = critique
        self.seen = 0

    def score(self, trajs):
        self.seen += len(trajs)
        return [
            Judgment(
                analysis="",
                critique=self.critique,
                status="ok",
                score=float((t.outcome or 0.0) >= 1.0),
            )
            for t in trajs
        ]


def toy_config(tmp_path, **kw):
    return EvalConfig(
        benchmark="toy",
        split="heldout",
        limit=kw.pop("limit", 4),
        model="scripted",
        out=str(tmp_path / kw.pop("name", "toy")),
        max_turns=4,
        max_tokens=2000,
        **kw,
    )


def test_toy_benchmark_plain_and_reagent_c(scripted_toy, monkeypatch, tmp_path):
    scripted_toy(solver)
    assert cli_eval.run(toy_config(tmp_path, k=2)) == 0
    m = results(tmp_path / "toy")["benchmarks"]["toy"]
    assert (m["questions"], m["pass@1"], m["pass@2"]) == (4, 1.0, 1.0)

    def guess_then_solve(text, turn):  # guesses first; after a critique it solves properly
        if "reviewer read your attempt" not in text:
            return "\\boxed{0}"
        head, revision = text.split("reviewer read your attempt")
        return solver(head.split("<|im_start|>assistant")[0] + revision, turn - 1)

    scripted_toy(guess_then_solve)
    judge = RuleJudge()
    monkeypatch.setattr(cli_eval, "make_judge", lambda c, tasks=None: judge)
    assert cli_eval.run(toy_config(tmp_path, name="critique", critique=True, judge_model="j")) == 0
    m = results(tmp_path / "critique")["benchmarks"]["toy"]
    assert (m["initial_pass@1"], m["pass@1"], m["method"]) == (0.0, 1.0, "critique")
    rec = json.loads((tmp_path / "critique" / "records.jsonl").read_text().splitlines()[0])
    assert rec["initial"]["verdict"] == "incorrect" and rec["initial"]["judge_score"] == 0.0
    assert rec["trajectory"]["stage"] == "revised" and rec["trajectory"]["parent_id"] == rec["id"]
    assert any(judge.critique in (msg["content"] or "") for msg in rec["trajectory"]["messages"])


def test_reagent_c_threshold_keeps_right_answers_and_fixes_wrong_ones(scripted_toy, tmp_path):
    """With the oracle (rules) judge: revising every attempt lets a policy that breaks
    after any critique destroy its right answers; revising only below the threshold keeps
    them (keep rate 1) and still fixes the guesses (fix rate 1)."""

    def solve_then_break(text, turn):  # right at first; after a critique it answers 0
        return "\\boxed{0}" if "reviewer read your attempt" in text else solver(text, turn)

    def guess_or_solve(text, turn):  # guesses unless asked a difference
        head = text.split("reviewer read your attempt")
        if len(head) == 1 and "more money" not in text:
            return "\\boxed{0}"
        if len(head) == 1:
            return solver(text, turn)
        return solver(head[0].split("<|im_start|>assistant")[0] + head[1], turn - 1)

    scripted_toy(solve_then_break)
    assert cli_eval.run(toy_config(tmp_path, name="all", critique=True, judge_model="rules")) == 0
    m = results(tmp_path / "all")["benchmarks"]["toy"]
    assert (m["initial_pass@1"], m["pass@1"], m["keep_rate"], m["revised_frac"]) == (1.0, 0.0, 0.0, 1.0)
    assert m["fix_rate"] is None and m["process/answer_neutral_flaws"] == 0.0
    assert cli_eval.run(
        toy_config(tmp_path, name="below", critique=True, judge_model="rules", revise_below=1.0)
    ) == 0
    m = results(tmp_path / "below")["benchmarks"]["toy"]
    assert (m["pass@1"], m["keep_rate"], m["revised_frac"]) == (1.0, 1.0, 0.0)
    assert m["revise_skipped/above_threshold"] == 4
    rec = json.loads((tmp_path / "below" / "records.jsonl").read_text().splitlines()[0])
    assert rec["initial"]["revised"] is False and rec["trajectory"]["stage"] == "initial"
    assert rec["initial"]["judge_score"] == 1.0 and rec["process"]["tool_calls"] >= 1

    scripted_toy(guess_or_solve)
    assert cli_eval.run(
        toy_config(tmp_path, name="mixed", critique=True, judge_model="rules", revise_below=1.0, limit=8)
    ) == 0
    m = results(tmp_path / "mixed")["benchmarks"]["toy"]
    assert 0.0 < m["initial_pass@1"] < 1.0 and m["pass@1"] == 1.0
    assert (m["keep_rate"], m["fix_rate"]) == (1.0, 1.0)
    assert 0.0 < m["revised_frac"] < 1.0
    with pytest.raises(ValueError, match="revise_below"):
        toy_config(tmp_path, revise_below=0.5)
    with pytest.raises(ValueError, match="benchmark toy only"):
        EvalConfig(benchmark="gsm8k", model="m", out=str(tmp_path), critique=True, judge_model="rules")


def test_best_of_n_picks_the_judges_favourite(scripted_toy, monkeypatch, tmp_path):
    calls = Counter()

    def alternate(text, turn):  # every other sample of a question guesses
        question = text.split("<|im_start|>user")[1]
        if turn == 0:
            calls[question] += 1
        return solver(text, turn) if calls[question] % 2 == 0 else "\\boxed{0}"

    scripted_toy(alternate)
    monkeypatch.setattr(cli_eval, "make_judge", lambda c, tasks=None: RuleJudge())
    assert cli_eval.run(toy_config(tmp_path, best_of=3, judge_model="j")) == 0
    m = results(tmp_path / "toy")["benchmarks"]["toy"]
    assert m["pass@1"] == 1.0 and m["best_of"] == 3 and m["candidates_any_correct"] == 1.0
    recs = [
        json.loads(line) for line in (tmp_path / "toy" / "records.jsonl").read_text().splitlines()
    ]
    assert all(sum(c["env_outcome"] for c in r["candidates"]) < 3 for r in recs)  # a real choice
    assert all(r["candidates"][r["picked"]]["judge_score"] == 1.0 for r in recs)
    with pytest.raises(ValueError, match="--scorer prm needs --scorer-model"):
        toy_config(tmp_path, best_of=3, scorer="prm", judge_model="j")
    with pytest.raises(ValueError, match="--judge-model"):
        toy_config(tmp_path, critique=True)


def test_free_form_benchmark_uses_the_llm_checker(tmp_path):
    data = tmp_path / "ww.json"
    data.write_text(
        json.dumps(
            [
                {"id": "a", "Question": "Capital of France?", "answer": "Paris"},
                {"id": "b", "Question": "Capital of Peru?", "answer": "Lima"},
            ]
        )
    )
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"id": "1", "title": "France", "text": "Paris is the capital."}) + "\n"
    )

    checker_up = [False]

    def reply(body, n):
        if body["model"] == "checker":  # the answer checker: only Paris is right
            if not checker_up[0]:
                return "I cannot decide."  # no verdict line: could not judge
            return (
                "Same city.\nVerdict: CORRECT"
                if "Paris, France" in body["messages"][-1]["content"]
                else "Different.\nVerdict: INCORRECT"
            )
        return (
            "\\boxed{Paris, France}"
            if "France" in body["messages"][1]["content"]
            else "\\boxed{Quito}"
        )

    out = tmp_path / "ww"
    with served(reply) as server:
        argv = [
            "eval",
            "--benchmark",
            "webwalkerqa",
            "--data",
            str(data),
            "--out",
            str(out),
            "--base-url",
            server.url,
            "--corpus",
            str(corpus),
        ]
        assert reagent_main(argv) == 2  # free-form answers need a checker
        argv += ["--checker-base-url", server.url, "--checker-model", "checker"]
        assert reagent_main(argv) == 0
        m = results(out)["benchmarks"]["webwalkerqa"]
        assert (m["could_not_judge"], m["pass@1"]) == (2, 0.0)
        assert "could not be judged" in (out / "results.md").read_text()
        checker_up[0] = True  # a re-run asks the checker again, without new policy samples
        policy_calls = server.calls["Capital of France?"]
        assert reagent_main(argv) == 0
        assert server.calls["Capital of France?"] == policy_calls  # no new policy sample
    m = results(out)["benchmarks"]["webwalkerqa"]
    assert (m["could_not_judge"], m["pass@1"]) == (0, 0.5)  # EM would score "Paris, France" 0
    assert len(record_ids(out)) == 4  # two attempts, each re-recorded once


def test_rollout_from_a_benchmark_and_with_reagent_c(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "gsm.jsonl"
    base = [
        "--model",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--max-turns",
        "1",
        "--max-new-tokens",
        "4",
        "--max-tokens",
        "4",
    ]
    assert (
        reagent_main(["rollout", "--benchmark", "gsm8k", "--limit", "2", "--out", str(out), *base])
        == 0
    )
    assert [json.loads(x)["task_id"] for x in out.read_text().splitlines()] == [
        "gsm8k-0",
        "gsm8k-1",
    ]
    assert (
        reagent_main(["rollout", "--benchmark", "gsm8k", "--env", "toy", "--out", str(out), *base])
        == 2
    )

    traces = tmp_path / "c.jsonl"
    argv = [
        "rollout",
        "--env",
        "toy",
        "--limit",
        "2",
        "--out",
        str(traces),
        "--critique",
        "--judge-model",
        str(tiny_model_dir),
        "--judge-max-new-tokens",
        "8",
        *base,
    ]
    # An untrained judge fails on every attempt: a failed judgment gives no revision
    # (until issue 19 it gave one on "No specific flaws were named", which the test pinned).
    assert reagent_main(argv) == 0
    err = capsys.readouterr().err
    assert "judge gave no usable verdict for 2" in err and "those were not revised" in err
    trajs = {t["id"]: t for t in map(json.loads, traces.read_text().splitlines())}
    assert set(trajs) == {"toy-train-0#0", "toy-train-1#0"}
    assert trajs["toy-train-0#0"]["judge"].get("score") is None  # untrained
    assert reagent_main(argv) == 0  # a re-run does not retry them
    assert "2 already done" in capsys.readouterr().err

    # The oracle (rules) judge scores every attempt: each is revised on its critique.
    traces = tmp_path / "rules.jsonl"
    argv = [*argv[:argv.index("--out")], "--out", str(traces), "--critique", "--judge-model", "rules",
            *base]
    assert reagent_main(argv) == 0
    trajs = {t["id"]: t for t in map(json.loads, traces.read_text().splitlines())}
    assert set(trajs) == {
        "toy-train-0#0",
        "toy-train-0#0/rev",
        "toy-train-1#0",
        "toy-train-1#0/rev",
    }
    first, rev = trajs["toy-train-0#0"], trajs["toy-train-0#0/rev"]
    assert first["stage"] == "initial" and first["judge"]["model"] == "rules"
    assert first["judge"]["score"] < 1.0  # 4 tokens cannot solve a ledger task
    assert (rev["stage"], rev["parent_id"]) == ("revised", "toy-train-0#0")
    assert first["judge"]["critique"] in rev["messages"][len(first["messages"])]["content"]
    # Lose one revision: the re-run redoes only that one, reusing the written first attempt.
    lines = traces.read_text().splitlines()
    traces.write_text("\n".join(x for x in lines if '"toy-train-1#0/rev"' not in x) + "\n")
    capsys.readouterr()
    assert reagent_main(argv) == 0
    assert "1 to judge and revise (0 first attempts to run)" in capsys.readouterr().err
    ids = [json.loads(x)["id"] for x in traces.read_text().splitlines()]
    assert sorted(ids) == sorted(trajs) and len(ids) == 4


def test_do_not_publish_tasks_keep_their_text_out_of_records():
    from eval.harness import Attempt, BenchmarkSetup, attempt_record
    from reagent.records import Message, Task, Trajectory

    secret = "Which encrypted question is this?"
    task = Task(id="xbench-1", question=secret, answer="hidden", meta={"do_not_publish": True})
    traj = Trajectory(
        id="xbench-1#0",
        task_id=task.id,
        final_answer="a",
        messages=[
            Message(role="user", content=secret),
            Message(role="assistant", content="\\boxed{a}"),
        ],
    )
    setup = BenchmarkSetup("xbench", env=None, tasks=[task], checker="llm_judge")
    rec = attempt_record(setup, task, 0, Attempt(final=traj), 0.0)
    assert secret not in json.dumps(rec) and "hidden" not in json.dumps(rec)
    assert rec["trajectory"]["messages"][1]["content"] == "\\boxed{a}"
