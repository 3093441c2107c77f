import builtins
import gzip
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from reagent.tasksets import loaders
from reagent.tasksets.loaders import BENCHMARKS, build_qa_corpus, load_benchmark, load_passages
from eval.metrics import CHECKERS
from reagent.jsonl import RecordError
from reagent.records import Task

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "benchmarks"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared benchmark folder {SHARED} is absent (see PROVENANCE.md)"
)

# Every file in ../shared/benchmarks with the loader that reads it and its record count
# as PROVENANCE.md states it.
SHARED_FILES = [
    ("gsm8k", "gsm8k/test.jsonl", 1319),
    ("math500", "math500/test.jsonl", 500),
    ("aime24", "aime/aime_2024.jsonl", 30),
    ("aime24_qwen", "aime/aime24_qwen.jsonl", 30),
    ("gaia", "gaia/validation_metadata_full.jsonl.gz", 165),
    ("gaia_text", "gaia/validation_text_only.jsonl.gz", 127),
    ("gaia_text103", "gaia/webthinker_gaia_dev_text103.json.gz", 103),
    ("webwalkerqa", "webwalkerqa/webwalkerqa_test_680.json", 680),
    ("hle", "hle/hle_text_subset_500_webthinker.json", 500),
    ("xbench", "xbench/DeepSearch-2505.csv", 100),
    ("xbench", "xbench/DeepSearch-2510.csv", 100),
    ("hotpotqa", "hotpotqa/hotpotqa_dev_distractor_200_migres.jsonl", 200),
    ("hotpotqa_ircot", "hotpotqa/hotpotqa_dev_500_ircot_format_contexts.jsonl", 500),
    ("hotpotqa_full", "hotpotqa/hotpotqa_dev_qa_only_7405.json", 7405),
    ("2wiki", "2wikimultihopqa/2wiki_dev_qa_only_12576.json", 12576),
    ("2wiki_sds500", "2wikimultihopqa/2wiki_dev_sample500_simpledeepsearcher.json", 500),
    ("musique", "musique/musique_ans_dev_200_migres.jsonl", 200),
    ("musique_full", "musique/musique_ans_dev_qa_only_2417.json", 2417),
    ("musique_sds500", "musique/musique_dev_sample500_simpledeepsearcher.json", 500),
    ("bamboogle", "bamboogle/bamboogle_test_125.json", 125),
    ("frames", "frames/frames_824_simpledeepsearcher.json", 824),
]
CORPUS_FILE = ("2wikimultihopqa/2wiki_hipporag_corpus_6119_passages.json", 6119)

SHIPPED_SHA256 = {
    "gsm8k/test.jsonl": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
    "math500/test.jsonl": "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132",
    "aime/aime_2024.jsonl": "89b48164001c48c87eda92bd4e7bdd384461a2f17086e3e895c0f9f226c80f1a",
    "aime/aime24_qwen.jsonl": "af2b8bd2aa911b6333ad0df32f3ca05c7ae8ed10f1731f4372c8ae26990bf7ac",
}


# ---------------------------------------------------------------- the shared files


@needs_shared
def test_every_shared_file_has_a_loader():
    on_disk = {str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.is_file()}
    on_disk.discard("PROVENANCE.md")
    covered = {rel for _, rel, _ in SHARED_FILES} | {CORPUS_FILE[0]}
    assert on_disk == covered


@needs_shared
@pytest.mark.parametrize("name, rel, count", SHARED_FILES, ids=[r for _, r, _ in SHARED_FILES])
def test_shared_file_loads_with_provenance_count(name, rel, count):
    tasks = load_benchmark(name, path=SHARED / rel)
    assert len(tasks) == count
    spec = BENCHMARKS[name]
    assert len({t.id for t in tasks}) == count  # ids are unique
    for t in tasks:
        assert isinstance(t, Task) and t.source == name
        assert isinstance(t.question, str) and t.question.strip()
        assert (
            isinstance(t.answer, str)
            and t.answer.strip()
            or (
                isinstance(t.answer, list)
                and t.answer
                and all(isinstance(a, str) for a in t.answer)
            )
        )
        assert t.tools == list(spec.tools) and t.meta["checker"] == spec.checker
    Task.from_dict(tasks[0].to_dict())  # the contract round-trips


@needs_shared
def test_default_locations_give_provenance_counts():
    for name, spec in BENCHMARKS.items():
        if name == "aime25":
            continue
        assert len(load_benchmark(name)) == spec.records, name


