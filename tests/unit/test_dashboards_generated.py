"""The generated dashboards: committed JSON in sync with the builders, the metric-name
contract for every panel query and template variable, and the shape Grafana needs."""

from __future__ import annotations

import json

import pytest

from alerts import load_config, recorded_names
from alerts.contract import selectors, substitute, violations
from dashboards import (
    BUILDERS,
    GENERATED_DIR,
    all_dashboards,
    panel_queries,
    variable_queries,
)
from dashboards.generate import file_name, to_text
from driftwarden import metrics_catalogue as mc

DASHBOARDS = all_dashboards()
SAMPLE_VARS = {"model": "m", "version": "v1", "feature": "f", "datasource": "prom"}


def test_committed_json_is_in_sync_with_the_generator() -> None:
    committed = sorted(p.name for p in GENERATED_DIR.glob("*.json"))
    assert committed == sorted(file_name(uid) for uid in DASHBOARDS), (
        "regenerate with `python -m dashboards`"
    )
    for uid, doc in DASHBOARDS.items():
        text = (GENERATED_DIR / file_name(uid)).read_text(encoding="utf-8")
        assert text == to_text(doc), f"{uid}: out of sync, regenerate with `python -m dashboards`"


def test_rendering_is_deterministic() -> None:
    assert to_text(all_dashboards()["driftwarden-model-overview"]) == to_text(
        DASHBOARDS["driftwarden-model-overview"]
    )


def test_the_five_dashboards_exist() -> None:
    assert list(BUILDERS) == [
        "driftwarden-model-overview",
        "driftwarden-feature-drift",
        "driftwarden-data-quality",
        "driftwarden-pipeline-health",
        "driftwarden-retraining",
    ]


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_every_query_uses_only_catalogued_or_recorded_metrics(uid: str) -> None:
    recorded = recorded_names(load_config())
    doc = DASHBOARDS[uid]
    queries = panel_queries(doc)
    assert queries
    for q in queries:
        expr = substitute(q.expr, SAMPLE_VARS)
        assert "$" not in expr, f"{q.panel}: unsubstituted variable in {expr}"
        assert not violations(expr, recorded), f"{uid} / {q.panel} / {q.ref_id}: {q.expr}"
    for var in variable_queries(doc):
        selector = substitute(var.selector, SAMPLE_VARS)
        assert not violations(selector, recorded), f"{uid} variable {var.name}: {selector}"


def test_contract_would_catch_an_unknown_metric() -> None:
    assert violations('rate(made_up_total{model=~"m"}[1m])', set())


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_panels_query_the_datasource_variable_with_unique_ids(uid: str) -> None:
    doc = DASHBOARDS[uid]
    assert doc["uid"] == uid
    assert doc["schemaVersion"] >= 39  # Grafana 11 / 12 dashboard schema
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    names = [v["name"] for v in doc["templating"]["list"]]
    assert names[0] == "datasource"
    for panel in doc["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("description"), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(refs), panel["title"]


def test_feature_drift_has_model_version_feature_variables_and_a_drift_grid() -> None:
    doc = DASHBOARDS["driftwarden-feature-drift"]
    assert [v["name"] for v in doc["templating"]["list"]] == [
        "datasource",
        "model",
        "version",
        "feature",
    ]
    for var in doc["templating"]["list"][1:]:
        assert var["includeAll"] and var["multi"] and var["allValue"] == ".*"
    types = {p["type"] for p in doc["panels"]}
    assert {"status-history", "table", "timeseries"} <= types
    for q in panel_queries(doc):
        assert 'feature=~"$feature"' in q.expr or "feature" not in q.expr, q.expr


def test_model_overview_breaks_drift_and_performance_down_by_version() -> None:
    doc = DASHBOARDS["driftwarden-model-overview"]
    for title in ("Dataset drift share by version", "Performance by version"):
        exprs = [q.expr for q in panel_queries(doc) if q.panel == title]
        assert any('version=~"$version"' in e for e in exprs), title


def test_performance_panel_shows_the_alert_floors() -> None:
    doc = DASHBOARDS["driftwarden-model-overview"]
    names = {
        s.name
        for q in panel_queries(doc)
        if q.panel == "Performance by version"
        for s in selectors(substitute(q.expr, SAMPLE_VARS))
    }
    assert {"driftwarden:model_performance:floor", "driftwarden:model_performance:ceiling"} <= names


def test_generated_json_is_plain_grafana_json() -> None:
    for path in GENERATED_DIR.glob("*.json"):
        doc = json.loads(path.read_text())
        assert {"uid", "title", "panels", "templating", "schemaVersion"} <= set(doc)


def test_retraining_shows_every_trigger_and_canary_metric() -> None:
    doc = DASHBOARDS["driftwarden-retraining"]
    used = {s.name for q in panel_queries(doc) for s in selectors(substitute(q.expr, SAMPLE_VARS))}
    assert used == {
        mc.ALERTS_RECEIVED_TOTAL.name,
        mc.RETRAIN_DECISIONS_TOTAL.name,
        mc.RETRAIN_JOBS_TOTAL.name,
        mc.RETRAIN_JOBS_RUNNING.name,
        mc.CANARY_WEIGHT.name,
        mc.ROLLOUTS_TOTAL.name,
        mc.CANARY_CHECK.name,
    }
    # Every query but the alerts' (whose metric has no model label) follows $model.
    for q in panel_queries(doc):
        if mc.ALERTS_RECEIVED_TOTAL.name not in q.expr:
            assert 'model=~"$model"' in q.expr, q.expr


def test_canary_verdicts_map_every_check_value() -> None:
    doc = DASHBOARDS["driftwarden-retraining"]
    (panel,) = [p for p in doc["panels"] if p["type"] == "status-history"]
    assert panel["targets"][0]["expr"].startswith(mc.CANARY_CHECK.name)
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    # driftwarden_canary_check: 1 pass, 0 fail, -1 inconclusive (DESIGN.md).
    assert {v: o["text"] for v, o in mapping["options"].items()} == {
        "1": "pass",
        "0": "fail",
        "-1": "inconclusive",
    }
