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
thin shells over these (``data_gen/cli_*.py``). The whole workflow, offline on the toy
environment (swap ``--teacher rules`` for ``--teacher openai --base-url URL --model NAME``
to use a model as teacher)::

    reagent rollout --model DIR --env toy --env-seed 0 --n 4 --out traces.jsonl
    reagent annotate --traces traces.jsonl --teacher rules --env-seed 0 --out judge.jsonl
    reagent build-dataset --judgments judge.jsonl --out-dir data/judge --balance outcome
    reagent train-rrm --data data/judge/train.jsonl --val-data data/judge/validation.jsonl \
        --model JUDGE_DIR --out runs/rrm

Traces from elsewhere: ``reagent import --format openai|sharegpt FILE --out traces.jsonl``,
or ``reagent annotate --format openai|sharegpt --traces FILE ...`` directly.
"""
