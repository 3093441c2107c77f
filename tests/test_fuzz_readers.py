"""Seeded fuzz of every reader of untrusted text: 0 uncaught exceptions.

Readers of files and model output (``validate``, ``import``, the eval loaders, the judge
parser, tool-call parsing) face whatever a user's data or a model produces. Each input
here is a good record with one hostile mutation (a value swapped for NaN, a huge int, a
wrong type, deep nesting, a lone surrogate, a special token...) or with hostile bytes
spliced into its line. What must hold: lenient readers skip and count bad lines (never
raise), strict ones raise only ``RecordError`` naming ``FILE:LINE``, the parsers never
raise, and whatever is accepted can be written back as UTF-8 JSON.
"""

from __future__ import annotations

import json
import random

import pytest

from data_gen.importers import ImportReport, load_traces
from reagent.tasksets.loaders import load_benchmark
from reagent.cli.validate import check_file
from reagent.jsonl import RecordError, non_finite_path
from reagent.toolcalls import parse_tool_calls, strip_tool_calls
from rrm.parse import STATUSES, parse_judgment
from tests.test_records import make_trajectory

SEED = 21
HOSTILE_VALUES = [None, True, 0, -1, 1e308, -1e308, float("nan"), float("inf"), float("-inf"),
                  10 ** 40, "", "x" * 3000, "\ud800", [], {}, [None], {"a": [[[]]]}, [[[[[[1]]]]]],
                  "<|im_end|>\n<|im_start|>user", "٠.٧", "<score>0.5</score>", "\x00\x1b[2J"]
HOSTILE_BYTES = [b"[" * 5000, b"{" * 300, b"\xff\xfe", b"1" * 4400, b"NaN", b"-Infinity",
                 b'"\\ud800"', b"\x00", b'{"a":', b"]", b"\\", b'"', b"\xed\xa0\x80", b"1e999"]

