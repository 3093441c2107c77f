"""Judges: score trajectories with a generative reward model, locally or over HTTP.

One :class:`Judge` turns items (trajectories or judge examples) into the judge's chat
messages (:mod:`rrm.prompt`), generates greedily, and parses each output
(:mod:`rrm.parse`). Two ways to generate:

* :class:`LocalJudge`: a local model directory (or an in-memory model, e.g. during SFT
  evaluation) through :class:`~reagent.generation.hf.HFBackend`, batched;
* :class:`HTTPJudge`: any OpenAI-compatible endpoint (``vllm serve CKPT``,
  ``reagent serve``, a hosted API) through
  :class:`~reagent.generation.openai_backend.OpenAIChatBackend`, which owns the bounded
  concurrency, timeouts and retries with backoff.

Verdict limits fit verdicts. ``max_new_tokens`` (512 by default) holds a full
``<think>``/``<critique>``/``<score>`` verdict of a 7B judge with room to spare (the
quickstart's judge needs under 128); it is also the cap that cuts a runaway verdict
early. Greedy decoding is deterministic, so repeating a call that ran out of tokens gives
the same truncated text; a longer retry helps only a verdict that was close to
finishing. So a ``truncated`` output is retried once at ``retry_max_new_tokens`` (2x)
only when its analysis was closed (``</think>`` written: it was in the critique or the
score) and its tail is not a loop; a verdict truncated inside ``<think>``, or whose tail
repeats one short span over and over, is a **runaway**: it stays ``truncated`` with
``extra["runaway"]`` saying which, and costs no retry. (On 160 quickstart trajectories
the 6% runaway verdicts had used 77% of all judge tokens under the old 1,024 + 2,048
rule, and none was rescued by the retry.) A judge that still has nothing returns a
Judgment with status ``failed`` (or the parse status) and ``score=None`` -- never a
silent 0.

Speed: a :class:`LocalJudge` prefills the system prompt that starts every judge prompt
once per call and reads its keys/values once per decode step for the whole batch
(``HFBackend(prefix_cache=True)``, :mod:`reagent.generation.shared_prefix`); identical
prompts are judged once. ``reagent serve`` does the same for the batches it forms; for an
HTTP judge served by vLLM, ``vllm serve CKPT --enable-prefix-caching`` shares the prefix
across requests (the default in vLLM's V1 engine).
What to do with such an item is the caller's choice per run, see
:func:`apply_failure_policy`: drop it, fall back to the outcome reward alone, or stop.

:class:`RulesJudge` is the oracle: the toy ledger task's rules checker
(:mod:`reagent.envs.toy_checker`) behind the same ``score`` interface, in process, chosen
with the reserved judge name ``rules`` (``judge_model=rules``). It is what the trained judge
learns to imitate, so a policy trained against it shows what a perfect judge would give.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reagent.generation.base import Generation, SamplingParams
from reagent.records import Judgment
from rrm.parse import FAILED, TRUNCATED, failed_judgment, is_scored, parse_judgment
from rrm.prompt import build_judge_messages

log = logging.getLogger(__name__)

# conversations, params -> one Generation per conversation (finish_reason "error" = failed)
GenerateFn = Callable[[list[list[dict]], SamplingParams], list[Generation]]


class Judge:
    """Scores items with a generate function; see the module docstring.

    ``score`` accepts :class:`~reagent.records.Trajectory`, :class:`JudgeExample`,
    message lists or rendered text, and returns one :class:`Judgment` per item, in
    order. ``stats`` counts statuses over the judge's lifetime. ``score`` may be called
    from several threads at once (the trainer's overlapped judging does). ``remote``: the
    judge runs elsewhere (HTTP), so calling it overlaps with local generation.
    """

    remote = False

    def __init__(self, generate: GenerateFn, model: str, max_new_tokens: int = 512,
                 retry_max_new_tokens: int | None = None, max_chars: int | None = 24000):
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self._generate = generate
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.retry_max_new_tokens = retry_max_new_tokens or 2 * max_new_tokens
        self.max_chars = max_chars
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()

    def params(self, max_new_tokens: int) -> SamplingParams:
        # Greedy; "</score>" ends the verdict, so a model that rambles on costs nothing.
        return SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0,
                              stop=["</score>"])

    def score(self, items: Sequence[Any]) -> list[Judgment]:
        """One Judgment per item; failures have ``score=None`` and a non-``ok`` status."""
        return self.score_messages(
            [build_judge_messages(it, max_chars=self.max_chars) for it in items])

    def score_messages(self, conversations: list[list[dict]]) -> list[Judgment]:
        """Judge ready-made chat conversations (system + user messages)."""
        if not conversations:
            return []
        judgments = self._run(conversations, self.max_new_tokens)
        retry = []
        for i, j in enumerate(judgments):
            if j.status != TRUNCATED:
                continue
            why = runaway(j.extra.get("raw", ""))
            if why:
                j.extra["runaway"] = why
            else:
                retry.append(i)
        if retry and self.retry_max_new_tokens > self.max_new_tokens:
            again = self._run([conversations[i] for i in retry], self.retry_max_new_tokens)
            for i, j in zip(retry, again):
                j.extra["retried"] = "truncated"
                judgments[i] = j
        with self._lock:
            self.stats.update(j.status for j in judgments)
        for j in judgments:
            if not is_scored(j):
                log.warning("judge %s: %s (%s)", self.model, j.status, j.extra.get("error", ""))
        return judgments

    def _run(self, conversations: list[list[dict]], max_new_tokens: int) -> list[Judgment]:
        try:
            gens = self._generate(conversations, self.params(max_new_tokens))
        except Exception as e:  # noqa: BLE001 - the backend gave up (after its own retries)
            log.error("judge %s: generation failed for %d items: %r", self.model,
                      len(conversations), e)
            return [failed_judgment(f"{type(e).__name__}: {e}", self.model) for _ in conversations]
        if len(gens) != len(conversations):
            raise RuntimeError(f"backend returned {len(gens)} generations "
                               f"for {len(conversations)} conversations")
        out = []
        for g in gens:
            if g.finish_reason == "error":
                error = getattr(g, "error", None) or g.text or "backend error"
                out.append(failed_judgment(str(error), self.model))
            else:
                out.append(parse_judgment(reopen_think(g.text), g.finish_reason, model=self.model))
        return out


def reopen_think(text: str | None) -> str | None:
    """The verdict with its ``<think>`` opening restored when the chat template wrote it.

    QwQ/DeepSeek-R1-style templates end the generation prompt with ``<think>\n``, so the
    model's text starts inside the block (``analysis</think><critique>...``) and would
    parse as ``missing_blocks``. Text that closes a think block it never opened gets
    the opening back; anything else is unchanged.
    """
    if text and "</think>" in text and "<think>" not in text.split("</think>", 1)[0]:
        return "<think>" + text
    return text


def runaway(text: str) -> str | None:
    """Why a truncated verdict would not finish with more tokens, or None if it might.

    ``"think"``: cut inside the analysis (no ``</think>`` yet): the verdict has the
    critique and score still to write, and greedy decoding that rambled this far rarely
    stops. ``"repetition"``: the tail repeats one span of at most 64 characters over at
    least 192 characters (a decoding loop).
    """
    if "</think>" not in text:
        return "think"
    tail = text[-256:]
    for period in range(1, 65):
        span = max(3 * period, 192)
        if len(tail) >= span + period and all(
                tail[k] == tail[k - period] for k in range(len(tail) - span, len(tail))):
            return "repetition"
    return None


class LocalJudge(Judge):
    """A judge from a local model directory, or an in-memory model plus tokenizer.

    Prompts go through the tokenizer's chat template (with ``template_kwargs``, e.g.
    ``{"enable_thinking": False}``) and are generated in batches of
    ``batch_size`` (left-padded, greedy) by :class:`HFBackend`, the shared system prompt
    prefilled once per call (its KV cache copied into each batch).
    """

    def __init__(self, model: str | Path | Any, tokenizer: Any = None, *,
                 batch_size: int = 16, device: str = "auto", dtype: str = "auto",
                 model_name: str | None = None, template_kwargs: dict | None = None, **kwargs):
        from reagent.generation.hf import HFBackend
        from reagent.tokenization import resolve_template_kwargs

        self.backend = HFBackend(model, tokenizer=tokenizer, device=device, dtype=dtype,
                                 batch_size=batch_size, prefix_cache=True)
        # resolved once, so a clock-reading template renders the same all run
        self.template_kwargs = resolve_template_kwargs(self.backend.tokenizer, template_kwargs)
        if model_name is None:
            model_name = (Path(model).name if isinstance(model, (str, Path))
                          else getattr(getattr(model, "config", None), "_name_or_path", "") or "local")
        super().__init__(self._generate_local, model_name, **kwargs)

    def _generate_local(self, conversations: list[list[dict]],
                        params: SamplingParams) -> list[Generation]:
        from reagent.tokenization import encode_prompt

        prompts = [encode_prompt(self.backend.tokenizer, c, template_kwargs=self.template_kwargs)
                   for c in conversations]
        return self.backend.generate(prompts, params)


class HTTPJudge(Judge):
    """A judge behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``base_url`` is as OpenAI clients take it (``http://host:port/v1``). ``model`` is the
    served model name; when omitted, the server's first model from ``/v1/models`` is
    used. Concurrency, timeouts and retries with backoff are the backend's; a request
    that still fails becomes a ``failed`` judgment. ``template_kwargs`` go to the server
    as each request's ``chat_template_kwargs`` (vLLM, SGLang).
    """

    remote = True

    def __init__(self, base_url: str, model: str | None = None, *,
                 api_key_env: str | None = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout: float = 120.0, max_retries: int = 3, backoff_s: float = 1.0,
                 template_kwargs: dict | None = None, **kwargs):
        from reagent.generation.openai_backend import OpenAIChatBackend
        from reagent.template_options import server_extra_body

        self.backend = OpenAIChatBackend(base_url, model or "", api_key_env=api_key_env,
                                         concurrency=concurrency, timeout=timeout,
                                         max_retries=max_retries, backoff_s=backoff_s,
                                         extra_body=server_extra_body(template_kwargs or {}))
        if not model:
            self.backend.model = model = served_model(self.backend.client)
        super().__init__(self.backend.chat, model, **kwargs)

    def close(self) -> None:
        self.backend.close()


RULES = "rules"  # the reserved judge name of the oracle (not a model directory)


class RulesJudge:
    """The toy task's rules checker as a judge (the oracle; see the module docstring).

    ``tasks`` are the tasks whose episodes it will see (it reads each task's ledger
    metadata by the trajectory's ``task_id``, never the reference answer). An item that is
    not a trajectory of a known toy task gets a ``failed`` judgment, like any judge that
    cannot score. Same ``score``/``stats``/``model`` surface as :class:`Judge`.
    """

    def __init__(self, tasks: Sequence[Any]):
        self.model = RULES
        self.tasks = {t.id: t for t in tasks}
        self.stats: Counter[str] = Counter()

    def score(self, items: Sequence[Any]) -> list[Judgment]:
        from reagent.envs.toy_checker import rules_judgment

        out = []
        for it in items:
            task = self.tasks.get(getattr(it, "task_id", None))
            if task is None or "asked" not in task.meta:
                what = f"task {getattr(it, 'task_id', None)!r}" if hasattr(it, "task_id") else type(it).__name__
                out.append(failed_judgment(f"the rules judge knows no toy task for {what}", self.model))
            else:
                out.append(rules_judgment(task, it))
            self.stats[out[-1].status] += 1
        return out


def served_model(client: Any) -> str:
    """The first model an OpenAI-compatible server lists (``vllm serve`` serves one).

    Any failure to read the list (HTTP 500, refused connection, a body that is not a model
    list) is a ``ValueError`` saying so, which the commands print as an error message.
    """
    try:
        models = client.models.list().data
    except Exception as e:  # noqa: BLE001 - openai raises many kinds; all mean the same here
        raise ValueError(f"cannot read the served model from {client.base_url}models "
                         f"({type(e).__name__}: {str(e)[:300]}); check the URL or pass the "
                         "served model name explicitly") from None
    if not models:
        raise ValueError("the server lists no models; pass the model name explicitly")
    return models[0].id


def make_judge(model: str | None = None, base_url: str | None = None, *,
               served_model: str | None = None, batch_size: int = 16, device: str = "auto",
               dtype: str = "auto", concurrency: int = 8, timeout: float = 120.0,
               max_retries: int = 3, backoff_s: float = 1.0, tasks: Sequence[Any] | None = None,
               template_kwargs: dict | None = None, **judge_kwargs) -> Judge | RulesJudge:
    """A :class:`LocalJudge` for ``model`` (a directory) or an :class:`HTTPJudge` for
    ``base_url``: exactly one of the two. ``template_kwargs`` go to the judge's chat
    template (locally, or to the server); ``judge_kwargs`` go to :class:`Judge`.
    ``model="rules"`` is the oracle :class:`RulesJudge` over ``tasks``."""
    if bool(model) == bool(base_url):
        raise ValueError(f"give exactly one of model (a local directory) and base_url "
                         f"(an OpenAI-compatible endpoint); got model={model!r}, "
                         f"base_url={base_url!r}")
    if model == RULES:
        if tasks is None:
            raise ValueError("the rules judge (model='rules') needs the toy tasks it will judge")
        return RulesJudge(tasks)
    if model:
        return LocalJudge(model, batch_size=batch_size, device=device, dtype=dtype,
                          model_name=served_model or str(model), template_kwargs=template_kwargs,
                          **judge_kwargs)
    return HTTPJudge(base_url, served_model, concurrency=concurrency, timeout=timeout,
                     max_retries=max_retries, backoff_s=backoff_s, template_kwargs=template_kwargs,
                     **judge_kwargs)


# ---------------------------------------------------------------------------------------
# What to do when the judge could not score an item: the caller's choice, per run.


class FailurePolicy(str, enum.Enum):
    """``drop``: leave the sample out; ``outcome_only``: keep it, reward = outcome alone;
    ``stop``: raise :class:`JudgeFailure`."""

    DROP = "drop"
    OUTCOME_ONLY = "outcome_only"
    STOP = "stop"

    @classmethod
    def parse(cls, name: str | FailurePolicy) -> FailurePolicy:
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(p.value for p in cls)
            raise ValueError(f"on_failure={name!r} is not a failure policy; use one of: {valid}") from None


class JudgeFailure(RuntimeError):
    """The judge failed on an item and the run's policy is ``stop``."""


@dataclass
class FailureCounter:
    """Judged and failed counts, with failures by status, for logs and metrics."""

    judged: int = 0
    failed: int = 0
    by_status: Counter = field(default_factory=Counter)

    def add(self, judgments: Sequence[Judgment]) -> int:
        """Count a batch; returns how many in it failed."""
        failed = [j for j in judgments if not is_scored(j)]
        self.judged += len(judgments)
        self.failed += len(failed)
        self.by_status.update(j.status for j in failed)
        return len(failed)

    @property
    def rate(self) -> float:
        return self.failed / self.judged if self.judged else 0.0

    def metrics(self, prefix: str = "judge/") -> dict[str, float]:
        out = {f"{prefix}judged": self.judged, f"{prefix}failed": self.failed,
               f"{prefix}failure_rate": self.rate}
        out.update({f"{prefix}failed_{k}": v for k, v in sorted(self.by_status.items())})
        return out

    def summary(self) -> str:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_status.items()))
        return f"judged {self.judged}, failed {self.failed}" + (f" ({detail})" if detail else "")


