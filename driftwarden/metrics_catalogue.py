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
FEATURE_DRIFT_THRESHOLD = _m(
    "driftwarden_feature_drift_threshold",
    "gauge",
    ("model", "version", "feature", "test"),
    "Threshold the feature's score was compared with in the last closed window (the test's "
    "default, the spec's, or calibrated on the reference with drift.thresholds: calibrated).",
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
PREDICTION_SPREAD = _m(
    "driftwarden_prediction_spread",
    "gauge",
    ("model", "version"),
    "Spread of the model's predictions in the last closed window (standard deviation; for "
    "class predictions 1 - the most frequent class's share); 0 when one constant was predicted.",
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
PERFORMANCE_WINDOW_ROWS = _m(
    "driftwarden_performance_window_rows",
    "gauge",
    ("model", "version"),
    "Labelled rows in the last closed performance window (what its metrics were computed on).",
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
FEATURE_DRIFT_SEQUENTIAL = _m(
    "driftwarden_feature_drift_sequential",
    "gauge",
    ("model", "version", "feature"),
    "Sequential (CUSUM) drift statistic of the feature after the last closed window, in units "
    "of its alarm limit: 1 or more means a persistent shift (drift.sequential.enabled only).",
)
DATASET_DRIFT_SEQUENTIAL = _m(
    "driftwarden_dataset_drift_sequential",
    "gauge",
    ("model", "version"),
    "Sequential (CUSUM) statistic over the share of unusual features after the last closed "
    "window, in units of its alarm limit: 1 or more is an alarm (drift.sequential.enabled only).",
)

# --- collector -------------------------------------------------------------------------
COLLECTOR_REQUESTS_TOTAL = _m(
    "driftwarden_collector_requests_total",
    "counter",
    ("model", "version", "code"),
    "Requests proxied to the model, by HTTP status code.",
)
COLLECTOR_REQUEST_DURATION = _m(
    "driftwarden_collector_request_duration_seconds",
    "histogram",
    ("model", "version"),
    "Time to answer a proxied request, the model's own time included.",
)
COLLECTOR_OVERHEAD = _m(
    "driftwarden_collector_overhead_seconds",
    "histogram",
    ("model", "version"),
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
COLLECTOR_DELIVERY_RESTARTS_TOTAL = _m(
    "driftwarden_collector_delivery_restarts_total",
    "counter",
    (),
    "Restarts of the delivery thread (producer and spool) after an unexpected error.",
)
COLLECTOR_CONNECTIONS = _m(
    "driftwarden_collector_connections",
    "gauge",
    (),
    "Client connections open on the proxy port.",
)
COLLECTOR_CONNECTIONS_CLOSED_TOTAL = _m(
    "driftwarden_collector_connections_closed_total",
    "counter",
    ("reason",),
    "Client connections the proxy closed itself (header_timeout, body_timeout, idle_timeout,"
    " shed: the oldest idle connection closed at the connection cap, refused: cap reached).",
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
RETRAIN_DECISIONS_TOTAL = _m(
    "driftwarden_retrain_decisions_total",
    "counter",
    ("model", "decision"),
    "Decisions on received alerts (launched, in_flight, cooldown, over_capacity, no_policy,"
    " not_retrain, resolved).",
)
RETRAIN_JOBS_RUNNING = _m(
    "driftwarden_retrain_jobs_running",
    "gauge",
    ("model",),
    "Retraining Jobs of the model that have neither completed nor failed.",
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
CANARY_CHECK = _m(
    "driftwarden_canary_check",
    "gauge",
    ("model", "check"),
    "Last verdict of a canary analysis check (error_rate, latency_p99, performance,"
    " prediction, data_quality): 1 pass, 0 fail, -1 inconclusive.",
)

# --- injector (admission webhook) ------------------------------------------------------
INJECTOR_REVIEWS_TOTAL = _m(
    "driftwarden_injector_reviews_total",
    "counter",
    ("outcome", "reason"),
    "AdmissionReviews answered: outcome injected/skipped/error/invalid, reason why.",
)
INJECTOR_PODS_MISSING_SIDECAR = _m(
    "driftwarden_injector_pods_missing_sidecar",
    "gauge",
    ("namespace",),
    "Pods that opted in to injection but run without the collector sidecar (last reconcile).",
)
INJECTOR_CERT_EXPIRY = _m(
    "driftwarden_injector_cert_expiry_timestamp_seconds",
    "gauge",
    (),
    "Unix time at which the webhook's serving certificate expires.",
)

# --- recording rules (alerts/rules.py defines them; dashboards and alerts query them) -----
#: `driftwarden_window_rows` of windows big enough to alert on (the model's minimum).
WINDOW_ROWS_SUFFICIENT = "driftwarden:window_rows:sufficient"
#: Fraction of samples over the configured range in which a feature was flagged drifted.
FEATURE_DRIFT_PERSISTENCE = "driftwarden:feature_drift:persistence"
#: 1 when the prediction drift score crosses its test's threshold, else 0.
PREDICTION_DRIFT_DETECTED = "driftwarden:prediction_drift:detected"
#: Per (model, metric): the floor a higher-is-better metric must stay above.
PERFORMANCE_FLOOR = "driftwarden:model_performance:floor"
#: Per (model, metric): the ceiling an error metric must stay below.
PERFORMANCE_CEILING = "driftwarden:model_performance:ceiling"
#: Per (model, version, metric): average over the baseline range, offset into the past.
PERFORMANCE_BASELINE = "driftwarden:model_performance:baseline"
#: Valid events consumed per second, by model.
EVENTS_PROCESSED_RATE = "driftwarden:events_processed:rate5m"
#: Events rejected per second, by model and reason.
EVENTS_INVALID_RATE = "driftwarden:events_invalid:rate5m"
#: Requests proxied per second, by model and status code.
COLLECTOR_REQUESTS_RATE = "driftwarden:collector_requests:rate5m"
#: Events acknowledged by Kafka per second, by model.
COLLECTOR_SENT_RATE = "driftwarden:collector_events_sent:rate5m"
#: Events dropped per second, by model and reason.
COLLECTOR_DROPPED_RATE = "driftwarden:collector_events_dropped:rate5m"
#: Events written to the disk spool per second, by model.
COLLECTOR_SPOOLED_RATE = "driftwarden:collector_events_spooled:rate5m"
#: Consumer lag per topic (each partition counted once, however many replicas report it).
CONSUMER_LAG_SUM = "driftwarden:consumer_lag:sum"

RECORDED_NAMES: frozenset[str] = frozenset(
    {
        WINDOW_ROWS_SUFFICIENT,
        FEATURE_DRIFT_PERSISTENCE,
        PREDICTION_DRIFT_DETECTED,
        PERFORMANCE_FLOOR,
        PERFORMANCE_CEILING,
        PERFORMANCE_BASELINE,
        EVENTS_PROCESSED_RATE,
        EVENTS_INVALID_RATE,
        COLLECTOR_REQUESTS_RATE,
        COLLECTOR_SENT_RATE,
        COLLECTOR_DROPPED_RATE,
        COLLECTOR_SPOOLED_RATE,
        CONSUMER_LAG_SUM,
    }
)

CATALOGUE: dict[str, MetricDef] = {
    m.name: m for m in list(globals().values()) if isinstance(m, MetricDef)
}


def all_series_names() -> frozenset[str]:
    """Every series name a query may reference (histograms expand to _bucket/_sum/_count)."""
    return frozenset(s for m in CATALOGUE.values() for s in m.series_names())
