"""The run dashboard: every logged series charted, gaps for missing values, PNG, rollouts per step."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from reagent.cli import main as reagent_main
from reagent.view.dashboard import series, svg_chart


def test_series_keep_gaps_and_skip_text():
    rows = [{"step": 1, "time": 5.0, "reward/mean": 0.1, "judge/outcome_corr": None, "config_hash": "ab"},
            {"step": 2, "reward/mean": 0.3, "judge/outcome_corr": 0.4},
            {"step": 3, "reward/mean": None, "judge/outcome_corr": 0.6},
            {"step": 4, "reward/mean": 0.7}]
    s = series(rows)
    assert list(s) == ["reward/mean", "judge/outcome_corr"]  # time, step and text are not series
    assert s["reward/mean"] == [(1, 0.1), (2, 0.3), (3, None), (4, 0.7)]
    svg = svg_chart("reward/mean", s["reward/mean"])
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1  # 1-2 joined, 4 alone after the gap
    assert "(last 0.7)" in svg


def test_dashboard_from_a_metrics_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps({"step": i, "reward/total_mean": i / 10, "actor/kl": 0.01 * i, "timing_s/step": 1.5,
                         "judge/failure_rate": None if i == 2 else 0.5, "<b>key": 1.0}) for i in range(1, 5)]
    (run / "metrics.jsonl").write_text("\n".join(lines[:2] + ["{torn"] + lines[2:]) + "\n")
    (run / "config.yaml").write_text("variant: grpo\nnote: </pre><script>x</script>\n")
    out = tmp_path / "site" / "run.html"
    assert reagent_main(["view", str(run), "--out", str(out)]) == 0
    page = out.read_text()
    keys = re.findall(r'<svg class="chart" data-key="([^"]+)"', page)
    assert keys == ["reward/total_mean", "actor/kl", "timing_s/step", "judge/failure_rate", "&lt;b&gt;key"]
    assert [h for h in re.findall(r"<h2>([^<]+)</h2>", page)] == ["reward", "actor", "timing_s", "judge", "overall"]
    assert f"{run / 'metrics.jsonl'}:3: malformed JSON" in page and "<script>x" not in page
    assert (tmp_path / "site" / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "site" / "run_rollouts.html").exists()
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        from reagent.view.dashboard import write_dashboard

        write_dashboard(tmp_path / "site", tmp_path / "x.html")


@pytest.mark.slow
def test_dashboard_of_a_real_training_run_links_its_rollouts(tmp_path, tiny_model_dir):
    policy = shutil.copytree(tiny_model_dir, tmp_path / "policy")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "reagent", "train", "--config", "configs/toy_reagent_u.yaml", f"model={policy}",
           f"output_dir={run}", "max_steps=2", "prompts_per_step=2", "group_size=2", "max_tokens=32",
           "max_new_tokens=16", "device=cpu", "keep_degenerate_groups=true", "save_rollouts=true",
           "judge_model=rules"]  # the oracle judge scores every episode, so each is revised
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "run.html"
    assert reagent_main(["view", str(run), "--out", str(out)]) == 0
    page = out.read_text()
    logged = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    charted = re.findall(r'<svg class="chart" data-key="([^"]+)"', page)
    numeric = [k for k, v in logged.items() if k not in ("step", "time") and isinstance(v, (int, float))]
    assert set(numeric) <= set(charted) and "reward/total_mean" in charted and "judge/failure_rate" in charted
    assert 'href="run_rollouts.html#step=1"' in page and 'href="run_rollouts.html#step=2"' in page
    viewer = (tmp_path / "run_rollouts.html").read_text()
    items = json.loads(re.search(r'id="reagent-data">(.*?)</script>', viewer, re.S).group(1))["items"]
    saved = sum(len(p.read_text().splitlines()) for p in (run / "rollouts").glob("*.jsonl"))
    assert len(items) == saved and {it["step"] for it in items} == {1, 2}
    assert {it["stage"] for it in items} == {"initial", "revised"}
    assert all("pair" in it for it in items if it["stage"] == "revised")  # each revision beside its attempt
