"""Benchmark setups: each benchmark gets its environment, tools and search corpus."""

import json

import pytest

from reagent.envs.qa import QAEnv
from reagent.tasksets import setup_benchmark


def test_benchmark_setups_pick_env_and_corpus(tmp_path):
    hotpot = tmp_path / "hp.jsonl"
    rows = [
        {
            "_id": f"h{i}",
            "question": f"Q{i}?",
            "answer": f"A{i}",
            "context": [[f"T{i}", [f"Paragraph {i} about zebra{i}."]], ["Shared", ["Same text."]]],
        }
        for i in range(3)
    ]
    hotpot.write_text("\n".join(json.dumps(r) for r in rows))
    s = setup_benchmark("hotpotqa", data=str(hotpot), limit=1, cache_dir=str(tmp_path / "c"))
    assert isinstance(s.env, QAEnv) and len(s.tasks) == 1 and s.checker == "short_answer"
    assert "own paragraphs (4 from 3 questions)" in s.notes[-1]  # all questions, deduplicated
    assert "zebra2" in s.env.tools_for(s.tasks[0])["search"](query="zebra2")
    assert setup_benchmark("gsm8k", limit=2).env.name == "math"
    from reagent.tools.factory import ToolsConfig

    ww = tmp_path / "ww.json"
    ww.write_text(json.dumps([{"Question": "q", "answer": "a"}]))
    with pytest.raises(ValueError, match="--search-url"):
        setup_benchmark("webwalkerqa", data=str(ww))
    web = setup_benchmark(
        "webwalkerqa",
        data=str(ww),
        tools_config=ToolsConfig(search_backend="http", search_url="http://127.0.0.1:9/search"),
    )
    assert web.env.tool_names == ("search", "browse", "python")
    with pytest.raises(ValueError, match="unknown benchmark 'nope'.*toy"):
        setup_benchmark("nope")