@needs_shared
def test_corpus_file_loads():
    passages = load_passages(SHARED / CORPUS_FILE[0])
    assert len(passages) == CORPUS_FILE[1]  # no duplicate passages in this file
    assert len(list(loaders.iter_raw_records(SHARED / CORPUS_FILE[0]))) == CORPUS_FILE[1]
    assert set(passages[0]) == {"id", "title", "text"}
    assert len(load_passages()) == len(passages)  # the default location


@needs_shared
def test_field_mapping_details():
    gaia = load_benchmark("gaia")
    assert Counter(t.meta["level"] for t in gaia) == {1: 53, 2: 86, 3: 26}
    assert Counter(t.meta["level"] for t in load_benchmark("gaia_text")) == {1: 42, 2: 66, 3: 19}
    assert Counter(t.meta["level"] for t in load_benchmark("gaia_text103")) == {1: 39, 2: 52, 3: 12}
    assert gaia[0].id == "gaia-c61d22de-5f6c-4958-a7f6-5e9707bd3466"
    hle = load_benchmark("hle")
    assert Counter(t.meta["answer_type"] for t in hle) == {"exactMatch": 381, "multipleChoice": 119}
    ww = load_benchmark("webwalkerqa")
    assert Counter(t.meta["type"] for t in ww) == {"single_source": 340, "multi_source": 340}
    gsm = load_benchmark("gsm8k")
    assert gsm[0].answer == "18" and gsm[0].meta["solution"].endswith("#### 18")
    assert all("," not in t.answer for t in gsm)
    math500 = load_benchmark("math500")
    assert math500[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert math500[0].meta["subject"] == "Precalculus"
    aime = load_benchmark("aime24")
    assert aime[0].id == "aime24-2024-I-1" and aime[0].answer == "204"
    assert aime[0].meta["year"] == 2024
    assert load_benchmark("aime24_qwen")[0].answer == "204"
    assert load_benchmark("frames")[0].answer == ["Jane Ballou"]
    assert load_benchmark("bamboogle")[0].answer == "james madison"


@needs_shared
def test_multihop_contexts_and_corpus():
    hotpot = load_benchmark("hotpotqa")
    assert Counter(len(t.meta["contexts"]) for t in hotpot) == {10: 199, 2: 1}
    first = hotpot[0]
    assert first.answer == "Rush" and first.meta["type"] == "bridge"
    assert set(first.meta["contexts"][0]) == {"title", "text"}
    gold = {first.meta["contexts"][i]["title"] for i in first.meta["supporting_contexts"]}
    assert gold == {"Nobody's Hero", "Neil Peart"}
    ircot = load_benchmark("hotpotqa_ircot")
    assert ircot[0].answer == "Chief of Protocol"
    assert sum(len(t.meta["contexts"]) == 10 for t in ircot) == 489
    musique = load_benchmark("musique")
    assert all(len(t.meta["contexts"]) == 20 for t in musique)
    assert musique[0].answer[0] == "Stanley"
    corpus = build_qa_corpus(hotpot + hotpot)
    assert len(corpus) == len({(c["title"], c["text"]) for t in hotpot for c in t.meta["contexts"]})
    assert build_qa_corpus(hotpot[:1])[0] in corpus  # ids do not depend on the task subset


@needs_shared
def test_xbench_decrypts_in_memory_and_writes_nothing(tmp_path, monkeypatch):
    def no_writes(mode):
        if any(ch in mode for ch in "wax+"):
            raise AssertionError(f"the xbench loader tried to open a file with mode {mode!r}")

    real_open, real_os_open, real_gzip_open = builtins.open, os.open, gzip.open

    def guarded_open(file, mode="r", *a, **kw):
        no_writes(mode)
        return real_open(file, mode, *a, **kw)

    def guarded_os_open(path, flags, *a, **kw):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND):
            raise AssertionError("the xbench loader tried to open a file for writing")
        return real_os_open(path, flags, *a, **kw)

    def guarded_gzip_open(file, mode="rb", *a, **kw):
        no_writes(mode)
        return real_gzip_open(file, mode, *a, **kw)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(gzip, "open", guarded_gzip_open)
    monkeypatch.chdir(tmp_path)
    tasks = load_benchmark("xbench")
    monkeypatch.undo()
    assert len(tasks) == 200 and list(tmp_path.iterdir()) == []
    raw = [row for _, row in loaders.iter_raw_records(SHARED / "xbench/DeepSearch-2505.csv")]
    for task, row in zip(tasks, raw):
        assert isinstance(task.question, str) and task.question.strip()
        assert isinstance(task.answer, str) and task.answer.strip()
        assert task.question != row["prompt"] and task.answer != row["answer"]
        assert task.meta["reference_steps"] == row["reference_steps"]  # stays encrypted
        assert task.meta["do_not_publish"] is True
    assert tasks[0].id == "xbench-1" and tasks[-1].id == "xbench-200"


