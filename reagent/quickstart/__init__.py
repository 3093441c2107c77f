"""``reagent quickstart``: the whole Reagent loop offline on a CPU, as a chain of public commands.

make tiny policy and judge -> demos -> SFT -> policy rollouts -> rule-teacher annotation
-> judge dataset -> judge SFT -> judge-quality report -> grpo / reagent-r / reagent-u
from the same SFT checkpoint -> held-out evaluation (and Reagent-C) -> report.md,
results.json, curves.png. Every stage's files stay under ``DIR`` so any stage can be
inspected and re-run by hand with the command the report lists.
"""
