"""The alert rule generator: committed files in sync, the metric contract, labels and
annotations every alert needs, the tiny-sample guard, per-model thresholds, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alerts import (
    RECORDED_NAMES,
    AlertsConfig,
    AlertsConfigError,
    alerting_groups,
    generated_files,
    load_config,
    recorded_names,
    recording_groups,
)
from alerts.contract import selectors, substitute, violations
from alerts.rules import WINDOW_ROWS_SUFFICIENT

RETRAIN_ALERTS = {
    "DriftwardenDatasetDrift",
    "DriftwardenPredictionDrift",
    "DriftwardenModelPerformanceBelowFloor",
    "DriftwardenModelPerformanceDegraded",
    "DriftwardenSequentialDrift",
}
MODEL_ALERTS = RETRAIN_ALERTS | {
    "DriftwardenFeatureDriftPersistent",
    "DriftwardenDataQualityDegraded",
}


def _alerts(cfg: AlertsConfig) -> dict[str, dict]:
    return {r["alert"]: r for g in alerting_groups(cfg) for r in g["rules"]}


def _all_exprs(cfg: AlertsConfig) -> list[str]:
    return [r["expr"] for g in recording_groups(cfg) + alerting_groups(cfg) for r in g["rules"]]


def test_committed_files_are_in_sync_with_the_generator() -> None:
    stale = [
        str(path)
        for path, text in generated_files(load_config()).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"regenerate with `python -m alerts`: {stale}"


def test_committed_rule_files_parse_as_prometheus_rule_files() -> None:
    for path in generated_files(load_config()):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc, path


def test_every_expression_uses_only_catalogued_or_recorded_names() -> None:
    cfg = load_config()
    recorded = recorded_names(cfg)
    assert recorded <= RECORDED_NAMES
    for expr in _all_exprs(cfg):
        assert not violations(expr, recorded), expr


def test_contract_check_rejects_unknown_names_and_labels() -> None:
    assert violations("rate(http_requests_total[5m])", set()) == [
        "http_requests_total is not in the metric catalogue"
    ]
    assert violations('driftwarden_window_rows{feature="x"}', set()) == [
        "driftwarden_window_rows has no label(s) ['feature']"
    ]
    assert violations('driftwarden_window_rows{model="m",job="j"}', set()) == []
    assert violations("driftwarden:made:up", set()) != []
    assert violations("driftwarden:made:up", {"driftwarden:made:up"}) == []
    assert [s.name for s in selectors('{__name__="up"} or rate(x_bucket[5m])')] == [
        "up",
        "x_bucket",
    ]


def test_grafana_variables_are_substituted() -> None:
    expr = 'rate(x{model=~"$model",version=~"${version}"}[$__rate_interval])'
    assert (
        substitute(expr, {"model": "m", "version": "v1"}) == 'rate(x{model=~"m",version=~"v1"}[1m])'
    )


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    alerts = _alerts(load_config())
    assert set(alerts) >= MODEL_ALERTS | {
        "DriftwardenPredictionsStopped",
        "DriftwardenCollectorDroppingEvents",
        "DriftwardenCollectorSpoolGrowing",
        "DriftwardenConsumerLagGrowing",
        "DriftwardenDetectorsDown",
        "DriftwardenCollectorDown",
    }
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
        assert rule["annotations"]["runbook_url"].endswith(f"#{name.lower()}")
        assert rule["for"], name


def test_every_alert_has_its_runbook_section_in_the_docs() -> None:
    """`runbook_url` points at `docs/alerts.md#<alertname in lower case>`: the section must
    exist, and the alerts table must list the alert."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    headings = {line.removeprefix("### ").strip() for line in docs.splitlines()}
    rows = {line.split("|")[1].strip() for line in docs.splitlines() if line.startswith("| ")}
    for name in _alerts(load_config()):
        assert name in headings, f"docs/alerts.md has no '### {name}' runbook section"
        assert name in rows, f"docs/alerts.md's alerts table has no row for {name}"


