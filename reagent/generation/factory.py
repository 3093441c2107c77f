"""Build a generation backend by name, for configs and CLIs (``backend: hf|vllm|openai``)."""

from __future__ import annotations

from typing import Any

from reagent.generation.base import ChatBackend, TokenBackend

BACKEND_KINDS = ("hf", "vllm", "openai")


def make_backend(kind: str, model: str | None = None, base_url: str | None = None,
                 **kwargs: Any) -> TokenBackend | ChatBackend:
    """``hf``/``vllm``: ``model`` is a local model directory; ``openai``: ``model`` is the
    served model name and ``base_url`` the endpoint (``http://host:port/v1``).
    Other keyword arguments go to the backend's constructor.

    Backends are imported here, on demand, so choosing ``openai`` never loads torch
    models and ``vllm`` is only imported when asked for.
    """
    if kind not in BACKEND_KINDS:
        raise ValueError(f"unknown generation backend kind={kind!r}; valid kinds: "
                         f"{', '.join(BACKEND_KINDS)}")
    if kind in ("hf", "vllm"):
        if base_url is not None:
            raise ValueError(f"kind={kind!r} runs the model locally; base_url={base_url!r} "
                             "is only for kind='openai'")
        if not model:
            raise ValueError(f"kind={kind!r} needs model= (a local model directory)")
        if kind == "hf":
            from reagent.generation.hf import HFBackend

            return HFBackend(model, **kwargs)
        from reagent.generation.vllm_backend import VLLMBackend

        return VLLMBackend(model, **kwargs)
    if not base_url or not model:
        raise ValueError(f"kind='openai' needs base_url= (e.g. http://127.0.0.1:8000/v1) and "
                         f"model= (the served model name); got base_url={base_url!r}, "
                         f"model={model!r}")
    from reagent.generation.openai_backend import OpenAIChatBackend

    return OpenAIChatBackend(base_url, model, **kwargs)
