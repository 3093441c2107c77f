"""The viewer page: self-contained, data embedded intact, hostile text unable to escape its block."""

import json
import re

from reagent.cli import main as reagent_main
from reagent.view.items import load_items
from reagent.view.page import embed_json, render_page

from .hostile import LONG, SCRIPT, hostile_trajectory

DATA_BLOCK = re.compile(r'<script type="application/json" id="reagent-data">(.*?)</script>', re.S)


def embedded(page: str) -> dict:
    blocks = DATA_BLOCK.findall(page)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def test_embed_json_cannot_close_its_script_block():
    text = embed_json({"a": "</script><!-- <script> & \u2028 \u2029 \ud800"})
    assert "<" not in text and ">" not in text and "&" not in text and text.isascii()
    assert json.loads(text)["a"] == "</script><!-- <script> & \u2028 \u2029 \ud800"


def test_hostile_text_is_escaped_and_survives_intact(tmp_path):
    src = tmp_path / "evil.jsonl"
    raw = json.dumps(hostile_trajectory()).encode().replace(b"</html>", b"</html>\xff\xfe")
    src.write_bytes(raw + b"\n")
    out = tmp_path / "view.html"
    assert reagent_main(["view", str(src), "--out", str(out), "--title", "<img src=y onerror=alert(3)>"]) == 0
    page = out.read_text()
    # Only the page's own two script elements and its markup: nothing from the data.
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert SCRIPT not in page and "<img" not in page and "</html>\ufffd" not in page
    assert "&lt;img src=y onerror=alert(3)&gt;" in page  # the title, HTML-escaped
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # no CDN
    item = embedded(page)["items"][0]
    assert item["id"] == "evil</script><script>alert(1)</script>"
    assert item["messages"][2]["content"] == SCRIPT + " & </script><!--"
    assert item["messages"][1]["reasoning"] == "I plan \u2028 to </textarea> win"
    assert item["messages"][1]["content"] == LONG
    assert json.loads(item["messages"][1]["tool_calls"][0]["arguments"]) == {"code": SCRIPT}
    assert item["final_answer"] == "</html>\ufffd\ufffd" and item["judge"]["critique"] == SCRIPT
    # The script writes text with textContent only and long lines wrap.
    assert ".innerHTML" not in page and "insertAdjacentHTML" not in page and "overflow-wrap: anywhere" in page


def test_page_from_real_files_holds_every_attempt_and_pair(real_files, tmp_path):
    out = tmp_path / "view.html"
    files = [str(p) for p in real_files.values()]
    assert reagent_main(["view", *files, "--out", str(out), "--page-size", "25"]) == 0
    data = embedded(out.read_text())
    items = data["items"]
    assert data["meta"]["page_size"] == 25 and len(items) == 33
    assert data["meta"]["step_scale"] == {"q": max(s["q"] for it in items for s in it.get("steps", [])),
                                          "advantage": 0.2}
    pairs = {(items[it["pair"]]["id"], it["id"]) for it in items if it["stage"] == "revised" and "pair" in it}
    assert ("toy-train-0#0", "toy-train-0#0/rev") in pairs and len(pairs) == 4  # 2 rollout + 2 eval pairs
    assert "<tr class" not in out.read_text()  # rows are built by the script, one page at a time


def test_ten_thousand_trajectories_make_one_compact_page(tmp_path):
    src = tmp_path / "many.jsonl"
    with open(src, "w") as f:
        for i in range(10_000):
            f.write(json.dumps({"id": f"t{i}", "task_id": f"task{i % 50}", "stage": "initial",
                                "messages": [{"role": "user", "content": f"question {i}"},
                                             {"role": "assistant", "content": f"\\boxed{{{i}}}"}],
                                "outcome": float(i % 2), "judge": {"score": (i % 10) / 10, "status": "ok"},
                                "stop_reason": "answered"}) + "\n")
    items, report = load_items([src])
    page = render_page(items, report, "many")
    assert len(embedded(page)["items"]) == 10_000 and len(page) < 6_000_000
    assert page.count("<tr") == 0
