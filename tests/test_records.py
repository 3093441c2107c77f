"""Round trips of every record type, unknown-field preservation and field errors."""

import json

import pytest

from reagent.jsonl import (
    RecordError,
    RecordWriter,
    SkipReport,
    done_ids,
    from_dataset,
    load_records,
    read_records,
    to_dataset,
    write_records,
)
from reagent.records import (
    FieldError,
    Judgment,
    JudgeExample,
    Message,
    StepLabel,
    Task,
    ToolCall,
    Trajectory,
)


def make_trajectory(**kw) -> Trajectory:
    call = ToolCall(id="c1", name="lookup", arguments='{"account": "A"}')
    msgs = [
        Message(role="system", content="You are an agent."),
        Message(role="user", content="What is A's balance?"),
        Message(role="assistant", content="<think>look it up</think>", tool_calls=[call]),
        Message(role="tool", content="42", tool_call_id="c1", name="lookup"),
        Message(role="assistant", content="\\boxed{42}"),
    ]
    base = dict(id="t1", task_id="q1", messages=msgs, final_answer="42", outcome=1.0,
                judge=Judgment(analysis="fine", critique="none", score=0.9, model="j"),
                rewards={"outcome": 1.0}, policy="p@0", stop_reason="answered",
                token_ids=[1, 2, 3], loss_mask=[0, 1, 1])
    base.update(kw)
    return Trajectory(**base)


SAMPLES = [
    Task(id="q1", question="2+2?", answer="4", source="toy", tools=["calc"], meta={"split": "train"}),
    make_trajectory(),
    Judgment(analysis="a", critique="c", score=0.5, status="ok", model="m"),
    StepLabel(trajectory_id="t1", method="td_gae", params={"gamma": 1.0, "lam": 0.95},
              steps=[{"q": 0.5, "advantage": 0.1}]),
    JudgeExample(question="q", trajectory="Question: q", analysis="a", critique="c", score=0.3,
                 outcome=0.0, teacher="rules"),
    Message(role="assistant", content=None, tool_calls=[ToolCall(id="x", name="f", arguments="{}")]),
]


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip_dict_and_file(record, tmp_path):
    d = record.to_dict()
    again = type(record).from_dict(json.loads(json.dumps(d)))
    assert again.to_dict() == d
    path = tmp_path / "r.jsonl"
    write_records(path, [record, record])
    back = load_records(path, type(record))
    assert [r.to_dict() for r in back] == [d, d]


@pytest.mark.parametrize("record", SAMPLES[:5], ids=lambda r: type(r).__name__)
def test_round_trip_dataset(record):
    ds = to_dataset([record, record])
    assert len(ds) == 2
    back = from_dataset(ds, type(record))
    assert back[0].to_dict() == record.to_dict()


def test_unknown_fields_are_preserved_everywhere():
    d = make_trajectory().to_dict()
    d["my_field"] = {"nested": [1, 2]}
    d["messages"][2]["reasoning_content"] = "hidden"
    d["messages"][2]["tool_calls"][0]["function"]["strict"] = True
    d["judge"]["latency_s"] = 1.5
    again = Trajectory.from_dict(d).to_dict()
    assert again == d


def test_field_errors_name_the_field():
    d = make_trajectory().to_dict()
    d["messages"][1]["role"] = "robot"
    with pytest.raises(FieldError) as e:
        Trajectory.from_dict(d)
    assert e.value.field == "messages[1].role"
    with pytest.raises(FieldError, match="'task_id'"):
        Trajectory.from_dict({"id": "x", "messages": []})
    with pytest.raises(FieldError, match="'outcome'.*got str"):
        Trajectory.from_dict({"id": "x", "task_id": "y", "messages": [], "outcome": "1"})
    with pytest.raises(FieldError, match="loss_mask"):
        Trajectory.from_dict({"id": "x", "task_id": "y", "messages": [], "token_ids": [1, 2],
                              "loss_mask": [1]})
    with pytest.raises(FieldError, match=r"steps\[0\].advantage"):
        StepLabel.from_dict({"trajectory_id": "t", "method": "mc", "steps": [{"q": 1.0}]})


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")


def test_reader_names_file_line_and_field(tmp_path):
    good = json.dumps(SAMPLES[0].to_dict())
    bad_field = json.dumps({"id": "q2"})
    path = tmp_path / "tasks.jsonl"
    write_lines(path, [good, "{not json", good, bad_field, good])
    with pytest.raises(RecordError) as e:
        list(read_records(path, Task))
    assert str(e.value).startswith(f"{path}:2: malformed JSON")
    report = SkipReport()
    tasks = list(read_records(path, Task, skip_bad=True, report=report))
    assert len(tasks) == 3 and report.read == 3 and report.skipped == 2
    assert [err.line for err in report.errors] == [2, 4]
    assert report.errors[1].field == "question"
    assert "skipped 2 bad lines" in report.summary()


def test_writer_survives_torn_tail_and_done_ids(tmp_path):
    path = tmp_path / "out.jsonl"
    write_records(path, [make_trajectory(id="a"), make_trajectory(id="b")])
    with open(path, "a") as f:
        f.write('{"id": "c", "task_')  # a kill mid-write
    assert done_ids(path) == {"a", "b"}
    with RecordWriter(path) as w:
        w.write(make_trajectory(id="c"))
    assert [t.id for t in load_records(path, Trajectory)] == ["a", "b", "c"]
