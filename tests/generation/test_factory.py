"""make_backend: names, argument checks, and that each kind builds its backend."""

from __future__ import annotations

import sys

import pytest

from reagent.generation import make_backend
from reagent.generation.hf import HFBackend
from reagent.generation.openai_backend import OpenAIChatBackend


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ValueError, match="valid kinds: hf, vllm, openai"):
        make_backend("sglang", model="m")


def test_argument_checks():
    with pytest.raises(ValueError, match="base_url"):
        make_backend("openai", model="m")
    with pytest.raises(ValueError, match="only for kind='openai'"):
        make_backend("hf", model="m", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="needs model="):
        make_backend("vllm")


def test_builds_each_kind(nano_model_dir, monkeypatch):
    hf = make_backend("hf", model=str(nano_model_dir), batch_size=4)
    assert isinstance(hf, HFBackend) and hf.batch_size == 4 and hf.supports_tokens
    chat = make_backend("openai", model="m", base_url="http://127.0.0.1:1/v1", api_key_env=None)
    assert isinstance(chat, OpenAIChatBackend) and not chat.supports_tokens
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match="reagent\\[vllm\\]"):
        make_backend("vllm", model=str(nano_model_dir))
