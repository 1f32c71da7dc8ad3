"""The metric-name contract: a rule or dashboard query may use only catalogued metrics
(`driftwarden.metrics_catalogue`), the series our recording rules define, and Prometheus'
own `up`. Queries are parsed with a real PromQL parser (`promql-parser`, a dev dependency:
only the contract tests call this module).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from alerts.rules import PROMETHEUS_SYNTHETIC
from driftwarden.metrics_catalogue import CATALOGUE, all_series_names

#: Labels Prometheus attaches to every scraped series (target labels), on top of a
#: metric's own.
TARGET_LABELS: frozenset[str] = frozenset({"job", "instance", "namespace", "pod"})

#: Grafana's built-in interval/range macros and the value a test substitutes for them.
GRAFANA_MACROS: Mapping[str, str] = {
    "$__rate_interval": "1m",
    "$__interval_ms": "15000",
    "$__interval": "15s",
    "$__range_s": "3600",
    "$__range_ms": "3600000",
    "$__range": "1h",
}


@dataclass(frozen=True)
class Selector:
    name: str
    labels: tuple[str, ...]


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana macros and `$var` / `${var}` template variables."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(f"${{{name}}}", value)
        expr = re.sub(rf"\${re.escape(name)}\b", lambda _m, v=value: v, expr)
    return expr


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in a PromQL expression (matrix and subqueries included)."""
    import promql_parser

    found: list[Selector] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [m for m in node.matchers.matchers]
            name = node.name or next((m.value for m in matchers if m.name == "__name__"), "")
            found.append(Selector(name, tuple(m.name for m in matchers if m.name != "__name__")))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def violations(expr: str, recorded: Iterable[str]) -> list[str]:
    """Why `expr` breaks the contract (empty when it keeps it)."""
    allowed = all_series_names() | frozenset(recorded) | PROMETHEUS_SYNTHETIC
    labels_of = {
        s: set(m.labels) | ({"le"} if s.endswith("_bucket") else set())
        for m in CATALOGUE.values()
        for s in m.series_names()
    }
    problems: list[str] = []
    for sel in selectors(expr):
        if sel.name not in allowed:
            problems.append(f"{sel.name or '(no metric name)'} is not in the metric catalogue")
            continue
        if sel.name in labels_of:
            unknown = set(sel.labels) - labels_of[sel.name] - TARGET_LABELS
            if unknown:
                problems.append(f"{sel.name} has no label(s) {sorted(unknown)}")
    return problems
