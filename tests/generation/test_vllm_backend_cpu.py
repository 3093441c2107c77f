"""VLLMBackend without a GPU: the missing-vLLM error, and the mapping logic against a
stand-in ``vllm`` module (the real engine is exercised only on GPU machines)."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from reagent.generation.base import SamplingParams


def test_without_vllm_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    from reagent.generation.vllm_backend import VLLMBackend

    with pytest.raises(ImportError, match=r"reagent\[vllm\] on a GPU machine"):
        VLLMBackend("/nonexistent")


class FakeTokenizer:
    def decode(self, ids, skip_special_tokens=False):
        return " ".join(f"t{i}" for i in ids)


class FakeModel:
    def __init__(self):
        self.loaded = []

    def load_weights(self, weights):
        self.loaded.extend(name for name, _ in weights)
        return {name for name, _ in weights}


class FakeLLM:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        self.model = FakeModel()
        self.prefix_resets = 0
        runner = SimpleNamespace(model=self.model)
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(
            driver_worker=SimpleNamespace(worker=SimpleNamespace(model_runner=runner))))

    def get_tokenizer(self):
        return FakeTokenizer()

    def reset_prefix_cache(self):
        self.prefix_resets += 1

    def generate(self, requests, sampling, use_tqdm=True):
        self.calls.append((requests, sampling))
        outs = []
        for req, sp in zip(requests, sampling):
            last = req["prompt_token_ids"][-1]
            ids = [last + 1, last + 2, 99] if sp["max_tokens"] > 2 else [last + 1, last + 2]
            reason = "stop" if len(ids) == 3 else "length"
            logprobs = [{t: SimpleNamespace(logprob=-0.5)} for t in ids]
            out = SimpleNamespace(token_ids=tuple(ids), finish_reason=reason, stop_reason=None,
                                  logprobs=logprobs if sp["logprobs"] is not None else None)
            outs.append(SimpleNamespace(outputs=[out]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # restored after the test
    return module


def test_generate_maps_params_and_keeps_ids(fake_vllm):
    from reagent.generation.vllm_backend import VLLMBackend

    b = VLLMBackend("/models/x", gpu_memory_utilization=0.4, tensor_parallel_size=1)
    assert b.llm.kwargs["gpu_memory_utilization"] == 0.4
    params = SamplingParams(max_new_tokens=8, temperature=0.0, top_k=0, stop=["</a>"], seed=5,
                            logprobs=True)
    outs = b.generate([[1, 2], [7]], params)
    requests, sampling = b.llm.calls[0]
    assert requests == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [7]}]
    assert [s["seed"] for s in sampling] == [5, 6]  # one seed per prompt: rows differ
    s = sampling[0]
    assert (s["temperature"], s["top_k"], s["max_tokens"], s["stop"]) == (0.0, -1, 8, ["</a>"])
    assert s["include_stop_str_in_output"] and s["logprobs"] == 0
    assert outs[0].token_ids == [3, 4, 99] and outs[0].finish_reason == "stop"
    assert outs[0].text == "t3 t4"  # the eos id stays in the ids, not in the text
    assert outs[0].logprobs == [-0.5] * 3
    short = b.generate([[1]], SamplingParams(max_new_tokens=2))[0]
    assert (short.token_ids, short.finish_reason, short.logprobs) == ([2, 3], "length", None)


def test_load_weights_into_the_in_process_model(fake_vllm):
    from reagent.generation.vllm_backend import VLLMBackend

    b = VLLMBackend("/models/x")
    b.load_weights(iter([("model.embed_tokens.weight", 0), ("lm_head.weight", 1)]))
    assert b.llm.model.loaded == ["model.embed_tokens.weight", "lm_head.weight"]
    assert b.llm.prefix_resets == 1
