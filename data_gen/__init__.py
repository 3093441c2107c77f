"""Traces -> judge datasets.

Modules, in the order a trace meets them:

* :mod:`data_gen.importers`: other tools' trace formats (OpenAI ``messages`` JSONL,
  ShareGPT ``conversations`` with Qwen tool tags) -> :class:`~reagent.records.Trajectory`;
  what cannot be mapped is reported by file and line and skipped, never guessed;
* :mod:`data_gen.tasks`: the tasks behind trajectories (a Task file, or the toy
  environment regenerated from its task ids), for reference answers and the rules teacher;
* :mod:`data_gen.annotate`: a teacher judge (any OpenAI-compatible endpoint, or the toy
  environment's process checker) writes analysis, critique and score per trajectory,
  append-only and resumable;
* :mod:`data_gen.filters`: drop unparsed verdicts and critiques that leak the answer,
  de-duplicate, balance, split by task;
* :mod:`data_gen.export`: JSONL, ``datasets.save_to_disk`` and a stats report.

The commands ``reagent import``, ``reagent annotate`` and ``reagent build-dataset`` are
thin shells over these (``data_gen/cli_*.py``).
"""
