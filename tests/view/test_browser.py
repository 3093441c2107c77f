"""The viewer in a real headless Chromium, opened from disk: filters from the URL hash, the rows the
DOM holds afterwards, the opened pair, hostile text as text, and a screenshot.

Needs Debian's ``chromium`` (``apt-get install chromium``); skips, saying so, without it.
"""

import json
import re
import shutil
import subprocess

import pytest

from reagent.cli import main as reagent_main

from .hostile import SCRIPT, hostile_trajectory

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")


def chromium(tmp_path, url: str, *args: str) -> str:
    """Run headless Chromium on ``url``; the DOM after the page's script ran, or the screenshot log."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000", *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def rows(dom: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="row[^"]*" data-idx="(\d+)"', dom)]


@pytest.mark.slow
def test_filter_open_pair_and_screenshot(real_files, tmp_path):
    evil = tmp_path / "evil.jsonl"
    evil.write_text(json.dumps(hostile_trajectory()) + "\n")
    out = tmp_path / "view.html"
    files = [str(p) for p in real_files.values()]
    assert reagent_main(["view", *files, str(evil), "--out", str(out)]) == 0
    data = json.loads(re.search(r'id="reagent-data">(.*?)</script>', out.read_text(), re.S).group(1))
    items = data["items"]
    url = out.resolve().as_uri()

    dom = chromium(tmp_path, url, "--dump-dom")
    assert len(rows(dom)) == len(items) == 34  # under one page of 100: every row shown

    # Filter: revised attempts only.
    revised = [it["idx"] for it in items if it["stage"] == "revised"]
    dom = chromium(tmp_path, url + "#stage=revised", "--dump-dom")
    assert rows(dom) == revised and len(revised) == 4
    assert f'data-shown="{len(revised)}"' in dom

    # The reward-hacking view: correct but judged low (teacher scores on the demos, and the evil one).
    low = [it["idx"] for it in items if (it["outcome"] or 0) >= 1 and (it["judge"] or {}).get("score") is not None
           and it["judge"]["score"] <= 0.5]
    dom = chromium(tmp_path, url + "#outcome=correct&smax=0.5", "--dump-dom")
    assert rows(dom) == low and len(low) >= 1

    # Opening a revision shows its initial attempt beside it.
    rev = next(it for it in items if it["id"] == "toy-train-0#0/rev")
    dom = chromium(tmp_path, url + f"#open={rev['idx']}", "--dump-dom")
    shown = re.findall(r'<div class="attempt" data-idx="(\d+)"><h2>(\w+) attempt', dom)
    assert shown == [(str(rev["pair"]), "initial"), (str(rev["idx"]), "revised")]
    assert 'class="detail pair"' in dom

    # Hostile text renders as text: no element came from it, its markup shows escaped.
    bad = next(it for it in items if it["task_id"] == "t</div>")
    dom = chromium(tmp_path, url + f"#open={bad['idx']}", "--dump-dom")
    assert "&lt;script&gt;alert('pwned')&lt;/script&gt;" in dom
    assert SCRIPT not in dom and "<img" not in dom and dom.count("<script") == 2

    shot = tmp_path / "view.png"
    chromium(tmp_path, url + f"#outcome=correct&smax=0.5&open={rev['idx']}", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_ten_thousand_rows_build_one_page(tmp_path):
    src = tmp_path / "many.jsonl"
    with open(src, "w") as f:
        for i in range(10_000):
            f.write(json.dumps({"id": f"t{i}", "task_id": f"task{i % 50}", "stage": "initial",
                                "messages": [{"role": "user", "content": f"question {i}"}],
                                "outcome": float(i % 2), "judge": {"score": (i % 10) / 10, "status": "ok"},
                                "stop_reason": "answered"}) + "\n")
    out = tmp_path / "many.html"
    assert reagent_main(["view", str(src), "--out", str(out)]) == 0
    url = out.resolve().as_uri()
    # wrong = even i; judge score (i % 10) / 10 >= 0.8 -> i % 10 == 8: 1,000 rows, page 3 of 10
    dom = chromium(tmp_path, url + "#outcome=wrong&smin=0.8&page=2", "--dump-dom")
    assert rows(dom) == [i for i in range(10_000) if i % 10 == 8][200:300]
    assert "rows 201–300 of 1000 shown (10000 in all), page 3/10" in dom
    # correct = odd i (5,000); sorted by score descending, ties by index; page 2
    dom = chromium(tmp_path, url + "#outcome=correct&sort=score&desc=1&page=1", "--dump-dom")
    expected = sorted((i for i in range(10_000) if i % 2), key=lambda i: (-(i % 10), i))[100:200]
    assert rows(dom) == expected
    assert "rows 101–200 of 5000 shown (10000 in all), page 2/50" in dom
