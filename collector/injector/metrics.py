"""The injector's counters, read by Prometheus at scrape time (plain ints on the hot path)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.injector.patch import REASONS
from driftwarden.metrics_catalogue import (
    INJECTOR_CERT_EXPIRY,
    INJECTOR_PODS_MISSING_SIDECAR,
    INJECTOR_REVIEWS_TOTAL,
)

#: Bodies that are not an AdmissionReview (answered 400), by why.
INVALID_REASONS = ("bad_json", "not_admission_review", "too_large", "bad_request")


class InjectorStats:
    """Counts every review by (outcome, reason); every known pair is exported from zero."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reviews: dict[tuple[str, str], int] = {
            (outcome, reason): 0 for outcome, reasons in REASONS.items() for reason in reasons
        }
        self._reviews.update({("invalid", r): 0 for r in INVALID_REASONS})
        self._missing: dict[str, int] = {}
        self.cert_expiry: float | None = None

    def count(self, outcome: str, reason: str) -> None:
        key = (outcome, reason)
        self._reviews[key] = self._reviews.get(key, 0) + 1

    def reviews(self) -> dict[tuple[str, str], int]:
        return dict(self._reviews)

    def set_missing(self, by_namespace: Mapping[str, int]) -> None:
        """The reconciler's last count of opted-in pods running without the sidecar."""
        with self._lock:
            previous = self._missing
            # Namespaces that had missing pods go back to 0 rather than vanish.
            self._missing = {ns: 0 for ns in previous} | dict(by_namespace)

    def missing(self) -> dict[str, int]:
        with self._lock:
            return dict(self._missing)


class InjectorMetrics(Collector):
    """A prometheus-client collector over `InjectorStats` (register it on your registry)."""

    def __init__(self, stats: InjectorStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        m = INJECTOR_REVIEWS_TOTAL
        reviews = CounterMetricFamily(m.name.removesuffix("_total"), m.help, labels=m.labels)
        for (outcome, reason), n in sorted(self._stats.reviews().items()):
            reviews.add_metric([outcome, reason], n)
        yield reviews
        g = INJECTOR_PODS_MISSING_SIDECAR
        missing = GaugeMetricFamily(g.name, g.help, labels=g.labels)
        for ns, n in sorted(self._stats.missing().items()):
            missing.add_metric([ns], n)
        yield missing
        if self._stats.cert_expiry is not None:
            c = INJECTOR_CERT_EXPIRY
            yield GaugeMetricFamily(c.name, c.help, value=self._stats.cert_expiry)

    def describe(self) -> Iterator[Metric]:
        return iter(())
