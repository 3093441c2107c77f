"""Fixtures for the generation tests: a tiny local model built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def nano_model_dir(tmp_path_factory) -> Path:
    """The smallest tiny model (hidden 64, 2 layers, ~0.27M parameters): tests take seconds."""
    from reagent.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("nano_model"), size="nano", seed=0)


@pytest.fixture(scope="session")
def varied_model_dir(nano_model_dir, tmp_path_factory) -> Path:
    """The nano model with large random weights, saved beside its tokenizer.

    A freshly initialised model (std 0.02) repeats one token under greedy decoding,
    which would make "batched equals one-at-a-time" or stop-string tests vacuous; with
    weights of std 0.3 (embeddings 1.0) greedy output varies token to token.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("varied_model")
    model = AutoModelForCausalLM.from_pretrained(nano_model_dir, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                std = 1.0 if "embed" in name else 0.3
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(nano_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def hf_backend(varied_model_dir):
    from reagent.generation.hf import HFBackend

    return HFBackend(varied_model_dir, device="cpu", batch_size=64)
