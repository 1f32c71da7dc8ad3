"""Test kit for the canary controller: a /metrics exporter of synthetic canary and stable
series that a real Prometheus scrapes.

Each `VersionProfile` describes what one version of a model looks like to Prometheus: its
request rate and error share (counters that grow with wall-clock time, so `rate()` sees
exactly that), its latency (a histogram whose every request falls in one bucket), and the
detectors' gauges (labelled performance, window rows, prediction drift distance, data
quality). The series carry the `version` label the controller compares by (DESIGN.md: the
collector's request metrics carry `version`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from driftwarden import metrics_catalogue as mc

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class VersionProfile:
    rps: float = 50.0
    error_share: float = 0.005
    latency_s: float = 0.02  # every request takes this long (falls in one bucket)
    accuracy: float | None = 0.9
    window_rows: int = 1000
    labelled_rows: int = 1000  # rows of the last performance window (labels joined)
    prediction_js: float | None = 0.05  # Jensen-Shannon distance of predictions to reference
    prediction_spread: float | None = 0.3  # standard deviation of predictions (0: a constant)
    missing_share: float | None = 0.01


GOOD = VersionProfile()
BAD = VersionProfile(
    error_share=0.2, latency_s=0.3, accuracy=0.7, prediction_js=0.9, prediction_spread=0.0
)


class SyntheticExporter(Collector):
    """Serves the profiles of `versions` of `model` on a free loopback port."""

    def __init__(self, model: str, versions: dict[str, VersionProfile]) -> None:
        self.model = model
        self.versions = dict(versions)
        self._lock = threading.Lock()
        self._t0 = time.time()
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def set(self, version: str, profile: VersionProfile | None) -> None:
        with self._lock:
            if profile is None:
                self.versions.pop(version, None)
            else:
                self.versions[version] = profile

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        elapsed = time.time() - self._t0
        with self._lock:
            versions = dict(self.versions)
        m = mc.COLLECTOR_REQUESTS_TOTAL
        req = CounterMetricFamily(
            m.name.removesuffix("_total"), m.help, labels=["model", "version", "code"]
        )
        m = mc.COLLECTOR_REQUEST_DURATION
        dur = HistogramMetricFamily(m.name, m.help, labels=["model", "version"])
        perf = GaugeMetricFamily(
            mc.MODEL_PERFORMANCE.name, "", labels=["model", "version", "metric"]
        )
        rows = GaugeMetricFamily(mc.WINDOW_ROWS.name, "", labels=["model", "version"])
        labelled = GaugeMetricFamily(
            mc.PERFORMANCE_WINDOW_ROWS.name, "", labels=["model", "version"]
        )
        pred = GaugeMetricFamily(
            mc.PREDICTION_DRIFT_SCORE.name, "", labels=["model", "version", "test"]
        )
        spread = GaugeMetricFamily(mc.PREDICTION_SPREAD.name, "", labels=["model", "version"])
        dq = GaugeMetricFamily(
            mc.DATA_QUALITY_SHARE.name, "", labels=["model", "version", "feature", "check"]
        )
        for version, p in sorted(versions.items()):
            total = p.rps * elapsed
            errors = total * p.error_share
            req.add_metric([self.model, version, "200"], total - errors)
            req.add_metric([self.model, version, "500"], errors)
            buckets = [(repr(b), total if p.latency_s <= b else 0.0) for b in BUCKETS]
            buckets.append(("+Inf", total))
            dur.add_metric([self.model, version], buckets, total * p.latency_s)
            if p.accuracy is not None:
                perf.add_metric([self.model, version, "accuracy"], p.accuracy)
            rows.add_metric([self.model, version], p.window_rows)
            if p.accuracy is not None:
                labelled.add_metric([self.model, version], p.labelled_rows)
            if p.prediction_js is not None:
                pred.add_metric([self.model, version, "jensenshannon"], p.prediction_js)
            if p.prediction_spread is not None:
                spread.add_metric([self.model, version], p.prediction_spread)
            if p.missing_share is not None:
                dq.add_metric([self.model, version, "amount", "missing"], p.missing_share)
        yield from (req, dur, perf, rows, labelled, pred, spread, dq)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
