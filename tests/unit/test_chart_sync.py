"""The chart's rules, dashboards and Alertmanager snippet are generated copies
(`python charts/sync.py`): in sync with alerts/ and dashboards/, and rendered as such."""

from __future__ import annotations

import json

import yaml

from alerts import alertmanager_config, load_config, render_rule_files
from charts.sync import FILES_DIR, chart_files, stale_files
from dashboards.generate import all_dashboards
from tests.kits.chart import by_kind, one, render


def test_chart_copies_are_in_sync() -> None:
    stale = stale_files(chart_files())
    assert not stale, f"regenerate with `python charts/sync.py`: {[str(p) for p in stale]}"


def test_sync_covers_every_rule_file_and_dashboard() -> None:
    names = {p.relative_to(FILES_DIR).as_posix() for p in chart_files()}
    assert {f"rules/{n}" for n in render_rule_files(load_config())} <= names
    assert {f"dashboards/{uid}.json" for uid in all_dashboards()} <= names
    assert "alertmanager-snippet.yaml" in names


def test_rendered_prometheus_rules_are_the_generated_rules() -> None:
    docs = render({})
    rendered = [g for rule in by_kind(docs, "PrometheusRule") for g in rule["spec"]["groups"]]
    generated = [
        g
        for text in render_rule_files(load_config()).values()
        for g in yaml.safe_load(text)["groups"]
    ]
    assert sorted(rendered, key=lambda g: g["name"]) == sorted(generated, key=lambda g: g["name"])


def test_rendered_dashboards_are_the_generated_ones() -> None:
    docs = render({})
    maps = [d for d in by_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]
    dashboards = all_dashboards()
    assert len(maps) == len(dashboards)
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = cm["data"].items()
        uid = key.removesuffix(".json")
        assert json.loads(text) == dashboards[uid]
        # small enough for `kubectl apply` (its last-applied annotation is capped at 256 KiB)
        assert len(yaml.safe_dump(cm).encode()) < 200 * 1024


def test_rendered_alertmanager_snippet_routes_to_the_trigger_service() -> None:
    docs = render({}, release="dw", namespace="mlops")
    snippet = one(docs, "ConfigMap", "-retrain-trigger-alertmanager")
    got = yaml.safe_load(snippet["data"]["alertmanager-snippet.yaml"])
    assert got == alertmanager_config(
        "http://dw-driftwarden-retrain-trigger.mlops.svc:8080/v1/alertmanager",
        token_file="/etc/alertmanager/secrets/driftwarden-retrain/token",
    )
    service = one(docs, "Service", "-retrain-trigger")
    assert service["metadata"]["name"] == "dw-driftwarden-retrain-trigger"
    assert service["spec"]["ports"][0]["port"] == 8080
