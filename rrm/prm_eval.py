"""Held-out quality of a PRM, as pure functions over plain lists.

* ``mse``: step values against the labels' Q targets (what the promise loss fits);
* ``final_auroc``: does the value at the last step rank successful trajectories
  (outcome >= 0.5) above failed ones? (rank-based, ties count one half);
* ``mc_spearman``: step-level Spearman rank correlation of the values with
  Monte-Carlo Q targets of the same steps - the reference label quality of
  Choudhury (2025); only where such targets are given.
"""

from __future__ import annotations

from collections.abc import Sequence

from rrm.metrics import _average_ranks, auroc, correct, pearson


def spearman(pred: Sequence[float | None], target: Sequence[float | None]) -> float | None:
    """Spearman's rho: Pearson correlation of average ranks, over items where both exist."""
    pairs = [(float(p), float(t)) for p, t in zip(pred, target, strict=True) if p is not None and t is not None]
    if len(pairs) < 2:
        return None
    return pearson(_average_ranks([p for p, _ in pairs]), _average_ranks([t for _, t in pairs]))


def prm_report(values: Sequence[Sequence[float]], q_targets: Sequence[Sequence[float]],
               outcomes: Sequence[float | None], mc_targets: Sequence[Sequence[float] | None] | None = None
               ) -> dict:
    """``{n, steps, mse, final_auroc, mc_spearman, mc_steps}`` for per-trajectory step lists."""
    flat_v = [v for row in values for v in row]
    flat_q = [q for row in q_targets for q in row]
    if len(flat_v) != len(flat_q):
        raise ValueError(f"prm_report: {len(flat_v)} values for {len(flat_q)} targets")
    mse = sum((v - q) ** 2 for v, q in zip(flat_v, flat_q)) / len(flat_v) if flat_v else None
    finals = [row[-1] if row else None for row in values]
    report = {"n": len(values), "steps": len(flat_v), "mse": mse,
              "final_auroc": auroc(finals, [correct(o) for o in outcomes])}
    if mc_targets is not None:
        pv, pt = [], []
        for row, mc in zip(values, mc_targets):
            if mc is not None and len(mc) == len(row):
                pv += list(row)
                pt += list(mc)
        report["mc_spearman"] = spearman(pv, pt)
        report["mc_steps"] = len(pt)
    return report
