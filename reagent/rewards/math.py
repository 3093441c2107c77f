"""Math outcome reward: the last ``\\boxed{}`` answer, checked symbolically with math-verify.

Why these choices:

* Only the **last** box counts, and only outside the ``<think>`` block: a model that
  boxes several candidates while reasoning is graded on the one it commits to, and
  a completion cut off inside its reasoning has not answered at all.
* Equivalence is math-verify's (``parse`` then ``verify``), so ``\\frac{1}{2}`` equals
  ``0.5`` and ``\\left( 3, \\frac{\\pi}{2} \\right)`` equals ``(3,\\pi/2)``; string
  matching would mark those wrong and teach the policy a formatting habit instead.
* math-verify can spend unbounded time on huge expressions (``9^{9^{9^9}}``). Its own
  timeouts use ``signal.alarm``, which works only on the main thread, so off the main
  thread (a judge server, a thread pool) the check runs in a spawned worker process
  that is killed if it overruns. A timed-out check scores 0.0, not None: the
  completion's own expression caused it, and None would let a policy dodge the
  penalty by writing unverifiable answers.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import re
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


def strip_think(text: str) -> str:
    """The text after the reasoning block.

    ``</think>`` without ``<think>`` happens when the chat template put the opening tag
    in the prompt (Qwen3); an opening tag that is never closed means the completion
    was truncated mid-reasoning, so nothing outside it is an answer.
    """
    if _THINK_CLOSE in text:
        return text.rsplit(_THINK_CLOSE, 1)[1]
    if _THINK_OPEN in text:
        return text.split(_THINK_OPEN, 1)[0]
    return text


def _braced(text: str, start: int) -> str | None:
    """Content of the ``{...}`` group opening at ``text[start]``; None if never closed.

    ``\\{`` and ``\\}`` are literal braces in LaTeX and do not open or close groups.
    """
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return None


def extract_boxed(text: str | None) -> str | None:
    """The content of the last ``\\boxed{...}``/``\\fbox{...}``/``\\boxed 5`` outside ``<think>``.

    Returns None when there is no box or the last box is cut off (unbalanced braces):
    a truncated answer is not an answer.
    """
    if not text:
        return None
    text = strip_think(text)
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    rest_at = matches[-1].end()
    rest = text[rest_at:]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        content = _braced(text, rest_at + (len(rest) - len(stripped)))
        if content is None or not content.strip():
            return None  # cut off, or an empty box: no answer either way
        return content.strip()
    if rest[:1].isspace():  # "\boxed 5": the argument is the next token
        token = re.match(r"\s*([^\s$]+)", rest)
        if token:
            return token.group(1).rstrip(".,;") or None
    return None


def gsm8k_reference(solution: str) -> str:
    """The final answer of a GSM8K rationale: the text after ``####`` without thousands commas.

    Raises ValueError when there is no ``####`` line, so a malformed reference is
    reported rather than scored against the whole rationale.
    """
    if "####" not in solution:
        raise ValueError("GSM8K answer has no '#### <number>' line")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def _as_latex(s: str) -> str:
    """Wrap a bare answer so math-verify's LaTeX extractor sees it as one expression."""
    return s if ("\\boxed" in s or "$" in s) else f"\\boxed{{{s}}}"


@functools.lru_cache(maxsize=8192)
def _parse(s: str, timeout_s: int) -> list:
    from math_verify import parse

    return parse(_as_latex(s), parsing_timeout=timeout_s)


def _equal_here(prediction: str, reference: str, timeout_s: int) -> bool:
    """math-verify check on this thread (must be the main thread when timeouts are on)."""
    from math_verify import verify

    gold = _parse(reference, timeout_s)
    pred = _parse(prediction, timeout_s)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=timeout_s))


_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # spawn, not fork: forking a process that holds threads (and maybe CUDA) is unsafe.
            ctx = multiprocessing.get_context("spawn")
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
        return _pool


def _kill_pool() -> None:
    """Kill a worker stuck in uninterruptible C code (big-integer arithmetic) and start afresh."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def math_equal(prediction: Any, reference: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether ``prediction`` is mathematically equivalent to ``reference`` (no box extraction).

    Both are answer strings (LaTeX or plain); numbers are converted with ``str``.
    ``timeout_s`` bounds each math-verify parse/compare step.
    """
    if prediction is None or reference is None:
        return False
    prediction, reference = str(prediction).strip(), str(reference).strip()
    if not prediction or not reference:
        return False
    if prediction.replace(" ", "") == reference.replace(" ", ""):
        return True
    timeout_s = max(1, round(timeout_s))  # signal.alarm takes whole seconds
    if threading.current_thread() is threading.main_thread():
        try:
            return _equal_here(prediction, reference, timeout_s)
        except Exception as e:  # noqa: BLE001 - math-verify raises on odd inputs despite raise_on_error=False
            logger.debug("math-verify failed on %r vs %r: %s", prediction, reference, e)
            return False
    future = _get_pool().submit(_equal_here, prediction, reference, timeout_s)
    try:
        # Parse twice and compare: each step has its own alarm in the worker; this is the backstop.
        return bool(future.result(timeout=4 * timeout_s + 30))
    except FutureTimeout:
        logger.warning("math check overran %ss; killing the worker: %.80r", timeout_s, prediction)
        _kill_pool()
        return False
    except Exception as e:  # noqa: BLE001 - a crashed worker must not crash training
        logger.debug("math-verify worker failed on %r vs %r: %s", prediction, reference, e)
        return False


def math_reward(completion: str, reference: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> float:
    """1.0 if the completion's last boxed answer equals ``reference``; 0.0 otherwise or unboxed.

    A list reference holds equivalent forms; matching any one is enough.
    """
    boxed = extract_boxed(completion)
    if boxed is None:
        return 0.0
    refs = reference if isinstance(reference, (list, tuple)) else [reference]
    return 1.0 if any(math_equal(boxed, r, timeout_s) for r in refs) else 0.0


def math_reward_fn(
    prompts: list, completions: list[str], answer: list, **fields: Any
) -> list[float | None]:
    """The reward-function form ``(prompts, completions, **fields) -> list`` of :func:`math_reward`.

    ``answer`` holds one reference per completion (a task's ``answer`` field).
    """
    if len(answer) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(answer)} answers")
    return [math_reward(c, a) for c, a in zip(completions, answer)]
