"""Imports flow one way (DESIGN.md): ``eval`` builds on the core, never the reverse.

``reagent.train`` once reached into ``eval.harness`` for its math/qa training tasks;
task and benchmark loading now live in :mod:`reagent.tasksets`. Two checks keep it so:
an AST scan of every module of the core, the judge package and data generation for an
import of ``eval`` (lazy ones inside functions included), and a fresh interpreter that
imports the training, rollout and task-loading modules, builds a benchmark's setup, and
reports which ``eval`` modules got loaded (none may).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("reagent", "rrm", "data_gen")
# Application-layer modules allowed to import eval, each with the reason. Keep it short.
ALLOWED = {
    # the quickstart's report recomputes eval's pass@1 from eval records per RL step; it
    # runs after every stage as a script over the whole pipeline, never under training
    "reagent/quickstart/report.py",
}


def eval_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``import eval...`` / ``from eval... import`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name == "eval" or a.name.startswith("eval.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "eval" or node.module.startswith("eval."):
                found.append((node.lineno, node.module))
    return found


def test_scanner_finds_lazy_and_plain_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import evaluate\nimport eval.report\n\ndef g():\n"
                 "    from eval.harness import run_attempts\n    from evaluation import x\n")
    assert eval_imports(f) == [(2, "eval.report"), (5, "eval.harness")]


def test_core_never_imports_eval():
    bad = [f"{p.relative_to(ROOT)}:{line}: imports {mod}"
           for pkg in SCANNED for p in sorted((ROOT / pkg).rglob("*.py"))
           if str(p.relative_to(ROOT)) not in ALLOWED
           for line, mod in eval_imports(p)]
    assert not bad, "the core must not import eval (move what it needs under reagent/):\n" + \
        "\n".join(bad)
    for allowed in ALLOWED:  # an entry that no longer imports eval should be removed
        assert eval_imports(ROOT / allowed), f"{allowed} no longer imports eval: drop it from ALLOWED"


def test_training_and_task_loading_load_no_eval_module(tmp_path):
    """A fresh process: the trainer, its env/task setup, the rollout CLI and a benchmark's
    setup (gsm8k, shipped) run their imports; no ``eval`` module may appear."""
    code = (
        "import json, sys\n"
        "import reagent.train.trainer, reagent.train.setup, reagent.train.sft, reagent.cli.rollout\n"
        "from reagent.train.config import TrainConfig\n"
        "from reagent.train.setup import build_env_and_tasks\n"
        f"c = TrainConfig(env='math', benchmark='gsm8k', train_tasks=3, output_dir={str(tmp_path)!r})\n"
        "env, tasks = build_env_and_tasks(c)\n"
        "assert env.name == 'math' and len(tasks) == 3, (env.name, len(tasks))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'eval' or m.startswith('eval.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
