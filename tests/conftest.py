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


@pytest.fixture(scope="session")
def family_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """``family_model_dir("qwen2.5" | "qwen3" | "llama3.1") -> Path``: a tiny random model of the
    family's architecture with its real tokenizer and published chat template.

    Built once per family per session (a few seconds: the BPE merges come from the
    150k-rank file). Skips with the install command when the registry package that ships
    the vocabulary is absent. Read-only, like :func:`tiny_model_dir`.
    """
    from reagent.families import family_available, get_family
    from reagent.tiny_model import make_tiny_model

    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if not family_available(name):
            pytest.skip(f"pip install --no-deps {get_family(name).package} (ships the {name} vocabulary)")
        if name not in built:
            built[name] = make_tiny_model(tmp_path_factory.mktemp(f"tiny_{name}"), seed=0, tokenizer=name)
        return built[name]

    return get


@pytest.fixture
def hf_prompts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every prompt a local :class:`~reagent.generation.hf.HFBackend` is asked to continue,
    decoded, in order (the real generation still runs): what a chat template rendered."""
    from reagent.generation.hf import HFBackend

    seen: list[str] = []
    real = HFBackend.generate

    def generate(self, batch, params):
        seen.extend(self.tokenizer.decode(ids) for ids in batch)
        return real(self, batch, params)

    monkeypatch.setattr(HFBackend, "generate", generate)
    return seen
