"""reagent: train LLM agents with reasoning reward models.

The core package holds the data contracts, tool-call format, tokenization, tools,
the agent loop, generation backends and GRPO policy training. ``rrm``, ``data_gen``
and ``eval`` build on it; nothing here imports them back.
"""

__version__ = "0.1.0"