@needs_shared
def test_gaia_attachments_resolve_against_files_dir(tmp_path):
    tasks = load_benchmark("gaia")
    names = [t.meta["file_name"] for t in tasks if t.meta["file_name"]]
    assert names and all(t.files == [] for t in tasks)  # no files_dir: nothing resolved
    for name in names:
        (tmp_path / name).write_bytes(b"")  # empty stand-ins, no GAIA content
    resolved = load_benchmark("gaia", files_dir=tmp_path)
    for t in resolved:
        if t.meta["file_name"]:
            assert t.files == [str((tmp_path / t.meta["file_name"]).resolve())]
        else:
            assert t.files == []
    (tmp_path / names[0]).unlink()
    with pytest.raises(FileNotFoundError, match=names[0]):
        load_benchmark("gaia", files_dir=tmp_path)


# ---------------------------------------------------------------- shipped copies and registry


def test_shipped_copies_are_exactly_the_allowed_files():
    data = REPO_ROOT / "reagent" / "tasksets" / "data"
    files = {str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()}
    assert files == set(SHIPPED_SHA256) | {"PROVENANCE.md"}  # never GAIA, HLE or xbench
    for rel, digest in SHIPPED_SHA256.items():
        assert hashlib.sha256((data / rel).read_bytes()).hexdigest() == digest
        assert digest in (data / "PROVENANCE.md").read_text()


def test_shipped_math_benchmarks_load_without_the_shared_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(loaders, "SHARED_ROOT", tmp_path / "absent")
    assert len(load_benchmark("gsm8k")) == 1319
    assert len(load_benchmark("math500", limit=7)) == 7
    assert len(load_benchmark("aime24")) == 30
    with pytest.raises(FileNotFoundError, match="data_root"):
        load_benchmark("bamboogle")


def test_registry_is_consistent():
    for name, spec in BENCHMARKS.items():
        assert spec.name == name and spec.checker in CHECKERS and spec.licence
        assert set(spec.tools) <= {"search", "browse", "python", "file_reader"}
        if name.startswith(("gaia", "hle", "xbench")):
            assert not spec.shipped
    assert BENCHMARKS["gsm8k"].tools == ("python",)
    assert BENCHMARKS["hotpotqa"].tools == ("search",)
    assert BENCHMARKS["gaia"].tools == ("search", "browse", "python", "file_reader")
    assert BENCHMARKS["gaia"].checker == "gaia" and BENCHMARKS["hle"].checker == "llm_judge"
    with pytest.raises(ValueError, match="gsm8k"):
        load_benchmark("nope")