OPENAI = {"id": "r1", "reward": 1, "ground_truth": "42", "messages": [
    {"role": "system", "content": "tools"}, {"role": "user", "content": "6*7?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{\"e\": 1}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "42"},
    {"role": "assistant", "content": [{"type": "text", "text": "\\boxed{42}"}]}]}
SHAREGPT = {"is_correct": False, "system": "s", "tools": "[]", "conversations": [
    {"from": "human", "value": "A+B?"},
    {"from": "gpt", "value": "<tool_call>\n{\"name\": \"lookup\", \"arguments\": {\"a\": \"A\"}}\n</tool_call>"},
    {"from": "observation", "value": "<tool_response>\n5\n</tool_response>"},
    {"from": "gpt", "value": "\\boxed{5}"}]}
TASKS = {
    "bamboogle": {"id": "1", "Question": "q?", "answer": ["a", "b"]},
    "gsm8k": {"question": "q?", "answer": "so\n#### 12"},
    "aime24": {"id": 3, "problem": "p", "answer": "7", "year": 2024},
    "gaia": {"task_id": "t", "Question": "q", "Final answer": "a", "Level": 1, "file_name": ""},
    "hotpotqa": {"_id": "h", "question": "q", "answer": "a", "supporting_facts": [["T", 0]],
                 "context": [["T", ["s1", " s2"]]]},
    "hotpotqa_ircot": {"question_id": "i", "question_text": "q", "contexts": [
        {"title": "T", "paragraph_text": "p", "is_supporting": True}],
        "answers_objects": [{"spans": ["x"], "number": "", "date": {"day": "", "month": "", "year": "1999"}}]},
    "musique": {"id": "m", "question": "q", "answer": "a", "answer_aliases": ["b"],
                "paragraphs": [{"title": "T", "paragraph_text": "p", "is_supporting": True}]},
}


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def mutate(obj, rng: random.Random):
    """A deep copy of ``obj`` with one hostile change at a random place."""
    obj = json.loads(json.dumps(obj))
    path = rng.choice([p for p in _paths(obj) if p])
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    kind = rng.random()
    if kind < 0.15 and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind < 0.25:
        parent[path[-1]] = [parent[path[-1]]]
    else:
        parent[path[-1]] = rng.choice(HOSTILE_VALUES)
    return obj


def hostile_line(seed: dict, rng: random.Random) -> bytes:
    """One line: a mutated record, or the good line with hostile bytes spliced in or cut."""
    if rng.random() < 0.6:
        return json.dumps(mutate(seed, rng), ensure_ascii=rng.random() < 0.5).encode(
            "utf-8", errors="surrogatepass")
    good = json.dumps(seed).encode()
    at = rng.randrange(len(good))
    if rng.random() < 0.2:
        return good[:at]
    return good[:at] + rng.choice(HOSTILE_BYTES) + good[at + rng.randrange(3):]


def _written_back(records) -> None:
    for r in records:
        r.to_json().encode("utf-8")  # accepted means writable...
        assert non_finite_path(r.to_dict()) is None  # ... as JSON other tools can read


def test_validate_never_raises(tmp_path):
    rng = random.Random(SEED)
    seeds = [make_trajectory().to_dict(), OPENAI, {"question": "q", "trajectory": "t", "score": 0.5}]
    lines = [hostile_line(rng.choice(seeds), rng) for _ in range(400)]
    lines = [x.replace(b"\n", b" ") for x in lines]
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    good, errors = check_file(str(path))
    assert good + len(errors) == sum(1 for x in lines if x.strip())
    assert all(str(e).startswith(f"{path}:{e.line}: ") and len(str(e)) < 1000 for e in errors)


@pytest.mark.parametrize("fmt, seed", [("openai", OPENAI), ("sharegpt", SHAREGPT),
                                       ("trajectory", make_trajectory().to_dict())])
def test_import_never_raises(tmp_path, fmt, seed):
    rng = random.Random(SEED)
    lines = [hostile_line(seed, rng).replace(b"\n", b" ") for _ in range(300)]
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = ImportReport()
    trajectories = load_traces(path, fmt, report=report)
    assert report.read == sum(1 for x in lines if x.strip())
    assert report.read == len(trajectories) + len(report.skipped) + len(report.duplicates)
    _written_back(trajectories)


def test_eval_loaders_raise_only_record_errors(tmp_path):
    rng = random.Random(SEED)
    outcomes = {"loaded": 0, "rejected": 0}
    for i in range(350):
        name = rng.choice(sorted(TASKS))
        path = tmp_path / f"{i}.jsonl"
        path.write_bytes(json.dumps(TASKS[name]).encode() + b"\n"
                         + hostile_line(TASKS[name], rng).replace(b"\n", b" ") + b"\n")
        try:
            _written_back(load_benchmark(name, path=path))
            outcomes["loaded"] += 1
        except RecordError as e:
            assert str(e).startswith(f"{path}:"), str(e)[:300]
            outcomes["rejected"] += 1
    assert min(outcomes.values()) > 20, outcomes  # the fuzz reaches both sides


FRAGMENTS = ["<think>", "</think>", "<critique>", "</critique>", "<score>", "</score>", "0.7",
             "٠.٧", "1e9", "-0", "nan", " ", "\n", "x" * 50, "<tool_call>", "</tool_call>",
             '{"name": "f", "arguments": {"a": 1}}', '{"name": "f", "arguments": "{\\"a\\": 1}"}',
             "[" * 2000, "1" * 4400, '"arguments": "' + "[" * 3000 + '"', "\ud800", "<|im_start|>"]


def test_judge_and_tool_call_parsers_never_raise():
    rng = random.Random(SEED)
    for _ in range(600):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(1, 12)))
        j = parse_judgment(text, finish_reason=rng.choice(["stop", "length"]))
        assert j.status in STATUSES
        assert (j.score is None) == (j.status not in ("ok", "out_of_range"))
        for call in parse_tool_calls(text):
            assert call.error or call.name
            call.parsed_arguments  # noqa: B018 - must not raise either
        strip_tool_calls(text)
    # A double-encoded arguments string holding deep nesting or a huge int.
    for inner in ("[" * 5000, "1" * 4400):
        [call] = parse_tool_calls('<tool_call>{"name": "f", "arguments": "%s"}</tool_call>' % inner)
        assert call.error and call.parsed_arguments == {}


def test_fuzz_covers_at_least_a_thousand_inputs():
    assert 400 + 3 * 300 + 350 + 600 >= 1000  # the counts above, kept in sight
