"""The batched multi-turn agent loop: every rollout, judge datum and benchmark runs here.

Each turn, every live episode of the batch generates in the same backend call;
finished episodes drop out. The policy writes reasoning and ``<tool_call>`` blocks;
all calls of a turn (across the whole batch) run in parallel and come back as tool
messages. An episode ends on an answer (a turn without tool calls), on
``max_turns``, on its token budget, or on a backend error, and records which.

With a token backend the loop keeps token ids exactly as generated (token-in /
token-out) and a loss mask with 1 on generated tokens and 0 on prompt and tool
tokens, so the trainer never re-tokenises text. Tool results and the next generation
prompt are appended as the chat template renders them after a finished turn
(:func:`reagent.tokenization.encode_continuation`), so a template that rewrites
history (Qwen3 dropping old ``<think>`` blocks) never changes what the policy saw: every
turn's thinking stays in context as generated. Tool calls are parsed in the family's
format (``tool_format``: hermes ``<tool_call>`` or Llama 3 JSON, read from the
template by default). With a chat backend it keeps messages only (evaluation, teachers).

``max_tokens`` bounds the *response*: everything after the prompt, generated and
tool tokens alike (the verl convention). Each episode generates up to its own
remaining budget (``SamplingParams.row_max_new_tokens``) and samples from its own
stream (``row_seeds``, keyed by its id), so which episodes share a batch changes
neither an episode's length nor what it samples. The chat path, which has no tokenizer,
counts generated tokens only, estimated as characters / 4 where the server gives none.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from reagent.envs.base import Environment, initial_messages
from reagent.generation.base import ChatBackend, Generation, SamplingParams, TokenBackend
from reagent.records import Message, Task, ToolCall, Trajectory
from reagent.tokenization import (encode_continuation, encode_prompt, resolve_template_kwargs,
                                  to_template_messages)
from reagent.toolcalls import TOOL_FORMATS, assistant_text, split_assistant_text, tool_format_for
from reagent.tools.base import Tool, run_tool_call, tool_schema


@dataclass
class AgentConfig:
    """Episode limits and sampling for the agent loop."""

    max_turns: int = 6
    max_tokens: int = 1024
    max_new_tokens: int = 256  # per turn
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    tool_workers: int = 16
    # Passed to the chat template on every render (e.g. {"enable_thinking": False} for
    # Qwen3, {"date_string": "..."} for Llama 3.x); see reagent.tokenization.
    chat_template_kwargs: dict = field(default_factory=dict)
    tool_format: str = "auto"  # auto (from the chat template) | hermes | llama3_json

    def __post_init__(self):
        if self.tool_format not in ("auto", *TOOL_FORMATS):
            raise ValueError(f"tool_format must be auto, {' or '.join(TOOL_FORMATS)}; "
                             f"got {self.tool_format!r}")
        if not isinstance(self.chat_template_kwargs, dict):
            raise ValueError("chat_template_kwargs must be a mapping, got "
                             f"{type(self.chat_template_kwargs).__name__}")
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {self.max_turns}")
        if self.max_new_tokens < 1 or self.max_tokens < 1:
            raise ValueError(f"max_new_tokens ({self.max_new_tokens}) and max_tokens ({self.max_tokens}) "
                             "must be >= 1")


@dataclass
class EpisodeSpec:
    """What to run: a task, the prompt messages the policy starts from, and identity."""

    task: Task
    messages: list[Message]
    id: str
    stage: str = "initial"
    parent_id: str | None = None
    extra: dict = field(default_factory=dict)


class _Episode:
    def __init__(self, spec: EpisodeSpec, env: Environment):
        self.spec = spec
        self.tools: dict[str, Tool] = env.tools_for(spec.task)
        self.schemas = [tool_schema(t) for t in self.tools.values()] if env.tool_schemas_in_prompt else None
        self.messages = list(spec.messages)
        self.ids: list[int] = []
        self.mask: list[int] = []
        self.prompt_len = 0
        self.response_tokens = 0
        self.turns = 0
        self.stop_reason = ""
        self.final_answer: str | None = None
        self.error: str | None = None

    @property
    def done(self) -> bool:
        return bool(self.stop_reason)


class AgentLoop:
    """Runs batches of episodes of one environment with one backend."""

    def __init__(self, backend: TokenBackend | ChatBackend, env: Environment, config: AgentConfig,
                 policy_name: str = ""):
        self.backend, self.env, self.config = backend, env, config
        self.policy_name = policy_name
        self.tokenizer = getattr(backend, "tokenizer", None)
        if backend.supports_tokens and self.tokenizer is None:
            raise ValueError("a token backend needs a tokenizer for the chat template")
        self.tool_format = tool_format_for(self.tokenizer, config.tool_format)
        # resolved once: a template variable that would change by itself (Llama 3.2's date)
        # is pinned for the whole run and recorded on every trajectory
        self.template_kwargs = (resolve_template_kwargs(self.tokenizer, config.chat_template_kwargs)
                                if self.tokenizer is not None else dict(config.chat_template_kwargs))
        self._calls = 0  # advances the seed so every backend call samples differently

    def run(self, specs: list[EpisodeSpec], on_finish: Callable[[Trajectory], None] | None = None,
            more: Callable[[bool], list[EpisodeSpec] | None] | None = None) -> list[Trajectory]:
        """Run ``specs`` to the end; trajectories come back in order (``more``'s after).

        ``on_finish(traj)`` is called the moment an episode ends, while the rest of the
        batch still generates (the trainer sends it to an HTTP judge then). ``more(wait)``
        is asked before every turn for episodes to add to the running batch (Reagent-U
        revisions whose critique has arrived): it returns new specs (maybe none), or
        ``None`` once no more will come; with ``wait=True`` (nothing else is live) it may
        block until some arrive.
        """
        episodes = [self._start(s) for s in specs]
        done: dict[int, Trajectory] = {}
        with ThreadPoolExecutor(self.config.tool_workers) as pool:
            while True:
                live = [ep for ep in episodes if not ep.done]
                if more is not None:
                    new = more(not live)
                    if new is None:
                        more = None
                    else:
                        episodes += [self._start(s) for s in new]
                        live += episodes[len(episodes) - len(new):]
                if not self._any_rank_busy(bool(live) or more is not None):
                    break
                if not live and not self.backend.supports_tokens:
                    continue  # still waiting on ``more``
                gens = self._generate(live)
                pending = [(ep, self._take_turn(ep, gen)) for ep, gen in zip(live, gens)]
                self._run_tools([(ep, calls) for ep, calls in pending if calls], pool)
                for ep in live:
                    if ep.done and on_finish is not None:
                        done[id(ep)] = traj = self._finish(ep)
                        on_finish(traj)
        return [done.get(id(ep)) or self._finish(ep) for ep in episodes]

    def _start(self, spec: EpisodeSpec) -> _Episode:
        ep = _Episode(spec, self.env)
        if self.backend.supports_tokens:
            ep.ids = encode_prompt(self.tokenizer, ep.messages, tools=ep.schemas,
                                   template_kwargs=self.template_kwargs, tool_format=self.tool_format)
            ep.mask = [0] * len(ep.ids)
            ep.prompt_len = len(ep.ids)
        return ep

    def _any_rank_busy(self, local_busy: bool) -> bool:
        """ZeRO-3 token backends keep every rank generating until all ranks are done."""
        if self.backend.supports_tokens:
            return self.backend.any_rank_busy(local_busy)
        return local_busy

    def _sampling(self, live: list[_Episode]) -> SamplingParams:
        """Each episode generates up to its own remaining budget (never another's), from its
        own sampling stream (seeded by the loop's seed, the call and the episode id), so
        which episodes share a batch changes nothing an episode samples."""
        c = self.config
        limits = [min(c.max_new_tokens, max(c.max_tokens - ep.response_tokens, 1)) for ep in live]
        self._calls += 1
        call_seed = c.seed * 1_000_003 + self._calls
        seeds = [(call_seed * 1_000_033 + zlib.crc32(ep.spec.id.encode())) % 2**62 for ep in live]
        return SamplingParams(max_new_tokens=max(limits, default=1), row_max_new_tokens=limits,
                              temperature=c.temperature, top_p=c.top_p, top_k=c.top_k,
                              seed=call_seed, row_seeds=seeds)

    def _generate(self, live: list[_Episode]) -> list[Generation]:
        params = self._sampling(live)
        if not live:  # other ranks are still generating: step along with them
            self.backend.generate([], params)
            return []
        if self.backend.supports_tokens:
            return self.backend.generate([ep.ids for ep in live], params)
        convs = [to_template_messages(ep.messages, self.tool_format) for ep in live]
        return self.backend.chat(convs, params, tools=live[0].schemas)

    def _take_turn(self, ep: _Episode, gen: Generation) -> list[ToolCall]:
        """Record one generated turn; return the tool calls still to run."""
        ep.turns += 1
        text = gen.text
        if self.backend.supports_tokens:
            ep.ids += gen.token_ids
            ep.mask += [1] * len(gen.token_ids)
            ep.response_tokens += len(gen.token_ids)
        else:
            ep.response_tokens += len(gen.token_ids) or max(len(text) // 4, 1)
        if gen.finish_reason == "error":
            ep.stop_reason, ep.error = "error", gen.error or "generation failed"
            return []
        content, calls = split_assistant_text(text, self.tool_format)
        msg = Message(role="assistant", content=content, tool_calls=calls or None)
        if self.backend.supports_tokens and assistant_text(content, calls, self.tool_format) != text:
            msg.extra["generated_text"] = text  # re-tokenising reproduces what was generated
        ep.messages.append(msg)
        if gen.finish_reason == "length":
            ep.stop_reason = "max_tokens"
        elif not calls:
            ep.stop_reason = "answered"
            ep.final_answer = self.env.extract_answer(text)
        return calls

    def _run_tools(self, work: list[tuple[_Episode, list[ToolCall]]], pool: ThreadPoolExecutor) -> None:
        """All calls of all episodes in this turn run in parallel; results return in order."""
        flat = [(ep, call) for ep, calls in work for call in calls]
        results = list(pool.map(lambda item: run_tool_call(item[0].tools, item[1]), flat))
        by_episode: dict[int, list[Message]] = {}
        for (ep, call), result in zip(flat, results):
            by_episode.setdefault(id(ep), []).append(
                Message(role="tool", content=result, tool_call_id=call.id, name=call.name))
        for ep, _ in work:
            tool_msgs = by_episode[id(ep)]
            ep.messages += tool_msgs
            if ep.turns >= self.config.max_turns:
                ep.stop_reason = "max_turns"
                continue
            if self.backend.supports_tokens:
                cont = encode_continuation(self.tokenizer, tool_msgs, tools=ep.schemas,
                                           template_kwargs=self.template_kwargs,
                                           tool_format=self.tool_format)
                ep.ids += cont
                ep.mask += [0] * len(cont)
                ep.response_tokens += len(cont)
            if ep.response_tokens >= self.config.max_tokens:
                ep.stop_reason = "max_tokens"

    def _finish(self, ep: _Episode) -> Trajectory:
        spec = ep.spec
        truncated = ep.stop_reason in ("max_tokens", "max_turns")
        # No answer scores 0; a backend error has no outcome at all (never a silent 0).
        outcome = {"answered": None, "error": None}.get(ep.stop_reason, 0.0)
        if ep.stop_reason == "answered":
            outcome = self.env.outcome(spec.task, ep.final_answer)
        traj = Trajectory(id=spec.id, task_id=spec.task.id, messages=ep.messages, stage=spec.stage,
                          parent_id=spec.parent_id, final_answer=ep.final_answer, outcome=outcome,
                          policy=self.policy_name, stop_reason=ep.stop_reason, truncated=truncated,
                          extra=dict(spec.extra))
        if self.backend.supports_tokens:
            traj.token_ids, traj.loss_mask = ep.ids, ep.mask
            traj.extra["prompt_length"] = ep.prompt_len
        traj.extra["turns"] = ep.turns
        if self.template_kwargs:
            traj.extra["chat_template_kwargs"] = dict(self.template_kwargs)
        if ep.error:
            traj.extra["error"] = ep.error
        return traj


def specs_for(env: Environment, tasks: list[Task], n: int, stage: str = "initial") -> list[EpisodeSpec]:
    """``n`` episodes per task with stable ids ``{task_id}#{k}`` (what resume keys on)."""
    return [EpisodeSpec(task=t, messages=initial_messages(env, t), id=f"{t.id}#{k}", stage=stage)
            for t in tasks for k in range(n)]
