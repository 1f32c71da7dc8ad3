"""The demo's self-contained HTML report: summary, plots as inline SVG (no plotting library,
no network), the lineage chain. `render_report` is pure; `write_report` writes the file."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftwarden.demo.runner import DemoResult

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
W, H, PAD = 760, 220, 40


def svg_chart(
    title: str,
    series: dict[str, Sequence[tuple[float, float]]],
    *,
    y_range: tuple[float, float] = (0.0, 1.0),
    y_label: str = "",
    marks: Sequence[tuple[float, str]] = (),
    x_max: float | None = None,
    percent: bool = False,
) -> str:
    """A line chart: one polyline per series of (t, y) points, vertical marks at moments."""
    xs = [x for pts in series.values() for x, _ in pts] + [m for m, _ in marks]
    x1 = max(x_max or 0.0, max(xs, default=1.0), 1.0)
    y0, y1 = y_range

    def px(x: float) -> float:
        return PAD + (W - 2 * PAD) * x / x1

    def py(y: float) -> float:
        return H - PAD - (H - 2 * PAD) * (min(max(y, y0), y1) - y0) / ((y1 - y0) or 1.0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="{PAD}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#888"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#888"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        label = f"{y:.0%}" if percent else f"{y:g}"
        out.append(
            f'<text x="{PAD - 4}" y="{py(y) + 4:.1f}" font-size="10" text-anchor="end">{label}</text>'
        )
    for k in range(6):
        x = x1 * k / 5
        out.append(
            f'<text x="{px(x):.1f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">{x:.0f}s</text>'
        )
    if y_label:
        out.append(
            f'<text x="{W - PAD}" y="18" font-size="11" text-anchor="end">{html.escape(y_label)}</text>'
        )
    for x, label in marks:
        out.append(
            f'<line x1="{px(x):.1f}" y1="{PAD}" x2="{px(x):.1f}" y2="{H - PAD}" stroke="#aaa" stroke-dasharray="4 3"/>'
            f'<text x="{px(x) + 3:.1f}" y="{PAD + 10}" font-size="10" fill="#555">{html.escape(label)}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        if pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'
            )
        out.append(
            f'<text x="{W - PAD - 150}" y="{PAD + 14 * (i + 1)}" font-size="11" fill="{colour}">'
            f"{html.escape(name)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def lineage_chain(
    events: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The steps that made the new version, in time order, and a count of the decisions of
    later notifications (the drift keeps firing: `in_flight`, `cooldown`) left out of it."""
    chain: list[dict[str, Any]] = []
    repeats: dict[str, int] = {}
    launched = False
    for e in sorted(events, key=lambda e: e.get("ts", 0)):
        step = e.get("step")
        if step in ("alert", "decision") and launched:
            if step == "decision":
                key = str((e.get("detail") or {}).get("decision", "?"))
                repeats[key] = repeats.get(key, 0) + 1
            continue
        if step == "decision" and (e.get("detail") or {}).get("decision") == "launched":
            launched = True
        chain.append(e)
    return chain, repeats


def _fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_report(result: DemoResult) -> str:
    m, tl = result.milestones, result.timeline
    start_wall = None
    if tl and result.stats.first_drifted_at is not None:
        drift_t = next((p["t"] for p in tl if p["drifting"]), None)
        if drift_t is not None:
            start_wall = result.stats.first_drifted_at - drift_t

    def rel(ts: float | None) -> float | None:
        return None if ts is None or start_wall is None else ts - start_wall

    marks = [
        (t, label)
        for t, label in (
            (rel(m.first_drifted), "drift"),
            (rel(m.alert_delivered), "alert"),
            (rel(m.retrained), "retrained"),
            (rel(m.rollout_finished), m.outcome or "rollout"),
        )
        if t is not None
    ]
    x_max = tl[-1]["t"] if tl else None
    drift = {
        "dataset drift share": [
            (p["t"], p["drift_share"]) for p in tl if p["drift_share"] is not None
        ]
    }
    versions = sorted({v for p in tl for v in p["accuracy"]})
    accuracy = {v: [(p["t"], p["accuracy"][v]) for p in tl if v in p["accuracy"]] for v in versions}
    weight = {"canary weight": [(p["t"], p["weight"] / 100) for p in tl]}
    old = "v1"
    rows = [
        (
            "first drifted request → alert at the retrain trigger",
            _fmt(result.since_drift(m.alert_delivered)),
        ),
        ("first drifted request → retrained model", _fmt(result.since_drift(m.retrained))),
        (
            f"first drifted request → {m.outcome or 'end of rollout'}",
            _fmt(result.since_drift(m.rollout_finished)),
        ),
        (f"accuracy on drifted traffic, {old}", _acc(result.drifted_accuracy(old))),
    ]
    if m.new_version:
        rows.append(
            (
                f"accuracy on drifted traffic, {m.new_version}",
                _acc(result.drifted_accuracy(m.new_version)),
            )
        )
    rows.append(("requests sent / answered", f"{result.stats.sent} / {result.stats.ok}"))
    summary = "".join(
        f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows
    )
    chain, repeats = lineage_chain(result.lineage)
    chain_html = "".join(
        "<li><b>{}</b> <code>{}</code> {}</li>".format(
            html.escape(str(e.get("step"))),
            html.escape(str(e.get("ref"))),
            html.escape(json.dumps(e.get("detail", {}), sort_keys=True)[:400]),
        )
        for e in chain
    )
    if repeats:
        counts = ", ".join(f"{k} ×{n}" for k, n in sorted(repeats.items()))
        chain_html += (
            f"<li>later notifications of the still-firing alert: {html.escape(counts)}</li>"
        )
    events = "".join(f"<li>{html.escape(e)}</li>" for e in result.events)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>driftwarden demo report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:820px;margin:2em auto;color:#222}}
th{{text-align:left;padding-right:2em;font-weight:normal}}td{{font-weight:bold}}
li{{margin:.3em 0}}code{{background:#f3f3f3}}</style></head><body>
<h1>driftwarden demo: drift → alert → retraining → canary → {html.escape(m.outcome or "…")}</h1>
<p>Run of {time.strftime("%Y-%m-%d %H:%M", time.localtime(start_wall or time.time()))}; times in seconds since traffic started.</p>
<h2>Summary</h2><table>{summary}</table>
<h2>Drift</h2>{svg_chart("dataset drift share (last closed window)", drift, marks=marks, x_max=x_max, percent=True)}
<h2>Accuracy per version</h2>{svg_chart("labelled accuracy, last 15 s", accuracy, marks=marks, x_max=x_max)}
<h2>Canary</h2>{svg_chart("share of traffic at the canary", weight, marks=marks, x_max=x_max, percent=True)}
<h2>Lineage</h2><ol>{chain_html or "<li>no lineage recorded</li>"}</ol>
<h2>Events</h2><ul>{events or "<li>none</li>"}</ul>
</body></html>
"""


def write_report(result: DemoResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result), encoding="utf-8")
    return path
