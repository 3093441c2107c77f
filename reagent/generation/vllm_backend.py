"""An in-process vLLM engine as a TokenBackend (GPU rollouts), with trainer weight sync.

vLLM is imported only when a :class:`VLLMBackend` is built, so nothing else in
reagent needs it and CPU installs never import it.

Same contract as the transformers backend (:mod:`reagent.generation.hf`): prompts are
token ids, outputs are the ids exactly as sampled (eos kept), ``text`` is our own
decode of those ids without a final eos (vLLM's text is cut at the stop string and
would disagree with the ids), stop strings stay in the output, logprobs are of the
sampled tokens under the raw logits (vLLM's default ``raw_logprobs`` mode).

One seed per prompt: vLLM seeds each request separately, so a single seed for the
whole call would give the G identical prompts of a GRPO group G identical samples.
Prompt ``i`` gets ``seed + i``, which keeps a call reproducible and rows distinct.

Weight sync (:meth:`VLLMBackend.load_weights`) after each optimizer step, in the
order tried:

1. the model object in this process, when it can be reached
   (``llm.llm_engine.model_executor.driver_worker.worker.model_runner.model``, or
   ``...driver_worker.model_runner.model`` in older versions): ``model.load_weights``
   with no copies. vLLM >= 0.8 (V1) runs the engine in a child process unless
   ``VLLM_ENABLE_V1_MULTIPROCESSING=0``, which the constructor sets by default
   (``in_process=True``), as TRL does for its colocated mode;
2. ``llm.apply_model(fn)`` (vLLM >= 0.9), which pickles the weights to every worker:
   slower, but works with tensor parallelism and a separate engine process.

After loading, the prefix cache is reset so no KV block computed with the old weights
is reused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from reagent.generation.base import Generation, SamplingParams, TokenBackend

_MISSING = ("vLLM is not installed. VLLMBackend needs a GPU machine with vLLM: "
            "install reagent[vllm] on a GPU machine (pip install 'reagent[vllm]'); "
            "on CPU use the 'hf' backend instead.")


class VLLMBackend(TokenBackend):
    """``vllm.LLM`` over a local model directory.

    ``gpu_memory_utilization`` is the share of GPU memory vLLM may take (weights plus
    KV cache); keep it low (0.3-0.5) when the trainer shares the GPU.
    ``tensor_parallel_size`` splits the model over that many GPUs. Other keyword
    arguments go to ``vllm.LLM`` unchanged (``enable_prefix_caching``,
    ``enable_sleep_mode``, ``max_num_seqs``, ...).
    """

    def __init__(self, model_dir: str, gpu_memory_utilization: float = 0.9,
                 tensor_parallel_size: int = 1, dtype: str = "auto",
                 max_model_len: int | None = None, seed: int = 0, in_process: bool = True,
                 **llm_kwargs: Any):
        try:
            import vllm
        except ImportError as e:
            raise ImportError(_MISSING) from e
        if in_process:  # vllm.envs reads this when the engine starts, not at import
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self._vllm = vllm
        self.tensor_parallel_size = tensor_parallel_size
        self.llm = vllm.LLM(model=str(model_dir), gpu_memory_utilization=gpu_memory_utilization,
                            tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                            max_model_len=max_model_len, seed=seed, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def sampling_params(self, params: SamplingParams, seed: int | None) -> Any:
        """The ``vllm.SamplingParams`` for one prompt."""
        return self._vllm.SamplingParams(
            n=1,
            temperature=max(params.temperature, 0.0),
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            include_stop_str_in_output=True,
            seed=seed,
            logprobs=0 if params.logprobs else None,  # 0: only the sampled token's
            skip_special_tokens=False,
        )

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        if not prompts:
            return []
        seeds = [None if params.seed is None else params.seed + i for i in range(len(prompts))]
        if params.row_seeds is not None:
            seeds = params.row_seed_list(len(prompts))
        n = len(prompts)
        sampling = [self.sampling_params(params.for_row(i, n), s) for i, s in enumerate(seeds)]
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        return [self._to_generation(o.outputs[0], params.logprobs) for o in outputs]

    def _to_generation(self, out: Any, want_logprobs: bool) -> Generation:
        ids = list(out.token_ids)
        reason = out.finish_reason if out.finish_reason in ("stop", "length") else "error"
        # stop_reason None (eos) or an int (a stop token id): the last id ends the turn
        ended_by_token = reason == "stop" and not isinstance(getattr(out, "stop_reason", None), str)
        text_ids = ids[:-1] if ended_by_token and ids else ids
        text = self.tokenizer.decode(text_ids, skip_special_tokens=False)
        logprobs = None
        if want_logprobs and out.logprobs is not None:
            logprobs = [float(step[tok].logprob) for tok, step in zip(ids, out.logprobs)]
        error = None if reason != "error" else f"vLLM finish_reason={out.finish_reason!r}"
        return Generation(text=text, token_ids=ids, finish_reason=reason, logprobs=logprobs,
                          error=error)

    def load_weights(self, state_dict_items: Iterable[tuple[str, Any]]) -> None:
        """Copy trainer weights (``(name, tensor)`` pairs, HF names) into the engine.

        Pass full (unsharded) tensors: under ZeRO-3 gather them first. vLLM's
        ``load_weights`` maps HF names itself (fusing q/k/v and gate/up) and shards
        them for tensor parallelism.
        """
        # with tensor parallelism the local model is only rank 0's shard
        model = self._local_model() if self.tensor_parallel_size == 1 else None
        if model is not None:
            model.load_weights(state_dict_items)
        elif hasattr(self.llm, "apply_model"):
            weights = [(name, t.detach().cpu()) for name, t in state_dict_items]

            def load(m: Any) -> None:  # returns None: nothing large comes back
                m.load_weights(weights)

            self.llm.apply_model(load)
        else:
            raise RuntimeError("cannot reach the vLLM model to load weights: no in-process "
                               "model and no LLM.apply_model in this vLLM version")
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()

    def _local_model(self) -> Any:
        engine = self.llm.llm_engine
        for path in ("model_executor.driver_worker.worker.model_runner.model",
                     "model_executor.driver_worker.model_runner.model",
                     "engine_core.engine_core.model_executor.driver_worker.worker.model_runner.model"):
            obj: Any = engine
            try:
                for attr in path.split("."):
                    obj = getattr(obj, attr)
            except AttributeError:
                continue
            if hasattr(obj, "load_weights"):
                return obj
        return None

    def sleep(self, level: int = 1) -> None:
        """Free GPU memory between rollouts (needs ``enable_sleep_mode=True``)."""
        self.llm.sleep(level=level)

    def wake_up(self) -> None:
        self.llm.wake_up()
