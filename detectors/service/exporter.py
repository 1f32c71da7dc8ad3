"""Prometheus export: a custom collector that reads the detectors' state when scraped, and
a small HTTP server for `/metrics` and `/healthz`.

The hot loop never touches a metric object. `DetectorsCollector.collect()` asks for an
`ExportSnapshot` (built under the service's lock from the shards it owns right now) and
turns it into the metric families of DESIGN.md, every name and label set taken from
`driftwarden.metrics_catalogue`.

Per-feature series are bounded: at most `max_feature_series` features per (model, version)
get their own `feature` label (the first ones in spec order, a stable set). When a model
has more, the rest are summarised in one series `feature="_other"` of
`driftwarden_feature_drift_detected` (1 when any of them drifted) and the cap is logged
once per model and reported by `/healthz`; the dataset drift share always counts every
feature. The cap is never silent.

Sequential detection (the spec's `drift.sequential.enabled`) is exported on its own, not
folded into `driftwarden_feature_drift_detected` (which stays the window test's verdict,
equal to `driftwarden drift` on the same rows): `driftwarden_feature_drift_sequential` and
`driftwarden_dataset_drift_sequential` are the CUSUM statistics in units of their alarm
limits (an alarm at 1 or more); features past the cap get their largest as `_other`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from detectors.service.results import WindowResult
from driftwarden import metrics_catalogue as mc

__all__ = [
    "OTHER_FEATURES",
    "DetectorsCollector",
    "ExportSnapshot",
    "MetricsServer",
    "ModelExport",
    "VersionExport",
]

_log = logging.getLogger(__name__)

#: `feature` label of the series that summarises features past the cap.
OTHER_FEATURES = "_other"


@dataclass
class VersionExport:
    windows_total: int = 0
    drift: WindowResult | None = None
    performance: WindowResult | None = None


@dataclass
class ModelExport:
    model: str
    processed: int = 0
    invalid: dict[str, int] = field(default_factory=dict)
    labels_joined: int = 0
    versions: dict[str, VersionExport] = field(default_factory=dict)

    def merge(self, other: ModelExport) -> None:
        """Add another shard's view of the same model (a model seen in two partitions)."""
        self.processed += other.processed
        self.labels_joined += other.labels_joined
        for reason, n in other.invalid.items():
            self.invalid[reason] = self.invalid.get(reason, 0) + n
        for version, v in other.versions.items():
            mine = self.versions.setdefault(version, VersionExport())
            mine.windows_total += v.windows_total
            for kind in ("drift", "performance"):
                theirs = getattr(v, kind)
                ours = getattr(mine, kind)
                if theirs is not None and (ours is None or theirs.end_ts >= ours.end_ts):
                    setattr(mine, kind, theirs)


@dataclass
class ExportSnapshot:
    models: dict[str, ModelExport] = field(default_factory=dict)
    unknown_invalid: dict[str, int] = field(default_factory=dict)
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


def _gauge(m: mc.MetricDef) -> GaugeMetricFamily:
    assert m.type == "gauge"
    return GaugeMetricFamily(m.name, m.help, labels=list(m.labels))


def _counter(m: mc.MetricDef) -> CounterMetricFamily:
    assert m.type == "counter"
    # prometheus_client appends `_total` itself; the catalogue has the full name
    return CounterMetricFamily(m.name.removesuffix("_total"), m.help, labels=list(m.labels))


