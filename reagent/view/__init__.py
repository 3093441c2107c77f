"""Static HTML views of what the judge sees: a trajectory viewer and a run dashboard.

:mod:`reagent.view.items` reads any record file into viewer items,
:mod:`reagent.view.page` writes the self-contained viewer page, and
:mod:`reagent.view.dashboard` draws a training run's ``metrics.jsonl``.
"""