def test_exactly_the_retraining_alerts_carry_the_retrain_action() -> None:
    for name, rule in _alerts(load_config()).items():
        has = rule["labels"].get("driftwarden_action") == "retrain"
        assert has == (name in RETRAIN_ALERTS), name


def test_model_alerts_are_guarded_against_tiny_windows_and_keep_the_model_label() -> None:
    for name, rule in _alerts(load_config()).items():
        if name in MODEL_ALERTS:
            assert rule["expr"].endswith(f"and on(model, version) {WINDOW_ROWS_SUFFICIENT}"), name
            # `and on(...)` keeps the left side's labels: model and version stay on the alert.
            names = {s.name for s in selectors(rule["expr"])}
            assert names & {
                "driftwarden_dataset_drift_share",
                "driftwarden:feature_drift:persistence",
                "driftwarden:prediction_drift:detected",
                "driftwarden_model_performance",
                "driftwarden_data_quality_share",
                "driftwarden_dataset_drift_sequential",
            }, name


def test_per_model_overrides_become_threshold_series() -> None:
    cfg = AlertsConfig.model_validate(
        {
            "min_window_rows": 300,
            "performance": {"floors": {"roc_auc": 0.7, "accuracy": 0.6}},
            "models": {
                "churn": {"min_window_rows": 5000, "performance": {"floors": {"roc_auc": 0.85}}},
                "fraud": {"performance": {"floors": {"accuracy": None}, "ceilings": {"mae": 3}}},
            },
        }
    )
    rules = {r["record"]: r["expr"] for g in recording_groups(cfg) for r in g["rules"]}
    assert rules[WINDOW_ROWS_SUFFICIENT] == (
        'driftwarden_window_rows{model="churn"} >= 5000\n'
        "or\n"
        'driftwarden_window_rows{model!="churn"} >= 300'
    )
    floor = rules["driftwarden:model_performance:floor"].split("\nor\n")
    assert floor == [
        # fraud switched the accuracy default off: excluded, no series of its own.
        '0.6 * group by (model, metric) (driftwarden_model_performance{metric="accuracy",model!="fraud"})',
        '0.85 * group by (model, metric) (driftwarden_model_performance{model="churn",metric="roc_auc"})',
        '0.7 * group by (model, metric) (driftwarden_model_performance{metric="roc_auc",model!="churn"})',
    ]
    assert rules["driftwarden:model_performance:ceiling"] == (
        '3 * group by (model, metric) (driftwarden_model_performance{model="fraud",metric="mae"})'
    )


def test_without_overrides_the_default_has_no_exclusions() -> None:
    cfg = AlertsConfig()
    rules = {r["record"]: r["expr"] for g in recording_groups(cfg) for r in g["rules"]}
    assert rules[WINDOW_ROWS_SUFFICIENT] == "driftwarden_window_rows >= 500"
    assert "driftwarden:model_performance:ceiling" not in rules


def test_with_for_shortens_every_hold_duration_and_nothing_else() -> None:
    cfg = load_config()
    short = cfg.with_for("2s")
    for rule in _alerts(short).values():
        assert rule["for"] == "2s"
    assert short.feature_drift.range == cfg.feature_drift.range
    assert short.performance_drop.baseline_range == cfg.performance_drop.baseline_range
    assert short.models == cfg.models
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        cfg.with_for("soon")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_window_rows: 0\n", "min_window_rows: Input should be greater than or equal to 1"),
        (
            "dataset_drift: {for: 15 minutes}\n",
            "dataset_drift.for: Value error, '15 minutes' is not a Prometheus duration",
        ),
        ("performance: {floors: {rmse: 3}}\n", "performance.floors: Value error, floors apply to"),
        ("models: {'bad model': {}}\n", "models: Value error, 'bad model': a model name"),
        ("colour: red\n", "colour: Extra inputs are not permitted"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_invalid_config_is_one_line_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    with pytest.raises(AlertsConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(AlertsConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