def apply_failure_policy(judgments: Sequence[Judgment], policy: FailurePolicy | str,
                         counter: FailureCounter | None = None) -> tuple[list[float | None], list[bool]]:
    """(scores, keep) per judgment under ``policy``; failures are counted and logged.

    A scored item gives (score, True). A failed one gives (None, False) under ``drop``
    and (None, True) under ``outcome_only`` -- the caller then rewards it with the
    outcome alone; under ``stop`` it raises :class:`JudgeFailure`.
    """
    policy = FailurePolicy.parse(policy)
    counter = counter if counter is not None else FailureCounter()
    n_failed = counter.add(judgments)
    if n_failed:
        first = next(j for j in judgments if not is_scored(j))
        msg = (f"judge failed on {n_failed}/{len(judgments)} items "
               f"(first: {first.status}: {first.extra.get('error', '')}); {counter.summary()}")
        if policy is FailurePolicy.STOP:
            raise JudgeFailure(msg)
        log.warning("%s; policy %s", msg, policy.value)
    scores = [j.score if is_scored(j) else None for j in judgments]
    keep = [s is not None or policy is FailurePolicy.OUTCOME_ONLY for s in scores]
    return scores, keep


__all__ = ["FAILED", "FailureCounter", "FailurePolicy", "HTTPJudge", "Judge", "JudgeFailure",
           "LocalJudge", "RULES", "RulesJudge", "apply_failure_policy", "make_judge", "runaway"]
