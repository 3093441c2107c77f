"""A training run's dashboard: every numeric series of ``metrics.jsonl`` as an inline SVG chart.

Whatever keys the trainer logged are drawn (reward, accuracy, judge–outcome
correlation, groups dropped, judge failures, KL, entropy, lengths, timings), grouped
by their slash prefix (``reward/…``, ``timing_s/…``) the way verl names them, so the
page needs no change when a trainer logs a new key. A step with no value (``null``,
logged for a quantity that could not be computed) leaves a gap, never a zero. The
saved rollouts (``rollouts/step-NNNNNN-rankR.jsonl``) become one viewer page, linked
per step, and the same curves are written as a PNG for reports.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from reagent.view.items import LoadReport, iter_json, load_items
from reagent.view.page import asset, write_page

SKIP_KEYS = ("step", "time")


def read_metrics(path: Path, report: LoadReport) -> list[dict]:
    """The lines of ``metrics.jsonl`` that are JSON objects with a numeric ``step``; others are counted."""
    rows = []
    for src, row in iter_json(path, report):
        if not isinstance(row, dict) or not isinstance(row.get("step"), (int, float)):
            report.skipped.append(f"{src}: no numeric 'step'")
            continue
        rows.append(row)
    return rows


def series(rows: list[dict]) -> dict[str, list[tuple[float, float | None]]]:
    """key -> [(step, value or None)] for every key that has at least one finite number."""
    out: dict[str, list[tuple[float, float | None]]] = {}
    for row in rows:
        for k, v in row.items():
            if k in SKIP_KEYS:
                continue
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if ok or k in out:
                out.setdefault(k, []).append((row["step"], float(v) if ok else None))
    return {k: pts for k, pts in out.items() if any(v is not None for _, v in pts)}


def group_of(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else "overall"


def svg_chart(key: str, points: list[tuple[float, float | None]], width: int = 300, height: int = 150) -> str:
    """One small line chart; gaps where the value is None; axis ranges printed at the corners."""
    left, right, top, bottom = 44, 8, 18, 20
    xs = [x for x, _ in points]
    ys = [y for _, y in points if y is not None]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y0 == y1:
        y0, y1 = y0 - 0.5, y1 + 0.5
    if x0 == x1:
        x0, x1 = x0 - 0.5, x1 + 0.5

    def px(x: float, y: float) -> str:
        cx = left + (x - x0) / (x1 - x0) * (width - left - right)
        cy = top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom)
        return f"{cx:.1f},{cy:.1f}"

    segments, current = [], []
    for x, y in points:
        if y is None:
            segments.append(current)
            current = []
        else:
            current.append(px(x, y))
    segments.append(current)
    shapes = []
    for seg in segments:
        if len(seg) == 1:
            cx, cy = seg[0].split(",")
            shapes.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="#2563eb"/>')
        elif seg:
            shapes.append(f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{" ".join(seg)}"/>')
    last = next((y for _, y in reversed(points) if y is not None), None)
    k = html.escape(key)
    return (f'<svg class="chart" data-key="{k}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{k}</title>'
            f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
            f'fill="#fff" stroke="#ddd"/>'
            f'<text x="2" y="12" font-size="11" font-weight="bold">{k} (last {_fmt(last)})</text>'
            f'<text x="2" y="{top + 8}" font-size="9">{_fmt(y1)}</text>'
            f'<text x="2" y="{height - bottom}" font-size="9">{_fmt(y0)}</text>'
            f'<text x="{left}" y="{height - 6}" font-size="9">step {_fmt(x0)}</text>'
            f'<text x="{width - right}" y="{height - 6}" font-size="9" text-anchor="end">{_fmt(x1)}</text>'
            + "".join(shapes) + "</svg>")


def _fmt(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.4g}"


def write_png(curves: dict[str, list[tuple[float, float | None]]], path: Path, title: str) -> Path | None:
    """The same curves as one PNG grid (matplotlib, headless)."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(curves))
    rows = math.ceil(len(curves) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.4 * rows), squeeze=False)
    for ax, (key, pts) in zip(axes.flat, curves.items()):
        ax.plot([x for x, _ in pts], [math.nan if y is None else y for _, y in pts], marker="." if len(pts) < 30 else None)
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _rollout_rows(items: list[dict], page_name: str) -> str:
    by_step: dict[int, list[dict]] = {}
    for it in items:
        by_step.setdefault(it.get("step", -1), []).append(it)
    lines = ["<table class=\"steps\"><tr><th>step</th><th>trajectories</th><th>stages</th><th>mean outcome</th>"
             "<th>mean judge score</th><th>judged</th><th>rollouts</th></tr>"]
    for step in sorted(by_step):
        its = by_step[step]
        outs = [it["outcome"] for it in its if it["outcome"] is not None]
        scores = [it["judge"]["score"] for it in its if it.get("judge") and it["judge"].get("score") is not None]
        stages = ", ".join(sorted({it["stage"] for it in its}))
        mean = lambda xs: _fmt(sum(xs) / len(xs)) if xs else "–"  # noqa: E731
        lines.append(f"<tr><td>{step}</td><td>{len(its)}</td><td>{html.escape(stages)}</td><td>{mean(outs)}</td>"
                     f"<td>{mean(scores)}</td><td>{len(scores)}</td>"
                     f'<td><a href="{html.escape(page_name)}#step={step}">view step {step}</a></td></tr>')
    lines.append("</table>")
    return "\n".join(lines)


