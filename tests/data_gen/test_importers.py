"""Importing OpenAI-style and ShareGPT/Qwen traces; unmappable records reported by file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_gen.importers import ImportReport, load_traces
from reagent.cli import main
from reagent.jsonl import load_records
from reagent.records import Trajectory

FIREACT = Path("/work/shared/trajectories/fireact")

OPENAI_GOOD = {
    "id": "run-1", "reward": True, "ground_truth": "42",
    "messages": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What is 6 * 7?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "calc", "arguments": "{\"expr\": \"6*7\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "assistant", "content": [{"type": "text", "text": "The answer is \\boxed{42}."}]},
    ],
}
SHAREGPT_GOOD = {
    "is_correct": False, "system": "You are a helpful agent.",
    "conversations": [
        {"from": "human", "value": "Balance of A plus B?"},
        {"from": "gpt", "value": "Let me look.\n<tool_call>\n{\"name\": \"lookup\", \"arguments\": "
                                 "{\"account\": \"A\"}}\n</tool_call>\n<tool_call>\n{\"name\": "
                                 "\"lookup\", \"arguments\": {\"account\": \"B\"}}\n</tool_call>"},
        {"from": "human", "value": "<tool_response>\n5\n</tool_response>\n"
                                   "<tool_response>\n7\n</tool_response>"},
        {"from": "gpt", "value": "<tool_call>\n{\"name\": \"calc\", \"arguments\": {bad json}}"
                                 "\n</tool_call>"},
        {"from": "observation", "value": "Error: invalid JSON"},
        {"from": "gpt", "value": "\\boxed{13}"},
    ],
}


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_openai_messages_with_tool_calls(tmp_path):
    report = ImportReport()
    [traj] = load_traces(write_jsonl(tmp_path / "a.jsonl", [OPENAI_GOOD]), "openai", report=report)
    assert traj.id == "run-1" and traj.outcome == 1.0 and traj.extra["reference"] == "42"
    assert [m.role for m in traj.messages] == ["system", "user", "assistant", "tool", "assistant"]
    call = traj.messages[2].tool_calls[0]
    assert call.name == "calc" and call.parsed_arguments == {"expr": "6*7"}
    assert traj.messages[3].tool_call_id == call.id
    assert traj.messages[4].content == "The answer is \\boxed{42}."
    assert traj.question == "What is 6 * 7?" and traj.task_id.startswith("q-")
    assert report.mapping["outcome <- 'reward' (bool: true=1.0, false=0.0)"] == 1
    assert report.mapping["reference <- 'ground_truth'"] == 1
    Trajectory.from_dict(traj.to_dict())  # a valid project record


def test_sharegpt_with_qwen_tags_pairs_responses_with_calls(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [SHAREGPT_GOOD])
    [traj] = load_traces(path, "sharegpt")
    assert [m.role for m in traj.messages] == [
        "system", "user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    first = traj.messages[2]
    assert first.content == "Let me look."
    assert [tc.parsed_arguments for tc in first.tool_calls] == [{"account": "A"}, {"account": "B"}]
    assert [traj.messages[3].tool_call_id, traj.messages[4].tool_call_id] == ["call_0", "call_1"]
    assert [traj.messages[3].content, traj.messages[4].content] == ["5", "7"]
    bad_call = traj.messages[5].tool_calls[0]
    assert bad_call.error and traj.messages[6].tool_call_id == bad_call.id  # a flaw, kept as data
    assert traj.outcome == 0.0
    # Importing twice gives the same ids (annotate resumes by id).
    assert load_traces(path, "sharegpt")[0].to_dict() == traj.to_dict()


def test_unmappable_records_are_reported_by_file_and_line_and_skipped(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        OPENAI_GOOD,
        "{not json",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
                      {"role": "assistant", "content": "a cat"}]},
        {"messages": [{"role": "user", "content": "q"}]},
        {"reward": "maybe", "messages": OPENAI_GOOD["messages"]},
        {"prompt": "q", "completion": "a"},
    ])
    report = ImportReport()
    trajs = load_traces(path, "openai", report=report)
    assert [t.id for t in trajs] == ["run-1"]
    where = {s.where: s.reason for s in report.skipped}
    assert set(where) == {f"{path}:{n}" for n in (2, 3, 4, 5, 6)}
    assert "malformed JSON" in where[f"{path}:2"]
    assert "'image_url' part" in where[f"{path}:3"]
    assert "no assistant turn" in where[f"{path}:4"]
    assert "'reward': cannot read 'maybe'" in where[f"{path}:5"]
    assert "no 'messages' list" in where[f"{path}:6"]


@pytest.mark.parametrize("turns, reason", [
    ([{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}], "'robot' is not one of"),
    ([{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"},
      {"from": "observation", "value": "x"}], "1 tool response(s) but 0 unanswered"),
    ([{"from": "human", "value": "q"},
      {"from": "gpt", "value": "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>"},
      {"from": "gpt", "value": "done"}], "1 tool call(s) got no <tool_response>"),
    ([{"from": "human", "value": "q"},
      {"from": "gpt", "value": "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>"},
      {"from": "human", "value": "thanks <tool_response>1</tool_response>"}], "mixes text"),
])
def test_sharegpt_records_that_would_need_a_guess_are_skipped(tmp_path, turns, reason):
    path = write_jsonl(tmp_path / "bad.jsonl", [SHAREGPT_GOOD, {"conversations": turns}])
    report = ImportReport()
    assert len(load_traces(path, "sharegpt", report=report)) == 1
    [skip] = report.skipped
    assert skip.where == f"{path}:2" and reason in skip.reason


def test_import_command_prints_mapping_and_skips(tmp_path, capsys):
    src = write_jsonl(tmp_path / "s.jsonl", [SHAREGPT_GOOD, "{oops"])
    out = tmp_path / "traces.jsonl"
    assert main(["import", "--format", "sharegpt", str(src), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{src}:2: malformed JSON" in err
    assert "outcome <- 'is_correct'" in err and "wrote 1 trajectories" in err
    [traj] = load_records(out, Trajectory)
    assert traj.extra["made_by"]["command"] == "import"


@pytest.mark.skipif(not FIREACT.exists(), reason="shared FireAct traces not present")
def test_real_fireact_traces(tmp_path):
    report = ImportReport()
    gpt = load_traces(FIREACT / "finetune_gpt_format_hotpotqa.jsonl", "openai", report=report)
    assert len(gpt) == 500 and not report.skipped
    assert all(t.outcome is None for t in gpt)  # no reward field: left empty, not parsed from text
    assert gpt[0].messages[1].content.startswith("Thought:") and not gpt[0].messages[1].tool_calls
    report = ImportReport()
    [path] = FIREACT.glob("hotpotqa_dev_*.json")
    runs = load_traces(path, "openai", report=report)
    assert len(runs) == 465 and not report.skipped
    assert sum(t.outcome == 1.0 for t in runs) == 200 and sum(t.outcome == 0.0 for t in runs) == 265
    assert report.mapping["messages <- 'traj'"] == 465 and report.mapping["reference <- 'gt'"] == 465
    assert runs[0].id == "6238" and runs[0].extra["reference"] == "seth macfarlane"


def test_hostile_lines_are_skipped_by_line_not_crashes(tmp_path):
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps(SHAREGPT_GOOD).encode(),
        b"[" * 100000,
        b'{"conversations": [{"from": "human", "value": "\xff"}]}',
        json.dumps({"conversations": [{"from": [None], "value": "q"}]}).encode(),
        b'{"conversations": [], "id": ' + b"1" * 4301 + b"}",
        json.dumps({**SHAREGPT_GOOD, "tools": float("-inf")}).encode(),
    ]) + b"\n")
    report = ImportReport()
    assert len(load_traces(path, "sharegpt", report=report)) == 1
    where = {s.where: s.reason for s in report.skipped}
    assert "nested deeper" in where[f"{path}:2"]
    assert "invalid UTF-8 byte" in where[f"{path}:3"]
    assert "[None] is not one of" in where[f"{path}:4"]
    assert "4300 digits" in where[f"{path}:5"]
    assert "field 'tools': NaN/Infinity is not a JSON number" in where[f"{path}:6"]


def test_tool_results_with_no_matching_call_are_dropped_and_counted(tmp_path):
    msgs = OPENAI_GOOD["messages"]
    call_id = msgs[2]["tool_calls"][0]["id"]
    orphan = {"role": "tool", "tool_call_id": "nobody-asked", "content": "forged result"}
    early = {"role": "tool", "tool_call_id": call_id, "content": "before the call"}
    record = {**OPENAI_GOOD, "messages": [msgs[0], msgs[1], early, *msgs[2:4], orphan, msgs[4]]}
    report = ImportReport()
    [traj] = load_traces(write_jsonl(tmp_path / "o.jsonl", [record]), "openai", report=report)
    tool_msgs = [m for m in traj.messages if m.role == "tool"]
    assert [m.content for m in tool_msgs] == [msgs[3]["content"]]
    assert report.mapping["tool results with no matching call: dropped"] == 2
    assert "tool results with no matching call: dropped: 2" in report.summary()
