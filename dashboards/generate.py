"""Render the dashboards to Grafana JSON and write them to `dashboards/generated/`.

The JSON is deterministic (sorted keys, panel ids assigned in layout order), so the
committed copies can be compared byte for byte with a fresh render.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import data_quality, feature_drift, model_overview, pipeline_health, retraining

GENERATED_DIR = Path(__file__).resolve().parent / "generated"

#: uid -> builder of every dashboard, in the order a user reads them.
BUILDERS: dict[str, Callable[[], db.Dashboard]] = {
    model_overview.UID: model_overview.build,
    feature_drift.UID: feature_drift.build,
    data_quality.UID: data_quality.build,
    pipeline_health.UID: pipeline_health.build,
    retraining.UID: retraining.build,
}


def _number_panels(panels: list[dict[str, Any]], next_id: int = 1) -> int:
    for panel in panels:
        panel["id"] = next_id
        next_id += 1
        next_id = _number_panels(panel.get("panels", []), next_id)
    return next_id


def render(builder: db.Dashboard) -> dict[str, Any]:
    """The dashboard model as Grafana's JSON (a plain dict)."""
    doc: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    _number_panels(doc.get("panels", []))
    return doc


def all_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON, freshly rendered."""
    return {uid: render(build()) for uid, build in BUILDERS.items()}


def to_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def file_name(uid: str) -> str:
    return f"{uid}.json"


def write_dashboards(out_dir: Path | str) -> list[Path]:
    """Write every dashboard as `<uid>.json` into `out_dir`; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, doc in all_dashboards().items():
        path = out / file_name(uid)
        path.write_text(to_text(doc), encoding="utf-8")
        written.append(path)
    return written
