"""A deterministic token backend for agent-loop tests: it writes the demonstrator's turns.

It is a real :class:`TokenBackend` over the real tokenizer: prompts arrive as token
ids, replies leave as token ids ending with eos, so masks and continuations are
exercised exactly as with a model. The reply for each prompt is chosen by reading
the prompt back, which is what makes the loop's bookkeeping observable.
"""

from __future__ import annotations

from reagent.generation.base import Generation, SamplingParams, TokenBackend


class ScriptedBackend(TokenBackend):
    """``script(prompt_text, turn) -> reply text``; turn counts assistant turns so far."""

    def __init__(self, tokenizer, script):
        self.tokenizer = tokenizer
        self.script = script
        self.batch_sizes: list[int] = []

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        self.batch_sizes.append(len(prompts))
        out = []
        for i, ids in enumerate(prompts):
            limit = params.for_row(i, len(prompts)).max_new_tokens
            text = self.tokenizer.decode(ids)
            turn = text.count("<|im_start|>assistant") - 1
            reply = self.script(text, turn)
            reply_ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"]
            if len(reply_ids) > limit:
                out.append(Generation(text=self.tokenizer.decode(reply_ids[:limit]),
                                      token_ids=reply_ids[:limit], finish_reason="length"))
                continue
            ids_out = reply_ids + [self.tokenizer.convert_tokens_to_ids("<|im_end|>")]
            out.append(Generation(text=reply, token_ids=ids_out, finish_reason="stop"))
        return out
