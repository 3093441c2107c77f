"""A deterministic token backend for agent-loop tests: it writes the demonstrator's turns.

It is a real :class:`TokenBackend` over the real tokenizer: prompts arrive as token
ids, replies leave as token ids ending with eos, so masks and continuations are
exercised exactly as with a model. The reply for each prompt is chosen by reading
the prompt back, which is what makes the loop's bookkeeping observable.
"""

from __future__ import annotations

from reagent.generation.base import Generation, SamplingParams, TokenBackend


class ScriptedBackend(TokenBackend):
    """``script(prompt_text, turn) -> reply text``; turn counts assistant turns so far.

    ``turn_marker`` (the assistant header) and ``end_token`` default to ChatML; pass
    Llama 3's (``<|start_header_id|>assistant<|end_header_id|>``, ``<|eot_id|>``) for it.
    """

    def __init__(self, tokenizer, script, turn_marker: str = "<|im_start|>assistant",
                 end_token: str = "<|im_end|>"):
        self.tokenizer = tokenizer
        self.script = script
        self.turn_marker, self.end_token = turn_marker, end_token
        self.batch_sizes: list[int] = []

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        self.batch_sizes.append(len(prompts))
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids)
            turn = text.count(self.turn_marker) - 1
            reply = self.script(text, turn)
            reply_ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"]
            if len(reply_ids) > params.max_new_tokens:
                out.append(Generation(text=self.tokenizer.decode(reply_ids[: params.max_new_tokens]),
                                      token_ids=reply_ids[: params.max_new_tokens], finish_reason="length"))
                continue
            ids_out = reply_ids + [self.tokenizer.convert_tokens_to_ids(self.end_token)]
            out.append(Generation(text=reply, token_ids=ids_out, finish_reason="stop"))
        return out


def split_reasoning(text: str, field: str = "reasoning_content") -> dict:
    """A reply as a reasoning server sends it: the ``<think>`` block's inside in ``field``
    (``reasoning_content`` for vLLM/SGLang, ``reasoning`` for others), the rest in ``content``."""
    head, sep, tail = text.partition("</think>")
    if not sep:
        return {"content": text}
    return {field: head.split("<think>", 1)[-1], "content": tail}
