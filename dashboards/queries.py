"""Read the queries back out of dashboard JSON: what the contract test checks against the
metric catalogue and what the live test evaluates against a real Prometheus."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_LABEL_VALUES = re.compile(
    r"^label_values\((?P<selector>.+),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)$"
)


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool


@dataclass(frozen=True)
class VariableQuery:
    """A `label_values(selector, label)` template variable."""

    dashboard: str
    name: str
    selector: str
    label: str


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def panel_queries(doc: dict[str, Any]) -> list[PanelQuery]:
    """Every Prometheus target of every panel (rows' nested panels included)."""
    return [
        PanelQuery(
            doc["uid"],
            panel.get("title", ""),
            target.get("refId", ""),
            target["expr"],
            bool(target.get("instant")),
        )
        for panel in _panels(doc.get("panels", []))
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def variable_queries(doc: dict[str, Any]) -> list[VariableQuery]:
    """Every query variable, in dashboard order (later ones may use earlier ones)."""
    found = []
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = _LABEL_VALUES.match(q.strip())
        if m is None:
            raise ValueError(f"{doc['uid']}: variable {var['name']}: not label_values(...): {q}")
        found.append(VariableQuery(doc["uid"], var["name"], m["selector"].strip(), m["label"]))
    return found