class DetectorsCollector(Collector):
    """Reads `snapshot()` at scrape time; register it with `registry.register(...)`."""

    def __init__(
        self, snapshot: Callable[[], ExportSnapshot], *, max_feature_series: int = 200
    ) -> None:
        self._snapshot = snapshot
        self.max_feature_series = max_feature_series
        self.capped: dict[str, int] = {}  # model -> features past the cap (last scrape)
        self._warned: set[str] = set()

    def describe(self) -> list[Metric]:
        # no describe-time scrape (the state may not exist yet)
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        score = _gauge(mc.FEATURE_DRIFT_SCORE)
        threshold = _gauge(mc.FEATURE_DRIFT_THRESHOLD)
        detected = _gauge(mc.FEATURE_DRIFT_DETECTED)
        sequential = _gauge(mc.FEATURE_DRIFT_SEQUENTIAL)
        ds_sequential = _gauge(mc.DATASET_DRIFT_SEQUENTIAL)
        ds_share = _gauge(mc.DATASET_DRIFT_SHARE)
        ds_detected = _gauge(mc.DATASET_DRIFT_DETECTED)
        pred = _gauge(mc.PREDICTION_DRIFT_SCORE)
        spread = _gauge(mc.PREDICTION_SPREAD)
        mmd = _gauge(mc.MULTIVARIATE_DRIFT_PVALUE)
        perf = _gauge(mc.MODEL_PERFORMANCE)
        quality = _gauge(mc.DATA_QUALITY_SHARE)
        rows = _gauge(mc.WINDOW_ROWS)
        labelled_rows = _gauge(mc.PERFORMANCE_WINDOW_ROWS)
        windows = _counter(mc.WINDOWS_TOTAL)
        processed = _counter(mc.EVENTS_PROCESSED_TOTAL)
        invalid = _counter(mc.EVENTS_INVALID_TOTAL)
        joined = _counter(mc.LABELS_JOINED_TOTAL)
        lag = _gauge(mc.CONSUMER_LAG)
        cap = self.max_feature_series
        for name, m in sorted(snap.models.items()):
            processed.add_metric([name], m.processed)
            joined.add_metric([name], m.labels_joined)
            for reason, n in sorted(m.invalid.items()):
                invalid.add_metric([name, reason], n)
            for version, v in sorted(m.versions.items()):
                if v.windows_total:
                    windows.add_metric([name, version], v.windows_total)
                r = v.drift
                if r is not None:
                    rows.add_metric([name, version], r.rows)
                    kept = r.features[:cap]
                    rest = r.features[cap:]
                    for f in kept:
                        if f.score is not None:
                            score.add_metric([name, version, f.name, f.test], f.score)
                        if f.test:
                            threshold.add_metric([name, version, f.name, f.test], f.threshold)
                        detected.add_metric(
                            [name, version, f.name], 1.0 if f.drift_detected else 0.0
                        )
                        if f.sequential_score is not None:
                            sequential.add_metric([name, version, f.name], f.sequential_score)
                    if rest:
                        detected.add_metric(
                            [name, version, OTHER_FEATURES],
                            1.0 if any(f.drift_detected for f in rest) else 0.0,
                        )
                        rest_seq = [
                            f.sequential_score for f in rest if f.sequential_score is not None
                        ]
                        if rest_seq:
                            sequential.add_metric([name, version, OTHER_FEATURES], max(rest_seq))
                        self._report_cap(name, len(rest))
                    if r.sequential_score is not None:
                        ds_sequential.add_metric([name, version], r.sequential_score)
                    if r.drift_share is not None:
                        ds_share.add_metric([name, version], r.drift_share)
                    if r.dataset_drift is not None:
                        ds_detected.add_metric([name, version], 1.0 if r.dataset_drift else 0.0)
                    if r.prediction is not None and r.prediction.score is not None:
                        pred.add_metric([name, version, r.prediction.test], r.prediction.score)
                    if r.prediction_spread is not None:
                        spread.add_metric([name, version], r.prediction_spread)
                    if r.multivariate_pvalue is not None:
                        mmd.add_metric([name, version], r.multivariate_pvalue)
                    for fname, checks in list(r.quality.items())[:cap]:
                        for check, share in checks.items():
                            if share is not None:
                                quality.add_metric([name, version, fname, check], share)
                p = v.performance
                if p is not None:
                    labelled_rows.add_metric([name, version], p.rows)
                    for metric, value in sorted(p.performance.items()):
                        if value is not None:
                            perf.add_metric([name, version, metric], value)
        for reason, n in sorted(snap.unknown_invalid.items()):
            invalid.add_metric(["unknown", reason], n)
        for (topic, partition), n in sorted(snap.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield from (
            score,
            threshold,
            detected,
            sequential,
            ds_sequential,
            ds_share,
            ds_detected,
            pred,
            spread,
            mmd,
            perf,
            quality,
            rows,
            labelled_rows,
        )
        yield from (windows, processed, invalid, joined, lag)

    def _report_cap(self, model: str, n: int) -> None:
        self.capped[model] = n
        if model not in self._warned:
            self._warned.add(model)
            _log.warning(
                "model %s: %d feature(s) past the per-model series cap (%d) are exported only "
                "as feature=%r of %s; raise --max-feature-series to export them",
                model,
                n,
                self.max_feature_series,
                OTHER_FEATURES,
                mc.FEATURE_DRIFT_DETECTED.name,
            )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept"))
            body = encoder(self.server.registry)
            self._send(200, content_type, body)
        elif path in ("/healthz", "/readyz"):
            ok, detail = self.server.health()
            body = json.dumps(detail, default=str).encode()
            self._send(200 if ok else 503, "application/json", body)
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("http: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    health: Callable[[], tuple[bool, dict[str, Any]]]


class MetricsServer:
    """`/metrics` (the registry, text or OpenMetrics) and `/healthz` on a background thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        *,
        host: str = "0.0.0.0",
        port: int = 0,
    ) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.registry = registry
        self._server.health = health
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
