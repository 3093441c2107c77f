"""Reading every record file the project writes into viewer items: kinds, pairing, step values, bad lines."""

import json
import shutil

from reagent.view.items import load_items


def by(items, **kw):
    return [it for it in items if all(it.get(k) == v for k, v in kw.items())]


def test_every_kind_of_real_file_is_read(real_files):
    items, report = load_items(list(real_files.values()))
    assert report.skipped == [] and report.read == len(items) == 12 + 12 + 4 + 2 * 2 + 1
    kinds = {k: len(by(items, kind=k)) for k in ("trajectory", "judge_example", "eval")}
    assert kinds == {"trajectory": 12 + 4 + 1, "judge_example": 12, "eval": 4}
    demo_lines = [json.loads(x) for x in real_files["demos"].read_text().splitlines()]
    demo = next(d for d in demo_lines if any(m.get("tool_calls") for m in d["messages"]))
    item = by(items, id=demo["id"], kind="trajectory")[0]
    call = next(c for m in item["messages"] for c in m.get("tool_calls", []))
    raw = next(c for m in demo["messages"] for c in m.get("tool_calls") or [])["function"]
    assert call["name"] == raw["name"]
    assert json.loads(call["arguments"]) == json.loads(raw["arguments"]) and "\n  " in call["arguments"]  # pretty
    assert item["tool_calls"] == sum(len(m.get("tool_calls") or []) for m in demo["messages"])
    assert item["question"] == next(m["content"] for m in demo["messages"] if m["role"] == "user")
    assert any(m["role"] == "tool" for m in item["messages"]) and item["outcome"] == demo["outcome"]
    # A judge example shows the rendered text the judge read, with the teacher's verdict.
    ann = json.loads(real_files["annotations"].read_text().splitlines()[0])
    ex = by(items, kind="judge_example", id=ann["trajectory_id"])[0]
    assert ex["messages"][0]["content"] == ann["trajectory"]
    assert (ex["judge"]["score"], ex["judge"]["critique"], ex["outcome"]) == (ann["score"], ann["critique"],
                                                                              ann["outcome"])


def test_initial_and_revised_attempts_are_paired(real_files, tmp_path):
    items, _ = load_items([real_files["traces"], real_files["eval"]])
    for task in ("toy-train-0", "toy-train-1"):
        first, rev = by(items, id=f"{task}#0")[0], by(items, id=f"{task}#0/rev")[0]
        assert (first["pair"], rev["pair"]) == (rev["idx"], first["idx"])
        assert (first["stage"], rev["stage"]) == ("initial", "revised")
        assert first["judge"]["status"] == "ok" and first["judge"]["score"] < 1.0  # 6 tokens cannot solve it
    records = [json.loads(x) for x in real_files["eval"].read_text().splitlines()]
    for rec in records:
        final = by(items, kind="eval", id=rec["trajectory"]["id"])[0]
        first = items[final["pair"]]
        assert first["id"] == rec["initial"]["trajectory"]["id"] and first["pair"] == final["idx"]
        assert (final["outcome"], first["outcome"]) == (rec["score"], rec["initial"]["score"])
        assert final["reference"] == rec["reference"] and final["question"] == rec["question"]
        assert first["judge"]["status"] == rec["initial"]["judge_status"]
    # The same ids in two files (two eval runs viewed together): each revision pairs inside its own file.
    other = tmp_path / "other" / "records.jsonl"
    other.parent.mkdir()
    shutil.copy(real_files["eval"], other)
    items, _ = load_items([real_files["eval"], other])
    assert all(items[it["pair"]]["file"] == it["file"] for it in items) and len(items) == 8


def test_step_values_sit_beside_the_assistant_steps(real_files, tmp_path):
    labels = [json.loads(x) for x in real_files["labels"].read_text().splitlines()]
    items, report = load_items([real_files["demos"], real_files["labels"]])
    embedded = by(items, src=f"{real_files['labels']}:1")[0]
    assert embedded["steps"] == labels[0]["steps"] and embedded["step_method"] == "td_gae"
    for lab in labels[1:]:
        joined = by(items, id=lab["trajectory_id"], file=str(real_files["demos"]))[0]
        assert joined["steps"] == lab["steps"] and len(joined["steps"]) == joined["turns"]
    # A trajectory carrying per-step numbers itself, and a label whose trajectory is absent.
    odd = tmp_path / "odd.jsonl"
    traj = json.loads(real_files["demos"].read_text().splitlines()[5])
    odd.write_text(json.dumps({**traj, "id": "own", "step_scores": [0.5, -0.25]}) + "\n"
                   + json.dumps({"trajectory_id": "nowhere", "method": "mc", "steps": [{"q": 1.0}]}) + "\n")
    items, report = load_items([odd])
    assert items[0]["steps"] == [{"value": 0.5}, {"value": -0.25}]
    assert report.unmatched_steps == 1 and report.skipped == [f"{odd}:2: step labels for 'nowhere', "
                                                              "a trajectory not in the given files"]


def test_bad_lines_are_skipped_with_file_and_line_and_bytes_replaced(real_files, tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = real_files["demos"].read_bytes().splitlines()[0]
    broken = json.dumps({"id": "x", "task_id": "t", "messages": [{"role": "user", "content": "Q-MARK"}]}).encode()
    bad.write_bytes(b"\n".join([good, b"{not json", b"[1, 2]", b"", broken.replace(b"Q-MARK", b"Q\xff\xfeK"),
                                b'{"hello": 1}']) + b"\n")
    items, report = load_items([bad])
    assert [it["id"] for it in items] == [json.loads(good)["id"], "x"]
    assert items[1]["question"] == "Q\ufffd\ufffdK"
    assert [s.split(": ")[0] for s in report.skipped] == [f"{bad}:2", f"{bad}:3", f"{bad}:6"]
    assert "malformed JSON" in report.skipped[0] and "not a trajectory" in report.skipped[1]
    assert "skipped 3 bad lines" in report.summary()


def test_judged_files_lend_their_verdicts_by_id(real_files, tmp_path):
    judged = tmp_path / "judged.jsonl"
    lines = [json.loads(x) for x in real_files["traces"].read_text().splitlines()]
    judged.write_text("".join(json.dumps({**t, "judge": {"analysis": "A", "critique": "C", "score": 0.9,
                                                         "status": "ok"}}) + "\n" for t in lines[:2]))
    items, report = load_items([real_files["traces"]], judged=[judged])
    assert report.judged_attached == 2
    assert [it["judge"]["score"] for it in items[:2]] == [0.9, 0.9] and (items[2]["judge"] or {}).get("score") is None


def test_a_step_that_names_its_message_is_placed_there(real_files, tmp_path):
    traj = json.loads(real_files["demos"].read_text().splitlines()[0])
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"trajectory_id": traj["id"], "method": "mc",
                                  "steps": [{"q": 0.5, "message_index": 1}, {"q": 1.0, "message_index": 3}]}) + "\n")
    items, report = load_items([real_files["demos"], labels])
    item = by(items, id=traj["id"])[0]
    assert item["steps"] == [{"q": 0.5, "@message": 1}, {"q": 1.0, "@message": 3}] and report.skipped == []
    from reagent.view.page import step_scale

    assert step_scale(items) == {"q": 1.0}  # positions are not values
