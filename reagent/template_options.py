"""The chat-template options of every command that renders a model's chat template.

``chat_template_kwargs`` are extra variables for the template, passed to
``apply_chat_template`` on every render (``{"enable_thinking": false}`` for Qwen3; a
``date_string`` for Llama 3.2, which is otherwise pinned, see
:func:`reagent.tokenization.resolve_template_kwargs`) and, for a model behind an
OpenAI-compatible server, sent as the request's ``chat_template_kwargs`` (vLLM and
SGLang pass them to the template). ``tool_format`` is how the policy writes tool calls
(:mod:`reagent.toolcalls`). ``reagent train``, ``sft``, ``rollout`` and ``eval`` take both
for the policy; ``train-rrm``, ``judge`` and ``eval-rrm`` take ``chat_template_kwargs`` for
the judge's own template. One definition here, so every command documents and
validates them the same way.
"""

from __future__ import annotations

from typing import Any

from reagent.config import cfg
from reagent.toolcalls import TOOL_FORMATS


def chat_template_kwargs_field() -> Any:
    """The ``chat_template_kwargs`` config field (checked by :func:`check_template_options`)."""
    return cfg({}, help="passed to the chat template on every render, e.g. "
               '{"enable_thinking": false} for Qwen3 (JSON on the command line); sent to an '
               "OpenAI-compatible server as the request's chat_template_kwargs")


def judge_chat_template_kwargs_field() -> Any:
    """The ``judge_chat_template_kwargs`` field of a command that runs a policy and a judge."""
    return cfg({}, help="the judge's chat_template_kwargs (its own template, locally or sent "
               "to its server), as chat_template_kwargs are the policy's")


def tool_format_field() -> Any:
    """The ``tool_format`` config field (checked by :func:`check_template_options`)."""
    return cfg("auto", help="tool-call format: auto (from the chat template) | hermes "
               "(<tool_call> blocks, Qwen) | llama3_json (one JSON call per turn)")


def check_template_options(config: object, *kwargs_fields: str) -> None:
    """Raise ``ValueError`` naming the field and value when one of ``config``'s
    ``kwargs_fields`` (default: ``chat_template_kwargs``) is not a mapping with string keys,
    or its ``tool_format`` (if it has one) is not ``auto`` or a known format."""
    name = type(config).__name__
    for field in kwargs_fields or ("chat_template_kwargs",):
        kwargs = getattr(config, field)
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise ValueError(f"{name}.{field}={kwargs!r} must be a mapping of template variable "
                             'names to values, e.g. \'{"enable_thinking": false}\'')
    fmt = getattr(config, "tool_format", "auto")
    if fmt not in ("auto", *TOOL_FORMATS):
        raise ValueError(f"{name}.tool_format={fmt!r} is not valid; choose one of: "
                         f"{', '.join(('auto', *TOOL_FORMATS))}")


def server_extra_body(chat_template_kwargs: dict) -> dict | None:
    """The extra request body that hands ``chat_template_kwargs`` to a vLLM/SGLang server."""
    return {"chat_template_kwargs": dict(chat_template_kwargs)} if chat_template_kwargs else None
