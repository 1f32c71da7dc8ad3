"""Rendering a `DatasetDrift` as JSON, a terminal table (rich) or a self-contained HTML page.

Pure: results and column summaries in, text out. The HTML page has no external resource:
each column's distribution plot is a small inline SVG (reference and current shares per
bin or per category), next to the drift table.
"""

from __future__ import annotations

import html
import io
import itertools
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from detectors.drift import ColumnDrift, DatasetDrift
from detectors.profile import ColumnProfile, NumericSample

__all__ = ["distribution", "render_html", "render_json", "render_table"]

NUMERIC_BINS = 20
TOP_CATEGORIES = 12
REF_COLOUR = "#4c78a8"
CUR_COLOUR = "#f58518"


def render_json(result: DatasetDrift) -> str:
    """``{"dataset_drift", "drift_share", "columns": [...]}`` (DESIGN.md), NaN as null."""
    return json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.4g}"


def _verdict_line(result: DatasetDrift) -> str:
    state = "DETECTED" if result.dataset_drift else "not detected"
    return (
        f"Dataset drift {state}: {result.n_drifted} of {result.n_tested} columns drifted "
        f"(share {result.drift_share:.3g}, threshold {result.share_threshold:.3g})"
    )


_EXTRA_HEADERS = {
    "status": "status",
    "effect_size": "effect size",
    "p_adjusted": "p (BH)",
    "missing_share_drift": "missing drift",
    "unseen_category_drift": "unseen drift",
}


_MEASURE = {"ks_d": "(KS D)", "cramers_v": "(V)"}


def render_table(result: DatasetDrift, *, width: int | None = None, color: bool = True) -> str:
    """A rich table of every column, then the dataset verdict and any skipped columns."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Column drift", title_justify="left")
    for header in ("column", "type", "test", "score", "threshold", "drift"):
        table.add_column(header, justify="right" if header in ("score", "threshold") else "left")
    extras = [k for k in _EXTRA_HEADERS if k in result.extras]
    for key in extras:
        table.add_column(_EXTRA_HEADERS[key])
    for c in result.columns:
        if not c.tested:
            drift = "[dim]no verdict[/]"
        elif c.drift_detected:
            drift = "[bold red]yes[/]"
        else:
            drift = "[green]no[/]"
        row = [c.column, c.type, c.test, _fmt(c.score), _fmt(c.threshold), drift]
        for key in extras:
            value = getattr(c, key)
            if key == "effect_size" and value is not None:
                row.append(f"{_fmt(value)} {_MEASURE.get(c.effect_size_measure or '', '')}")
            elif isinstance(value, bool):
                row.append("yes" if value else "no")
            else:
                row.append(_fmt(value) if isinstance(value, float) or value is None else str(value))
        table.add_row(*row)
    buf = io.StringIO()
    width = width or max(120, 100 + 16 * len(extras))
    console = Console(file=buf, width=width, force_terminal=color, no_color=not color)
    console.print(table)
    style = "bold red" if result.dataset_drift else "bold green"
    console.print(f"[{style}]{_verdict_line(result)}[/]")
    for name, why in result.skipped.items():
        console.print(f"[dim]skipped {name}: {why}[/]")
    return buf.getvalue()


# --------------------------------------------------------------------------- plots


def distribution(
    reference: ColumnProfile, current: ColumnProfile, column_type: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(bin or category labels, reference shares, current shares) for a small plot.

    Numerical: `NUMERIC_BINS` equal-width bins over both samples' range, counted by
    binary search in the sorted values. Categorical: the `TOP_CATEGORIES` categories with
    the largest share on either side, the rest pooled as "other".
    """
    r, c = reference.sample, current.sample
    if r.n == 0 or c.n == 0:
        return [], np.zeros(0), np.zeros(0)
    if column_type == "numerical" and isinstance(r, NumericSample) and isinstance(c, NumericSample):
        lo, hi = min(r.min, c.min), max(r.max, c.max)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, NUMERIC_BINS + 1)

        def shares(values: np.ndarray) -> np.ndarray:
            cum = np.concatenate(
                (values.searchsorted(edges[:-1], "left"), values.searchsorted(edges[-1:], "right"))
            )
            return np.diff(cum) / values.shape[0]

        labels = [f"{a:.4g} to {b:.4g}" for a, b in itertools.pairwise(edges)]
        return labels, shares(r.values), shares(c.values)
    rc, cc = r.as_counts(), c.as_counts()
    keys = list(dict.fromkeys(rc.keys.tolist() + cc.keys.tolist()))
    ref_share = rc.counts_of(np.array(keys, dtype=object)) / rc.n
    cur_share = cc.counts_of(np.array(keys, dtype=object)) / cc.n
    order = np.argsort(-np.maximum(ref_share, cur_share), kind="stable")
    if len(keys) > TOP_CATEGORIES:
        top, rest = order[: TOP_CATEGORIES - 1], order[TOP_CATEGORIES - 1 :]
        labels = [str(keys[i]) for i in top] + [f"other ({rest.shape[0]})"]
        return (
            labels,
            np.append(ref_share[top], ref_share[rest].sum()),
            np.append(cur_share[top], cur_share[rest].sum()),
        )
    return [str(keys[i]) for i in order], ref_share[order], cur_share[order]


