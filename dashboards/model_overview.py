"""(a) Model overview: traffic, latency, drift share, performance, by model and version."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import (
    dashboard,
    datasource_variable,
    label_variable,
    query,
    stat_panel,
    timeseries_panel,
)
from driftwarden import metrics_catalogue as mc
from driftwarden import metrics_catalogue as rec

UID = "driftwarden-model-overview"
M = 'model=~"$model"'
MV = 'model=~"$model",version=~"$version"'


def _latency(metric: str, q: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (model, le) "
        f"(rate({metric}_bucket{{{M}}}[$__rate_interval])))"
    )


def build() -> db.Dashboard:
    dur = mc.COLLECTOR_REQUEST_DURATION.name
    over = mc.COLLECTOR_OVERHEAD.name
    return (
        dashboard(
            UID,
            "driftwarden / Model overview",
            "Traffic, latency, drift and performance of each monitored model, by version.",
            ["overview"],
        )
        .with_variable(datasource_variable())
        .with_variable(label_variable("model", "model", mc.WINDOW_ROWS.name))
        .with_variable(label_variable("version", "version", f"{mc.WINDOW_ROWS.name}{{{M}}}"))
        .with_row(db.Row("Now"))
        .with_panel(
            stat_panel(
                "Dataset drift share",
                "Share of features that drifted in the last closed window.",
                [query(f"{mc.DATASET_DRIFT_SHARE.name}{{{MV}}}", "{{model}} {{version}}")],
                unit="percentunit",
                thresholds=((None, "green"), (0.3, "orange"), (0.5, "red")),
            )
        )
        .with_panel(
            stat_panel(
                "Predictions/s",
                "Valid prediction events consumed by the detectors (5m rate).",
                [query(f"sum({rec.EVENTS_PROCESSED_RATE}{{{M}}})")],
                unit="reqps",
            )
        )
        .with_panel(
            stat_panel(
                "Rows in last window",
                "Windows smaller than the alert minimum never raise a model alert.",
                [query(f"{mc.WINDOW_ROWS.name}{{{MV}}}", "{{model}} {{version}}")],
            )
        )
        .with_panel(
            stat_panel(
                "p95 latency",
                "95th percentile of the time to answer a request, the model included.",
                [query(_latency(dur, "0.95"), "{{model}}")],
                unit="s",
                thresholds=((None, "green"), (0.5, "orange"), (1, "red")),
            )
        )
        .with_row(db.Row("Traffic and latency"))
        .with_panel(
            timeseries_panel(
                "Requests/s by status code",
                "Requests the collector proxied to the model (5m rate).",
                [query(f"{rec.COLLECTOR_REQUESTS_RATE}{{{M}}}", "{{model}} {{code}}")],
                unit="reqps",
            )
        )
        .with_panel(
            timeseries_panel(
                "Predictions consumed/s",
                "Valid prediction events the detectors consumed from Kafka (5m rate).",
                [query(f"{rec.EVENTS_PROCESSED_RATE}{{{M}}}", "{{model}}")],
                unit="reqps",
            )
        )
        .with_panel(
            timeseries_panel(
                "Request latency",
                "Time to answer a proxied request, the model's own time included.",
                [
                    query(_latency(dur, "0.5"), "p50 {{model}}"),
                    query(_latency(dur, "0.95"), "p95 {{model}}"),
                    query(_latency(dur, "0.99"), "p99 {{model}}"),
                ],
                unit="s",
            )
        )
        .with_panel(
            timeseries_panel(
                "Collector overhead",
                "The proxy's own share of a request's time.",
                [
                    query(_latency(over, "0.5"), "p50 {{model}}"),
                    query(_latency(over, "0.99"), "p99 {{model}}"),
                ],
                unit="s",
            )
        )
        .with_row(db.Row("Drift"))
        .with_panel(
            timeseries_panel(
                "Dataset drift share by version",
                "Share of features drifted per closed window; the model's dataset drift "
                "share (spec: drift.drift_share) is the verdict's threshold.",
                [query(f"{mc.DATASET_DRIFT_SHARE.name}{{{MV}}}", "{{model}} {{version}}")],
                unit="percentunit",
                min_=0,
                max_=1,
            )
        )
        .with_panel(
            timeseries_panel(
                "Prediction drift score",
                "Drift test score of the predictions (p-value for ks/chisquare/z, distance "
                "otherwise).",
                [
                    query(
                        f"{mc.PREDICTION_DRIFT_SCORE.name}{{{MV}}}",
                        "{{model}} {{version}} ({{test}})",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Multivariate drift p-value",
                "Kernel MMD permutation test over all numerical features; low means drift.",
                [
                    query(
                        f"{mc.MULTIVARIATE_DRIFT_PVALUE.name}{{{MV}}}",
                        "{{model}} {{version}}",
                    )
                ],
                min_=0,
                max_=1,
            )
        )
        .with_panel(
            timeseries_panel(
                "Drifted features",
                "How many features drifted in the last closed window.",
                [
                    query(
                        f"sum by (model, version) ({mc.FEATURE_DRIFT_DETECTED.name}{{{MV}}})",
                        "{{model}} {{version}}",
                    )
                ],
            )
        )
        .with_row(db.Row("Performance"))
        .with_panel(
            timeseries_panel(
                "Performance by version",
                "Metrics over the labelled predictions of each window, with the alert "
                "floors and ceilings (alerts/config.yaml).",
                [
                    query(
                        f"{mc.MODEL_PERFORMANCE.name}{{{MV}}}",
                        "{{model}} {{version}} {{metric}}",
                    ),
                    query(f"{rec.PERFORMANCE_FLOOR}{{{M}}}", "floor {{model}} {{metric}}"),
                    query(f"{rec.PERFORMANCE_CEILING}{{{M}}}", "ceiling {{model}} {{metric}}"),
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Performance versus baseline",
                "Current value divided by the version's own baseline (alerts fire below "
                "1 - max_relative_drop for higher-is-better metrics).",
                [
                    query(
                        f"{mc.MODEL_PERFORMANCE.name}{{{MV}}} / {rec.PERFORMANCE_BASELINE}",
                        "{{model}} {{version}} {{metric}}",
                    )
                ],
                unit="percentunit",
            )
        )
        .with_panel(
            timeseries_panel(
                "Labels joined/s",
                "Feedback labels joined to their prediction (5m rate): performance needs them.",
                [
                    query(
                        f"sum by (model) (rate({mc.LABELS_JOINED_TOTAL.name}{{{M}}}"
                        "[$__rate_interval]))",
                        "{{model}}",
                    )
                ],
                unit="reqps",
            )
        )
        .with_panel(
            timeseries_panel(
                "Windows closed/s by version",
                "Windows closed and evaluated.",
                [
                    query(
                        f"sum by (model, version) (rate({mc.WINDOWS_TOTAL.name}{{{MV}}}"
                        "[$__rate_interval]))",
                        "{{model}} {{version}}",
                    )
                ],
                unit="reqps",
            )
        )
    )
