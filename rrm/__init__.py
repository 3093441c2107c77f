"""Agent-RRM: generative judges that read a whole agent trajectory and answer with
``<think>`` analysis, an actionable ``<critique>`` and a ``<score>`` in [0, 1].

Modules, in the order a trajectory meets them: :mod:`rrm.prompt` (the one judge prompt
and the chat messages built from a trajectory), :mod:`rrm.parse` (judge text ->
:class:`~reagent.records.Judgment`), :mod:`rrm.judge` (local and HTTP judges, failure
policy), :mod:`rrm.serve` (an OpenAI-compatible server for a local model),
:mod:`rrm.sft` (fine-tuning a judge) and :mod:`rrm.metrics` (judge-quality report).
"""