def _svg(
    labels: list[str], ref: np.ndarray, cur: np.ndarray, width: int = 260, height: int = 70
) -> str:
    if not labels:
        return '<svg width="260" height="70" role="img"><text x="4" y="38" font-size="11">no data</text></svg>'
    top = float(max(ref.max(), cur.max(), 1e-12))
    n = len(labels)
    slot = width / n
    bar = max(slot / 2 - 0.5, 0.5)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for i, label in enumerate(labels):
        for j, (share, colour, side) in enumerate(
            ((ref[i], REF_COLOUR, "reference"), (cur[i], CUR_COLOUR, "current"))
        ):
            h = (height - 2) * float(share) / top
            x = i * slot + j * bar
            tip = html.escape(f"{label}: {side} {float(share):.3%}")
            parts.append(
                f'<rect x="{x:.2f}" y="{height - h:.2f}" width="{bar:.2f}" height="{h:.2f}" '
                f'fill="{colour}"><title>{tip}</title></rect>'
            )
    parts.append(
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" stroke="#999"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } .verdict { font-weight: 600; margin: 8px 0 16px; }
.drift { color: #c62828; } .ok { color: #2e7d32; } .dim { color: #777; }
table { border-collapse: collapse; } th, td { padding: 4px 10px; border-bottom: 1px solid #ddd;
  text-align: left; vertical-align: middle; font-size: 13px; } td.num { text-align: right; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
"""


def render_html(
    result: DatasetDrift,
    reference: Mapping[str, ColumnProfile],
    current: Mapping[str, ColumnProfile],
    *,
    title: str = "driftwarden drift report",
    sources: tuple[str, str] | None = None,
) -> str:
    """One self-contained HTML page: the verdict, then one table row per column with its plot."""
    extras = [k for k in _EXTRA_HEADERS if k in result.extras]
    head = [
        "column",
        "type",
        "test",
        "score",
        "threshold",
        "drift",
        *(_EXTRA_HEADERS[k] for k in extras),
        "distribution",
    ]
    rows = []
    for c in result.columns:
        rows.append(_html_row(c, extras, reference, current))
    verdict_cls = "drift" if result.dataset_drift else "ok"
    src = ""
    if sources is not None:
        src = f"<p class='dim'>reference: {html.escape(sources[0])} &middot; current: {html.escape(sources[1])}</p>"
    skipped = "".join(
        f"<li>{html.escape(name)}: {html.escape(why)}</li>" for name, why in result.skipped.items()
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{src}"
        f"<p class='verdict {verdict_cls}'>{html.escape(_verdict_line(result))}</p>"
        f"<p class='legend dim'>distribution:<span style='background:{REF_COLOUR}'></span>reference"
        f"<span style='background:{CUR_COLOUR}'></span>current</p>"
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + (f"<p class='dim'>Not drift-tested:</p><ul class='dim'>{skipped}</ul>" if skipped else "")
        + f"<p class='dim'>generated {generated} by driftwarden</p></body></html>\n"
    )


def _html_row(
    c: ColumnDrift,
    extras: list[str],
    reference: Mapping[str, ColumnProfile],
    current: Mapping[str, ColumnProfile],
) -> str:
    if not c.tested:
        drift = "<span class='dim'>no verdict</span>"
    elif c.drift_detected:
        drift = "<span class='drift'>yes</span>"
    else:
        drift = "<span class='ok'>no</span>"
    cells: list[Any] = [
        html.escape(c.column),
        c.type,
        c.test,
        f"<td class='num'>{_fmt(c.score)}</td>",
        f"<td class='num'>{_fmt(c.threshold)}</td>",
        drift,
    ]
    for key in extras:
        value = getattr(c, key)
        if isinstance(value, bool):
            cells.append("yes" if value else "no")
        elif isinstance(value, float) or value is None:
            cells.append(_fmt(value))
        else:
            cells.append(html.escape(str(value)))
    ref, cur = reference.get(c.column), current.get(c.column)
    svg = _svg(*distribution(ref, cur, c.type)) if ref is not None and cur is not None else ""
    cells.append(svg)
    return (
        "<tr>"
        + "".join(x if str(x).startswith("<td") else f"<td>{x}</td>" for x in cells)
        + "</tr>"
    )
