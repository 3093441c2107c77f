"""Task sets: benchmark files read as :class:`~reagent.records.Task` lists, and the
environment each benchmark runs in.

This sits in the core, below training and evaluation, because three layers load the
same tasks the same way: ``reagent train`` (math/qa training tasks), ``reagent rollout
--benchmark`` and ``reagent eval``. Evaluation (answer checking, pass@k, Reagent-C,
Best-of-N, reports) stays in ``eval/``, which imports this package; nothing under
``reagent/`` imports ``eval`` (tests/test_layering.py checks it).

* :mod:`reagent.tasksets.loaders`: one loader per file format and the registry of
  benchmarks (default files, tools, answer-checker name, licence);
* :mod:`reagent.tasksets.setup`: a benchmark name -> environment, tasks, checker name.
"""

from reagent.tasksets.setup import TOY, BenchmarkSetup, setup_benchmark

__all__ = ["TOY", "BenchmarkSetup", "setup_benchmark"]
