"""The OpenAI-compatible server over real HTTP on 127.0.0.1, and the HTTP judge through it."""

import threading

import openai
import pytest

from reagent.jsonl import load_records, write_records
from reagent.records import Trajectory
from rrm.judge import HTTPJudge
from rrm.serve import ServerThread, cut_at_stop, load_app

from .conftest import toy_trajectories


@pytest.fixture(scope="module")
def server(judge_model_dir):
    app = load_app(judge_model_dir, "tiny-judge", max_batch=16, max_wait_ms=20,
                   default_max_tokens=16)
    with ServerThread(app) as srv:
        yield srv


def test_cut_at_stop():
    assert cut_at_stop("a</score>b</x>", ["</x>", "</score>"]) == ("a", "</score>")
    assert cut_at_stop("abc", ["</score>"]) == ("abc", None)


def test_models_health_and_errors(server):
    client = openai.OpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny-judge"]
    import httpx

    health = httpx.get(server.url.removesuffix("/v1") + "/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny-judge"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="context length"):
        client.chat.completions.create(model="tiny-judge", max_tokens=100_000,
                                       messages=[{"role": "user", "content": "x"}])


def test_concurrent_openai_clients_are_batched(server):
    client = openai.OpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
    prompts = [f"What is the balance of account {c}?" for c in "ABCDEFGH"]
    results = [None] * len(prompts)

    def ask(i):
        results[i] = client.chat.completions.create(
            model="tiny-judge", messages=[{"role": "user", "content": prompts[i]}],
            max_tokens=12, temperature=0)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results)
    for r in results:
        choice = r.choices[0]
        assert choice.finish_reason in ("stop", "length") and choice.message.role == "assistant"
        assert r.usage.prompt_tokens > 0
        assert r.usage.completion_tokens <= 12
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # Greedy decoding is deterministic and batching must not change it.
    again = client.chat.completions.create(
        model="tiny-judge", messages=[{"role": "user", "content": prompts[3]}], max_tokens=12,
        temperature=0)
    assert again.choices[0].message.content == results[3].choices[0].message.content
    import httpx

    health = httpx.get(server.url.removesuffix("/v1") + "/health").json()
    assert health["max_batch"] > 1, health  # concurrent requests shared a batch


def test_requests_differing_in_max_tokens_share_a_batch_with_their_own_limits(server):
    import httpx

    client = openai.OpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
    limits = [3, 5, 8, 12]
    results = [None] * len(limits)
    before = httpx.get(server.url.removesuffix("/v1") + "/health").json()

    def ask(i, out):
        out[i] = client.chat.completions.create(
            model="tiny-judge", messages=[{"role": "user", "content": f"Balance of {'ABCD'[i]}?"}],
            max_tokens=limits[i], temperature=0)

    threads = [threading.Thread(target=ask, args=(i, results)) for i in range(len(limits))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    after = httpx.get(server.url.removesuffix("/v1") + "/health").json()
    assert after["batches"] - before["batches"] < len(limits)  # some of them were batched together
    for i, r in enumerate(results):
        assert r.usage.completion_tokens <= limits[i]
        alone = [None] * len(limits)
        ask(i, alone)
        assert alone[i].choices[0].message.content == r.choices[0].message.content


def test_stream_and_n(server):
    client = openai.OpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
    r = client.chat.completions.create(model="tiny-judge", n=3, temperature=1.0, seed=1,
                                       messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert [c.index for c in r.choices] == [0, 1, 2]
    chunks = list(client.chat.completions.create(
        model="tiny-judge", messages=[{"role": "user", "content": "hi"}], max_tokens=5,
        temperature=0, stream=True))
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_http_judge_scores_a_trajectory_file(server, tmp_path):
    from rrm.cli_judge import JudgeConfig, run

    traces = tmp_path / "traces.jsonl"
    write_records(traces, toy_trajectories(3))
    out = tmp_path / "judged.jsonl"
    # An untrained model writes no valid verdict: every item must come back scored None
    # with a status (outcome_only keeps them in the file), never a silent 0.
    config = JudgeConfig(base_url=server.url, traces=str(traces), out=str(out),
                         max_new_tokens=8, retry_max_new_tokens=12, batch_size=4,
                         on_failure="outcome_only")
    assert run(config) == 0
    judged = load_records(out, Trajectory)
    assert [t.id for t in judged] == [t.id for t in load_records(traces, Trajectory)]
    for t in judged:
        assert t.judge.model == "tiny-judge"
        assert t.judge.status in ("truncated", "missing_score", "unparseable_score",
                                  "missing_blocks", "ok", "out_of_range")
        if t.judge.status == "truncated":
            # retried only when it had finished its analysis; else cut as a runaway
            assert t.judge.score is None
            assert t.judge.extra.get("retried") == "truncated" or t.judge.extra["runaway"]
    # Resume: nothing left to do, nothing written twice.
    assert run(config) == 0
    assert len(load_records(out, Trajectory)) == len(judged)


def test_http_judge_on_a_dead_server_fails_loudly(tmp_path):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    judge = HTTPJudge(f"http://127.0.0.1:{port}/v1", "judge", max_retries=2, backoff_s=0.01,
                      timeout=2)
    js = judge.score(toy_trajectories(1))
    assert all(j.status == "failed" and j.score is None for j in js)
    assert "Connection" in js[0].extra["error"]
    assert judge.stats["failed"] == 2
    judge.close()


def test_http_and_local_judges_agree_on_the_same_model(server, judge_model_dir):
    from rrm.judge import LocalJudge

    trajs = toy_trajectories(2)
    local = LocalJudge(judge_model_dir, max_new_tokens=10, retry_max_new_tokens=10).score(trajs)
    remote = HTTPJudge(server.url, max_new_tokens=10, retry_max_new_tokens=10).score(trajs)
    assert [(j.status, j.extra.get("raw")) for j in local] == [
        (j.status, j.extra.get("raw")) for j in remote]
