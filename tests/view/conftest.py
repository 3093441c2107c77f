"""Real record files for the viewer tests, made once per session by the project's own commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reagent.cli import main as reagent_main


@pytest.fixture(scope="session")
def real_files(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """demos (tool calls, tool results), annotated judge examples (teacher scores), a Reagent-C
    rollout (initial + ``/rev`` with the oracle judge's verdicts), an eval's
    records with initial and revised attempts, and step labels written for the demos."""
    d = tmp_path_factory.mktemp("view_files")
    loop = ["--model", str(tiny_model_dir), "--device", "cpu", "--max-turns", "1", "--max-new-tokens", "6",
            "--max-tokens", "6"]
    files = {"demos": d / "demos.jsonl", "annotations": d / "annotations.jsonl", "traces": d / "traces.jsonl",
             "eval": d / "eval" / "records.jsonl", "labels": d / "labels.jsonl"}
    assert reagent_main(["demos", "--out", str(files["demos"]), "--limit", "12", "--seed", "0",
                         "--flaw-rate", "0.5", "--revision-rate", "0.3"]) == 0
    assert reagent_main(["annotate", "--traces", str(files["demos"]), "--teacher", "rules",
                         "--out", str(files["annotations"]), "--no-progress"]) == 0
    # The oracle (rules) judge scores every attempt, so each is revised (a failed verdict of the
    # tiny judge is never revised since issue 19, so it would leave no pair to view).
    assert reagent_main(["rollout", "--env", "toy", "--limit", "2", "--out", str(files["traces"]), "--critique",
                         "--judge-model", "rules", *loop]) == 0
    assert reagent_main(["eval", "--benchmark", "toy", "--split", "heldout", "--limit", "2", "--k", "1",
                         "--out", str(d / "eval"), "--critique", "--judge-model", "rules", *loop]) == 0
    # Step labels as the PRM labellers write them: one {q, advantage} per assistant step.
    with open(files["labels"], "w") as out:
        for i, line in enumerate(files["demos"].read_text().splitlines()[:3]):
            t = json.loads(line)
            n = sum(m["role"] == "assistant" for m in t["messages"])
            steps = [{"q": round(0.1 * (k + 1), 3), "advantage": round(0.2 - 0.1 * k, 3)} for k in range(n)]
            rec = {"trajectory_id": t["id"], "method": "td_gae", "params": {"gamma": 1.0, "lam": 0.95},
                   "steps": steps}
            if i == 0:
                rec["trajectory"] = t  # embedded; the others are joined to demos.jsonl by id
            out.write(json.dumps(rec) + "\n")
    return files
