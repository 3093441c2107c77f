"""Shared fixtures. The tiny model is built once per test session, locally, with no network."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``nano`` Qwen2 model (~0.2M parameters, seed 0) with the reagent BPE tokenizer.

    Load it with ``AutoTokenizer.from_pretrained(tiny_model_dir)`` and
    ``AutoModelForCausalLM.from_pretrained(tiny_model_dir)``. Treat it as read-only:
    it is shared by every test in the session; copy it before writing checkpoints.
    """
    from reagent.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"), size="nano", seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    """The tokenizer of :func:`tiny_model_dir`, loaded through ``AutoTokenizer``.

    Shared by the session: do not change it (its chat template, padding side...);
    load a fresh one from ``tiny_model_dir`` for that.
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)