def write_dashboard(run_dir: str | Path, out: str | Path, title: str | None = None,
                    png: bool = True) -> tuple[Path, LoadReport]:
    """``run.html`` (+ ``run.png``, + ``run_rollouts.html`` when rollouts were saved) for ``run_dir``."""
    run_dir, out = Path(run_dir), Path(out)
    metrics = run_dir / "metrics.jsonl"
    if not metrics.exists():
        raise FileNotFoundError(f"{metrics}: no metrics.jsonl in the run directory")
    title = title or f"run {run_dir}"
    report = LoadReport()
    curves = series(read_metrics(metrics, report))
    out.parent.mkdir(parents=True, exist_ok=True)
    png_path = write_png(curves, out.with_suffix(".png"), title) if png else None
    rollout_files = sorted((run_dir / "rollouts").glob("*.jsonl"))
    rollouts_html = ""
    if rollout_files:
        items, r_report = load_items(rollout_files)
        page = out.with_name(out.stem + "_rollouts.html")
        write_page(page, items, r_report, f"rollouts of {run_dir}")
        report.skipped += r_report.skipped
        rollouts_html = f"<h2>Saved rollouts</h2>{_rollout_rows(items, page.name)}"
    groups: dict[str, list[str]] = {}
    for key in curves:
        groups.setdefault(group_of(key), []).append(key)
    body = []
    for g, keys in groups.items():
        body.append(f'<h2>{html.escape(g)}</h2><div class="charts">')
        body += [svg_chart(k, curves[k]) for k in keys]
        body.append("</div>")
    config = run_dir / "config.yaml"
    extras = []
    if png_path:
        extras.append(f'<p>Same curves as PNG: <a href="{html.escape(png_path.name)}">{html.escape(png_path.name)}</a></p>')
    if config.exists():
        extras.append(f"<details><summary>config.yaml</summary><pre>{html.escape(config.read_text(errors='replace'))}"
                      "</pre></details>")
    if report.skipped:
        extras.append(f"<details><summary>{len(report.skipped)} lines skipped</summary><pre>"
                      f"{html.escape(chr(10).join(report.skipped[:200]))}</pre></details>")
    css = asset("viewer.css") + ".charts{display:flex;flex-wrap:wrap;gap:8px}table.steps td,table.steps th{padding:2px 8px}"
    out.write_text("\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
        f"<style>{css}</style></head><body>",
        f'<header><h1>{html.escape(title)}</h1><div class="sub">{len(curves)} series from {html.escape(str(metrics))}'
        "</div></header><main>", *extras, *body, rollouts_html, "</main></body></html>"]), encoding="utf-8")
    return out, report
