"""Every Prometheus metric driftwarden exports, declared once (DESIGN.md, "Prometheus metrics").

Exporters, dashboards, alert rules and their contract tests all import these names; a
metric that is not declared here must not appear anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str

    def series_names(self) -> tuple[str, ...]:
        """Names of the sample series Prometheus stores for this metric."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


def _m(name: str, type_: MetricType, labels: tuple[str, ...], help_: str) -> MetricDef:
    return MetricDef(name, type_, labels, help_)


# --- detectors -------------------------------------------------------------------------
FEATURE_DRIFT_SCORE = _m(
    "driftwarden_feature_drift_score",
    "gauge",
    ("model", "version", "feature", "test"),
    "Drift test score of a feature in the last closed window (p-value or distance, see test).",
)
FEATURE_DRIFT_DETECTED = _m(
    "driftwarden_feature_drift_detected",
    "gauge",
    ("model", "version", "feature"),
    "1 when the feature drifted in the last closed window, else 0.",
)
DATASET_DRIFT_SHARE = _m(
    "driftwarden_dataset_drift_share",
    "gauge",
    ("model", "version"),
    "Share of tested features that drifted in the last closed window.",
)
DATASET_DRIFT_DETECTED = _m(
    "driftwarden_dataset_drift_detected",
    "gauge",
    ("model", "version"),
    "1 when the drifted share reached the model's dataset drift share, else 0.",
)
PREDICTION_DRIFT_SCORE = _m(
    "driftwarden_prediction_drift_score",
    "gauge",
    ("model", "version", "test"),
    "Drift test score of the model's predictions in the last closed window.",
)
MULTIVARIATE_DRIFT_PVALUE = _m(
    "driftwarden_multivariate_drift_pvalue",
    "gauge",
    ("model", "version"),
    "Permutation p-value of the kernel MMD test in the last closed window.",
)
MODEL_PERFORMANCE = _m(
    "driftwarden_model_performance",
    "gauge",
    ("model", "version", "metric"),
    "Performance metric over the labelled predictions of the last closed window.",
)
DATA_QUALITY_SHARE = _m(
    "driftwarden_data_quality_share",
    "gauge",
    ("model", "version", "feature", "check"),
    "Share of rows failing a data quality check (missing, out_of_range, unseen_category, type_error).",
)
WINDOW_ROWS = _m(
    "driftwarden_window_rows",
    "gauge",
    ("model", "version"),
    "Rows in the last closed window.",
)
WINDOWS_TOTAL = _m(
    "driftwarden_windows_total",
    "counter",
    ("model", "version"),
    "Windows closed and evaluated.",
)
EVENTS_PROCESSED_TOTAL = _m(
    "driftwarden_events_processed_total",
    "counter",
    ("model",),
    "Valid events consumed by the detectors.",
)
EVENTS_INVALID_TOTAL = _m(
    "driftwarden_events_invalid_total",
    "counter",
    ("model", "reason"),
    "Events rejected (sent to the dead-letter topic), by reason.",
)
LABELS_JOINED_TOTAL = _m(
    "driftwarden_labels_joined_total",
    "counter",
    ("model",),
    "Feedback labels joined to their prediction.",
)
CONSUMER_LAG = _m(
    "driftwarden_consumer_lag",
    "gauge",
    ("topic", "partition"),
    "Messages between the committed offset and the partition's high watermark.",
)

# --- collector -------------------------------------------------------------------------
COLLECTOR_REQUESTS_TOTAL = _m(
    "driftwarden_collector_requests_total",
    "counter",
    ("model", "code"),
    "Requests proxied to the model, by HTTP status code.",
)
COLLECTOR_REQUEST_DURATION = _m(
    "driftwarden_collector_request_duration_seconds",
    "histogram",
    ("model",),
    "Time to answer a proxied request, the model's own time included.",
)
COLLECTOR_OVERHEAD = _m(
    "driftwarden_collector_overhead_seconds",
    "histogram",
    ("model",),
    "The proxy's own share of a request's time (duration minus the upstream call).",
)
COLLECTOR_EVENTS_SENT_TOTAL = _m(
    "driftwarden_collector_events_sent_total",
    "counter",
    ("model",),
    "Events acknowledged by Kafka.",
)
COLLECTOR_EVENTS_DROPPED_TOTAL = _m(
    "driftwarden_collector_events_dropped_total",
    "counter",
    ("model", "reason"),
    "Events dropped, by reason (spool_full, queue_full, ...).",
)
COLLECTOR_SPOOL_BYTES = _m(
    "driftwarden_collector_spool_bytes",
    "gauge",
    (),
    "Bytes waiting in the on-disk spool.",
)
COLLECTOR_EVENTS_SPOOLED_TOTAL = _m(
    "driftwarden_collector_events_spooled_total",
    "counter",
    ("model",),
    "Events written to the on-disk spool because Kafka was unreachable or slow.",
)

# --- retrain trigger -------------------------------------------------------------------
ALERTS_RECEIVED_TOTAL = _m(
    "driftwarden_alerts_received_total",
    "counter",
    ("alertname", "status"),
    "Alertmanager alerts received by the retrain trigger.",
)
RETRAIN_JOBS_TOTAL = _m(
    "driftwarden_retrain_jobs_total",
    "counter",
    ("model", "outcome"),
    "Retraining Jobs by outcome.",
)
CANARY_WEIGHT = _m(
    "driftwarden_canary_weight",
    "gauge",
    ("model",),
    "Share of traffic currently routed to the canary version.",
)
ROLLOUTS_TOTAL = _m(
    "driftwarden_rollouts_total",
    "counter",
    ("model", "outcome"),
    "Canary rollouts by outcome (promoted, rolled_back).",
)

CATALOGUE: dict[str, MetricDef] = {
    m.name: m for m in list(globals().values()) if isinstance(m, MetricDef)
}


def all_series_names() -> frozenset[str]:
    """Every series name a query may reference (histograms expand to _bucket/_sum/_count)."""
    return frozenset(s for m in CATALOGUE.values() for s in m.series_names())