def test_aime25_is_not_available_by_default_and_year_filters(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "SHARED_ROOT", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="AIME 2025"):
        load_benchmark("aime25")
    f = tmp_path / "aime.jsonl"
    rows = [
        {"id": "2024-I-1", "year": 2024, "problem": "p1", "answer": "1"},
        {"id": "2025-I-1", "year": 2025, "problem": "p2", "answer": "70"},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = load_benchmark("aime25", path=f)
    assert [(t.id, t.answer) for t in tasks] == [("aime25-2025-I-1", "70")]


# ---------------------------------------------------------------- bad records


def _expect_record_error(path, line, field, name="bamboogle", **kw):
    with pytest.raises(RecordError) as info:
        load_benchmark(name, path=path, **kw)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert str(err).startswith(f"{path}:{line}: ") and f"'{field}'" in str(err)


def test_jsonl_error_names_physical_line(tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text('{"question": "q1", "answer": "a1"}\n\n{"answer": "a2"}\n')
    _expect_record_error(f, 3, "question")


def test_json_array_error_names_record_index(tmp_path):
    f = tmp_path / "qa.json"
    f.write_text(
        json.dumps([{"question": "q", "answer": "a"}] * 2 + [{"question": "q3"}], indent=2)
    )
    _expect_record_error(f, 3, "answer")


def test_gzip_and_format_specific_fields(tmp_path):
    f = tmp_path / "gaia.jsonl.gz"
    rows = [
        {"task_id": "t1", "Question": "q", "Final answer": "a", "Level": 1, "file_name": ""},
        {"task_id": "t2", "Question": "q", "Level": 1, "file_name": ""},
    ]
    with gzip.open(f, "wt", encoding="utf-8") as g:
        g.write("\n".join(json.dumps(r) for r in rows))
    _expect_record_error(f, 2, "Final answer", name="gaia")
    g8 = tmp_path / "gsm8k.jsonl"
    g8.write_text(json.dumps({"question": "q", "answer": "no final line"}) + "\n")
    _expect_record_error(g8, 1, "answer", name="gsm8k")
    ir = tmp_path / "ircot.jsonl"
    ir.write_text(json.dumps({"question_id": "x", "question_text": "q", "contexts": []}) + "\n")
    _expect_record_error(ir, 1, "answers_objects", name="hotpotqa_ircot")
    hp = tmp_path / "hotpot.jsonl"
    hp.write_text(
        json.dumps({"_id": "x", "question": "q", "answer": "a", "context": "oops"}) + "\n"
    )
    _expect_record_error(hp, 1, "context", name="hotpotqa")


def test_csv_error_and_malformed_json(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("id,prompt,answer,reference_steps,canary\n1,AAAA,AAAA,,key\n2,AAAA,AAAA,,\n")
    _expect_record_error(f, 3, "canary", name="xbench")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\n{"question": \n')
    with pytest.raises(RecordError, match=rf"{bad}:2: malformed JSON"):
        load_benchmark("bamboogle", path=bad)


def test_limit_and_missing_path(tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text("".join(json.dumps({"question": f"q{i}", "answer": "a"}) + "\n" for i in range(5)))
    assert [t.id for t in load_benchmark("bamboogle", path=f, limit=2)] == [
        "bamboogle-0",
        "bamboogle-1",
    ]
    with pytest.raises(FileNotFoundError):
        load_benchmark("bamboogle", path=tmp_path / "none.json")


# ---------------------------------------------------------------- hostile files


@pytest.mark.parametrize("name, lines, line, reason", [
    ("bamboogle", [b"[" * 100000], 2, "nested deeper"),
    ("bamboogle", [b'{"question": "\xff", "answer": "a"}'], 2, "invalid UTF-8 byte"),
    ("bamboogle", [b'{"question": "q", "answer": ' + b"1" * 4301 + b"}"], 2, "4300 digits"),
    ("bamboogle", [b'{"question": NaN, "answer": "a"}'], 2, "field 'question': NaN/Infinity"),
    ("bamboogle", [b'{"id": "0", "question": "q2", "answer": "a"}'], 2, "duplicate task id 'bamboogle-0' (first at line 1)"),
    ("aime24", [b'{"id": 9, "problem": "p", "answer": "1", "year": -Infinity}'], 2, "field 'year': NaN"),
    ("aime24", [b'{"id": 9, "problem": "p", "answer": "1", "year": [2024]}'], 2, "expected a year"),
    ("hotpotqa_ircot", [json.dumps({
        "question_id": "x", "question_text": "q", "contexts": [],
        "answers_objects": [{"date": 1e308, "spans": 5, "number": ""}]}).encode()], 2,
     "has no answer span"),
])
def test_hostile_records_are_file_line_errors(tmp_path, name, lines, line, reason):
    f = tmp_path / "bad.jsonl"
    first = {"id": "0", "question": "q", "problem": "p", "answer": "1", "question_id": "y",
             "question_text": "q", "contexts": [], "answers_objects": [{"spans": ["s"]}]}
    f.write_bytes(b"\n".join([json.dumps(first).encode(), *lines]) + b"\n")
    with pytest.raises(RecordError) as info:
        load_benchmark(name, path=f)
    assert str(info.value).startswith(f"{f}:{line}: ") and reason in str(info.value)


def test_hostile_json_array_and_attachment_outside_files_dir(tmp_path):
    f = tmp_path / "deep.json"
    f.write_text("[" * 100000)
    with pytest.raises(RecordError, match="nested deeper"):
        load_benchmark("bamboogle", path=f)
    g = tmp_path / "gaia.jsonl"
    g.write_text(json.dumps({"task_id": "t", "Question": "q", "Final answer": "a",
                             "file_name": "../../../etc/passwd"}) + "\n")
    (tmp_path / "files").mkdir()
    with pytest.raises(RecordError, match="leaves files_dir"):
        load_benchmark("gaia", path=g, files_dir=tmp_path / "files")
