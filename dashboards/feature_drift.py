"""(b) Feature drift: per-feature score over time, which features drift (a feature x time
grid and a table), for the selected model, version and features."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.panels import (
    dashboard,
    datasource_variable,
    drift_state_panel,
    instant_table,
    label_variable,
    query,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from driftwarden import metrics_catalogue as mc
from driftwarden import metrics_catalogue as rec

UID = "driftwarden-feature-drift"
M = 'model=~"$model"'
MV = 'model=~"$model",version=~"$version"'
MVF = 'model=~"$model",version=~"$version",feature=~"$feature"'


#: Threshold series are drawn dashed, so each feature's score has its line to cross.
THRESHOLD_STYLE = [
    dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
    dm.DynamicConfigValue("custom.fillOpacity", 0),
]


def build() -> db.Dashboard:
    score = mc.FEATURE_DRIFT_SCORE.name
    threshold = mc.FEATURE_DRIFT_THRESHOLD.name
    detected = mc.FEATURE_DRIFT_DETECTED.name
    return (
        dashboard(
            UID,
            "driftwarden / Feature drift",
            "Per-feature drift tests of each closed window: scores, verdicts, persistence.",
            ["drift"],
        )
        .with_variable(datasource_variable())
        .with_variable(label_variable("model", "model", score))
        .with_variable(label_variable("version", "version", f"{score}{{{M}}}"))
        .with_variable(label_variable("feature", "feature", f"{score}{{{MV}}}"))
        .with_panel(
            stat_panel(
                "Drifted features now",
                "Features flagged as drifted in the last closed window.",
                [query(f"sum({detected}{{{MVF}}})")],
                thresholds=((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            stat_panel(
                "Dataset drift share",
                "Share of the model's features that drifted in the last closed window.",
                [query(f"{mc.DATASET_DRIFT_SHARE.name}{{{MV}}}", "{{model}} {{version}}")],
                unit="percentunit",
                thresholds=((None, "green"), (0.3, "orange"), (0.5, "red")),
                width=6,
            )
        )
        .with_panel(
            stat_panel(
                "Dataset drift verdict",
                "1 when the drifted share reached the model's dataset drift share.",
                [query(f"{mc.DATASET_DRIFT_DETECTED.name}{{{MV}}}", "{{model}} {{version}}")],
                thresholds=((None, "green"), (1, "red")),
                width=12,
            )
        )
        .with_panel(
            drift_state_panel(
                "Drifted features over time",
                "Each row a feature, red where its window's test said 'drift'.",
                [query(f"{detected}{{{MVF}}}", "{{feature}} ({{model}} {{version}})")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Drift score per feature",
                "The test's score per closed window: a p-value for ks/chisquare/z (drift "
                "when low), a distance for wasserstein/jensenshannon/psi/... (drift when "
                "high). Dashed: the threshold it is compared with (the test's default, the "
                "spec's, or calibrated on the reference with drift.thresholds: calibrated).",
                [
                    query(f"{score}{{{MVF}}}", "{{feature}} ({{test}})"),
                    query(f"{threshold}{{{MVF}}}", "{{feature}} threshold ({{test}})"),
                ],
                width=24,
                height=10,
            ).override_by_regexp(".* threshold .*", THRESHOLD_STYLE)
        )
        .with_panel(
            table_panel(
                "Features, now",
                "Last window's score and verdict per feature, and the share of the "
                "persistence range (alerts/config.yaml feature_drift.range) it was drifted.",
                [
                    instant_table(f"{score}{{{MVF}}}"),
                    instant_table(f"{detected}{{{MVF}}}"),
                    instant_table(f"{rec.FEATURE_DRIFT_PERSISTENCE}{{{MVF}}}"),
                ],
                rename={
                    "Value #A": "score",
                    "Value #B": "drifted",
                    "Value #C": "share of time drifted",
                },
            )
        )
    )
