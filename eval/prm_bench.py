"""Public process-reward benchmarks: ProcessBench and PRMBench loaders and metrics.

**ProcessBench** (Zheng et al. 2024): per split (gsm8k, math, olympiadbench,
omnimath) a JSON list (or JSONL) of ``{id, generator, problem, steps: [str],
final_answer_correct, label}``, ``label`` = index of the earliest wrong step, -1 if
none. A PRM predicts the earliest step whose value is below ``threshold`` (-1 if
none). Metrics per split: accuracy on erroneous samples (prediction == label),
accuracy on correct samples (prediction == -1) and their harmonic mean, the F1 the
paper reports.

**PRMBench** (Song et al. 2025): JSONL ``{idx, question, original_process: [str],
modified_process: [str], error_steps: [1-based int], classification, ...}``. Every
step of the modified process is a binary item: negative if its number is in
``error_steps``; the PRM calls a step positive when its value is >= ``threshold``.
PRMScore = 0.5 * F1 (positive class) + 0.5 * F1_neg (negative class), the paper's
w1 = w2 = 0.5, pooled over the steps of each ``classification`` (its split) and
over all steps (``overall``).

Loaders raise :class:`reagent.jsonl.RecordError` naming ``FILE:LINE`` (JSONL) or
``FILE[record N]`` (a JSON list) and the field.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from reagent.jsonl import RecordError

BENCHMARKS = ("processbench", "prmbench")


@dataclass
class PRMBenchItem:
    """One solution to score: its problem, steps and the benchmark's labels."""

    id: str
    split: str
    problem: str
    steps: list[str]
    label: int = -1  # processbench: earliest wrong step (0-based), -1 none
    error_steps: tuple[int, ...] = ()  # prmbench: 1-based wrong steps


def _records(path: str) -> list[tuple[str, object]]:
    """(where, object) for each record of a JSON list or a JSONL file."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordError(path, e.lineno, f"malformed JSON list: {e.msg}") from None
        return [(f"{path}[record {i}]", obj) for i, obj in enumerate(data)]
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}:{lineno}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise RecordError(path, lineno, f"malformed JSON: {e.msg} at column {e.colno}") from None
    return out


def _fail(where: str, reason: str) -> ValueError:
    return ValueError(f"{where}: {reason}")


def _steps(obj: dict, key: str, where: str) -> list[str]:
    steps = obj.get(key)
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise _fail(where, f"field '{key}' must be a non-empty list of strings")
    return steps


def load_processbench(path: str, split: str | None = None) -> list[PRMBenchItem]:
    """ProcessBench items; ``split`` defaults to the file's stem (gsm8k.json -> gsm8k)."""
    split = split or Path(path).stem
    items = []
    for where, obj in _records(path):
        if not isinstance(obj, dict):
            raise _fail(where, f"expected an object, got {type(obj).__name__}")
        steps = _steps(obj, "steps", where)
        label = obj.get("label")
        if not isinstance(label, int) or isinstance(label, bool) or not -1 <= label < len(steps):
            raise _fail(where, f"field 'label' must be -1 or a step index below {len(steps)}, got {label!r}")
        if not isinstance(obj.get("problem"), str):
            raise _fail(where, "field 'problem' must be a string")
        items.append(PRMBenchItem(str(obj.get("id", where)), split, obj["problem"], steps, label=label))
    return items


def load_prmbench(path: str) -> list[PRMBenchItem]:
    """PRMBench items: the modified process of each record, split by its classification."""
    items = []
    for where, obj in _records(path):
        if not isinstance(obj, dict):
            raise _fail(where, f"expected an object, got {type(obj).__name__}")
        steps = _steps(obj, "modified_process", where)
        errors = obj.get("error_steps")
        if not isinstance(errors, list) or not all(isinstance(e, int) and 1 <= e <= len(steps) for e in errors):
            raise _fail(where, f"field 'error_steps' must list step numbers 1..{len(steps)}, got {errors!r}")
        if not isinstance(obj.get("question"), str):
            raise _fail(where, "field 'question' must be a string")
        split = obj.get("classification")
        if not isinstance(split, str):
            raise _fail(where, "field 'classification' must be a string")
        items.append(PRMBenchItem(str(obj.get("idx", obj.get("id", where))), split, obj["question"], steps,
                                  error_steps=tuple(errors)))
    return items


def _harmonic(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def first_error(values: list[float], threshold: float) -> int:
    """Index of the earliest step valued below ``threshold``, -1 if none."""
    return next((i for i, v in enumerate(values) if v < threshold), -1)


def processbench_metrics(items: list[PRMBenchItem], values: list[list[float] | None], threshold: float) -> dict:
    """Per split and ``overall``: error_acc, correct_acc, f1 (harmonic mean), counts. Unscored items
    count as wrong predictions (a PRM that fails on an item does not skip it)."""
    by_split: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    for it, v in zip(items, values, strict=True):
        pred = first_error(v, threshold) if v is not None else None
        by_split[it.split].append((it.label, pred))
        by_split["overall"].append((it.label, pred))
    out = {}
    for split, pairs in by_split.items():
        err = [label == pred for label, pred in pairs if label != -1]
        ok = [pred == -1 for label, pred in pairs if label == -1]
        error_acc = sum(err) / len(err) if err else None
        correct_acc = sum(ok) / len(ok) if ok else None
        out[split] = {"n": len(pairs), "n_erroneous": len(err), "n_correct": len(ok), "error_acc": error_acc,
                      "correct_acc": correct_acc, "f1": _harmonic(error_acc, correct_acc),
                      "unscored": sum(p is None for _, p in pairs)}
    return out


def _f1(tp: int, fp: int, fn: int) -> float | None:
    return None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def prmbench_metrics(items: list[PRMBenchItem], values: list[list[float] | None], threshold: float) -> dict:
    """Per classification and ``overall``: f1, f1_neg, prm_score = 0.5*f1 + 0.5*f1_neg, accuracy."""
    counts: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for it, v in zip(items, values, strict=True):
        for k in range(len(it.steps)):
            truth = (k + 1) not in it.error_steps
            # An unscored solution's steps count as misclassified.
            pred = (v[k] >= threshold) if v is not None and k < len(v) else not truth
            counts[it.split].append((truth, pred))
            counts["overall"].append((truth, pred))
    out = {}
    for split, pairs in counts.items():
        tp = sum(t and p for t, p in pairs)
        tn = sum(not t and not p for t, p in pairs)
        fp = sum(not t and p for t, p in pairs)
        fn = sum(t and not p for t, p in pairs)
        f1, f1_neg = _f1(tp, fp, fn), _f1(tn, fn, fp)
        score = None if f1 is None or f1_neg is None else 0.5 * f1 + 0.5 * f1_neg
        out[split] = {"steps": len(pairs), "f1": f1, "f1_neg": f1_neg, "prm_score": score,
                      "accuracy": (tp + tn) / len(pairs) if pairs else None}
    return out
