"""The viewer page: one static HTML file with its CSS, JS and data inline (no CDN, opens from disk).

The data sits in a ``<script type="application/json">`` block that the page's script
parses; :func:`embed_json` escapes ``<``, ``>`` and ``&`` (and, being ASCII-only, every
line separator and lone surrogate) so no trajectory text can close the block or start
markup. The script puts every string into the page with ``textContent``, so a
``<script>`` in a tool result renders as text, and it builds only one page of table
rows at a time (see ``assets/viewer.js``).
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from reagent.view.items import LoadReport


def embed_json(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``</script>``, no ``<!--``."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def asset(name: str) -> str:
    return resources.files("reagent.view").joinpath("assets", name).read_text(encoding="utf-8")


def step_scale(items: list[dict]) -> dict[str, float]:
    """Largest |value| of each per-step quantity over all items: the full width of its bar."""
    scale: dict[str, float] = {}
    for it in items:
        for step in it.get("steps") or []:
            for k, v in step.items():
                if k.startswith("@"):
                    continue
                scale[k] = max(scale.get(k, 0.0), abs(v))
    return {k: v or 1.0 for k, v in scale.items()}


_FILTERS = """
<div class="filters">
  <label>outcome<select id="f-outcome"><option value="all">all</option><option value="correct">correct (≥ 1)</option>
    <option value="wrong">wrong (&lt; 1)</option><option value="unknown">unknown</option></select></label>
  <label>judge score ≥<input id="f-smin" type="number" step="0.05" min="0" max="1"></label>
  <label>judge score ≤<input id="f-smax" type="number" step="0.05" min="0" max="1"></label>
  <label>stop reason<select id="f-stop"><option value="all">all</option></select></label>
  <label>judge status<select id="f-status"><option value="all">all</option></select></label>
  <label>stage<select id="f-stage"><option value="all">all</option></select></label>
  <label>training step<input id="f-step" type="number" min="0"></label>
  <label>file<select id="f-file"><option value="all">all</option></select></label>
  <label>search id / task / question / answer<input id="f-q" type="search"></label>
</div>
<div class="presets">
  <button class="hack" id="p-low">correct but judge score ≤ {t}</button>
  <button class="hack" id="p-high">wrong but judge score ≥ {t}</button>
  <button id="p-all">clear filters</button>
</div>
<div class="pager"><button id="prev">◀ prev</button><button id="next">next ▶</button><span id="count"></span></div>
<table class="items"><thead id="thead"></thead><tbody id="tbody"></tbody></table>
<div id="detail" class="detail"></div>
"""


def render_page(items: list[dict], report: LoadReport, title: str, page_size: int = 100,
                threshold: float = 0.5) -> str:
    """The whole HTML document for ``items`` (from :func:`reagent.view.items.load_items`)."""
    meta = {"page_size": page_size, "threshold": threshold, "step_scale": step_scale(items)}
    files = sorted({it["file"] for it in items})
    skips = ""
    if report.skipped:
        lines = "\n".join(report.skipped[:200])
        skips = (f'<details class="skips"><summary>{len(report.skipped)} lines skipped</summary>'
                 f"<pre>{html.escape(lines)}</pre></details>")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{asset('viewer.css')}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1><div class=\"sub\">{len(items)} trajectories from "
        f"{len(files)} file(s): {html.escape(', '.join(files))}. Click a row to read it; the initial and "
        "critique-revised attempts show side by side.</div></header>",
        f"<main>{skips}{_FILTERS.replace('{t}', html.escape(str(threshold)))}</main>",
        f'<script type="application/json" id="reagent-data">{embed_json({"items": items, "meta": meta})}</script>',
        f"<script>{asset('viewer.js')}</script>",
        "</body></html>",
    ])


def write_page(path: str | Path, items: list[dict], report: LoadReport, title: str, **kwargs: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(items, report, title, **kwargs), encoding="utf-8")
    return path
