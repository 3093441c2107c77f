"""Answer checking by an LLM over any OpenAI-compatible chat endpoint.

Open-ended benchmarks (WebWalkerQA, HLE, xbench, FRAMES, GAIA after its normaliser)
have answers no string rule can match ("funded by EU4Health, started 1 Sep 2022, 18
months"), so a model reads question, reference and prediction and replies with a
verdict. The prompt is ``prompts/answer_check.txt``; the reply must end with
``Verdict: CORRECT`` or ``Verdict: INCORRECT``.

A judge call that fails (network, 5xx, unparseable reply) yields
``verdict="could_not_judge"`` with ``score=None``, never a silent 0: a benchmark
number computed with failed judgements counted as wrong answers would be wrong
without anyone knowing. Transient failures (connection errors, timeouts, 408, 429,
5xx) are retried with exponential backoff; a 4xx that is not transient is not.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from reagent.http_deadline import deadline_client

PROMPT_FILE = Path(__file__).parent / "prompts" / "answer_check.txt"
VERDICTS = ("correct", "incorrect", "could_not_judge")
_RETRY_STATUS = frozenset({408, 409, 425, 429})
_VERDICT_RE = re.compile(r"verdict\W{0,5}(INCORRECT|CORRECT)\b", re.IGNORECASE)
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)


@lru_cache(maxsize=4)
def _template(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def _format_reference(reference: Any) -> str:
    if isinstance(reference, (list, tuple)):
        refs = [str(r) for r in reference if r is not None]
        if len(refs) == 1:
            return refs[0]
        return "any of the following (matching one is enough):\n" + "\n".join(
            f"- {r}" for r in refs
        )
    return "" if reference is None else str(reference)


def build_prompt(
    question: str, prediction: str, reference: Any, template: str | None = None
) -> str:
    """The judge's user message. Placeholders are replaced literally, so LaTeX braces are safe."""
    text = template if template is not None else _template(str(PROMPT_FILE))
    return (
        text.replace("{question}", str(question).strip())
        .replace("{reference}", _format_reference(reference).strip())
        .replace("{prediction}", str(prediction).strip())
    )


def parse_verdict(reply: str | None) -> str | None:
    """``"correct"``/``"incorrect"`` from the judge's reply, or None if it gave no verdict.

    The last ``Verdict: X`` wins (a judge may quote the format while reasoning); a
    reply whose last line is just CORRECT or INCORRECT is accepted too. Reasoning in
    ``<think>`` blocks is ignored.
    """
    if not reply:
        return None
    text = _THINK_RE.sub("", reply)
    found = _VERDICT_RE.findall(text)
    if found:
        return found[-1].lower()
    lines = [ln.strip(" *_`'\".:") for ln in text.strip().splitlines() if ln.strip()]
    if lines and lines[-1].upper() in ("CORRECT", "INCORRECT"):
        return lines[-1].lower()
    return None


@dataclass
class AnswerCheck:
    """One judgement. ``score`` is 1.0/0.0, or None exactly when the verdict is could_not_judge."""

    verdict: str
    score: float | None
    explanation: str = ""  # the judge's reply text (or why no judgement was made)
    error: str | None = None
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")


class LLMAnswerChecker:
    """Ask a chat model whether a predicted answer matches the reference.

    Args:
        base_url: the OpenAI-style API root including ``/v1`` (as for the ``openai``
            client), e.g. ``http://127.0.0.1:8000/v1``; requests go to
            ``{base_url}/chat/completions``.
        model: the model name the server expects.
        api_key_env: name of the environment variable holding the API key, or None for
            servers without auth (local vLLM/SGLang). Read at construction, so a missing
            key fails at once rather than after the first batch.
        max_retries: retries after the first attempt for transient failures.
        timeout: seconds per HTTP request.
        concurrency: threads used by :meth:`check_batch`.
        backoff_s: first retry delay; doubles each retry (with jitter), capped at
            ``max_backoff_s``. A server's ``Retry-After`` is honoured up to the cap.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        max_retries: int = 3,
        timeout: float = 60.0,
        concurrency: int = 8,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_tokens: int = 512,
        temperature: float = 0.0,
        prompt_file: str | os.PathLike = PROMPT_FILE,
    ):
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(
                    f"api_key_env={api_key_env!r} but that environment variable is not set; "
                    "export it or pass api_key_env=None for a server without auth"
                )
            headers["Authorization"] = f"Bearer {key}"
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.template = Path(prompt_file).read_text(encoding="utf-8")
        self._client = deadline_client(timeout, headers=headers)  # timeout: end to end

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LLMAnswerChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff_s)
            except ValueError:
                pass
        base = min(self.backoff_s * 2**attempt, self.max_backoff_s)
        return base * (0.5 + random.random() / 2)

    def _request(self, prompt: str) -> tuple[str | None, str | None, int]:
        """POST with retries. Returns (reply, error, attempts); reply or error is None."""
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                resp = self._client.post(self.url, json=body)
            except httpx.HTTPError as e:  # connection refused, timeouts, protocol errors
                error = f"{type(e).__name__}: {e}"
            else:
                if resp.status_code == 200:
                    try:
                        content = resp.json()["choices"][0]["message"]["content"]
                    except (ValueError, KeyError, IndexError, TypeError):
                        error = f"malformed response body: {resp.text[:200]!r}"
                    else:
                        if isinstance(content, str) and content.strip():
                            return content, None, attempt + 1
                        error = "empty reply from judge"
                else:
                    error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    retryable = resp.status_code >= 500 or resp.status_code in _RETRY_STATUS
                    if not retryable:
                        return None, error, attempt + 1
                    retry_after = resp.headers.get("retry-after")
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, retry_after))
        return None, error, self.max_retries + 1

    def check(self, question: str, prediction: Any, reference: Any) -> AnswerCheck:
        """Judge one prediction. An empty prediction is incorrect without asking the model."""
        if prediction is None or not str(prediction).strip():
            return AnswerCheck("incorrect", 0.0, explanation="empty prediction", attempts=0)
        prompt = build_prompt(question, str(prediction), reference, self.template)
        reply, error, attempts = self._request(prompt)
        if reply is None:
            return AnswerCheck("could_not_judge", None, error=error, attempts=attempts)
        verdict = parse_verdict(reply)
        if verdict is None:
            return AnswerCheck(
                "could_not_judge",
                None,
                explanation=reply,
                error="no verdict in reply",
                attempts=attempts,
            )
        return AnswerCheck(verdict, 1.0 if verdict == "correct" else 0.0, reply, None, attempts)

    def check_batch(
        self, questions: Sequence[str], predictions: Sequence[Any], references: Sequence[Any]
    ) -> list[AnswerCheck]:
        """Judge many predictions with at most ``concurrency`` requests in flight; order is kept."""
        if not len(questions) == len(predictions) == len(references):
            raise ValueError(
                f"lengths differ: {len(questions)} questions, {len(predictions)} predictions, "
                f"{len(references)} references"
            )
        if not questions:
            return []
        workers = min(self.concurrency, len(questions))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.check, questions, predictions, references))

    def scores(
        self, questions: Sequence[str], predictions: Sequence[Any], references: Sequence[Any]
    ) -> list[float | None]:
        """Just the scores of :meth:`check_batch` (None where the judge could not judge)."""
        return [r.score for r in self.check_batch(questions, predictions, references)]
