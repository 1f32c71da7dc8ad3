"""The collector's counters, and a Prometheus collector that reads them at scrape time.

The hot path never touches prometheus-client objects: the proxy's event-loop thread
increments plain ints and histogram buckets it alone writes, the delivery thread adds
its counts under a lock once per batch, and `CollectorMetrics.collect()` turns the
current state into metric families when Prometheus scrapes (STYLE.md, "Export state
when Prometheus scrapes"). Names and labels come from `driftwarden.metrics_catalogue`.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from driftwarden.metrics_catalogue import (
    COLLECTOR_CONNECTIONS,
    COLLECTOR_CONNECTIONS_CLOSED_TOTAL,
    COLLECTOR_DELIVERY_RESTARTS_TOTAL,
    COLLECTOR_EVENTS_DROPPED_TOTAL,
    COLLECTOR_EVENTS_SENT_TOTAL,
    COLLECTOR_EVENTS_SPOOLED_TOTAL,
    COLLECTOR_OVERHEAD,
    COLLECTOR_REQUEST_DURATION,
    COLLECTOR_REQUESTS_TOTAL,
    COLLECTOR_SPOOL_BYTES,
)

#: Seconds. A request through a sidecar takes from well under a millisecond to seconds.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Seconds. The proxy's own share, targeted at well under a millisecond.
OVERHEAD_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
)  # fmt: skip


class Histogram:
    """Bucket counts for one writer thread; read at scrape time."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        acc = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        return out

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile q (for logs and tests)."""
        target = q * self.count
        acc = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += n
            if acc >= target and acc > 0:
                return bound
        return 0.0


class CollectorStats:
    """Every number the collector exports. See the module docstring for who writes what."""

    def __init__(self) -> None:
        # event-loop thread only
        #: By status code; also `aborted` (the model closed the connection after the
        #: response head reached the client) and `499` (the client went away first).
        self.requests: Counter[int | str] = Counter()
        #: Client connections the proxy closed itself, by reason (see the catalogue).
        self.connections_closed: Counter[str] = Counter()
        self.connections = 0
        self.duration = Histogram(DURATION_BUCKETS)
        self.overhead = Histogram(OVERHEAD_BUCKETS)
        # any thread, under the lock
        self._lock = threading.Lock()
        self._sent: Counter[str] = Counter()
        self._spooled: Counter[str] = Counter()
        self._dropped: Counter[tuple[str, str]] = Counter()
        self.spool_bytes = 0
        self._restarts = 0

    def add_restart(self) -> None:
        with self._lock:
            self._restarts += 1

    @property
    def restarts(self) -> int:
        return self._restarts

    def add_sent(self, model: str, n: int = 1) -> None:
        with self._lock:
            self._sent[model] += n

    def add_spooled(self, model: str, n: int = 1) -> None:
        with self._lock:
            self._spooled[model] += n

    def add_dropped(self, model: str, reason: str, n: int = 1) -> None:
        with self._lock:
            self._dropped[(model, reason)] += n

    def add_counts(
        self,
        sent: Counter[str] | None = None,
        spooled: Counter[str] | None = None,
        dropped: Counter[tuple[str, str]] | None = None,
    ) -> None:
        """Many increments under one lock acquisition (the delivery thread, per batch)."""
        with self._lock:
            if sent:
                self._sent.update(sent)
            if spooled:
                self._spooled.update(spooled)
            if dropped:
                self._dropped.update(dropped)

    def sent(self) -> dict[str, int]:
        with self._lock:
            return dict(self._sent)

    def spooled(self) -> dict[str, int]:
        with self._lock:
            return dict(self._spooled)

    def dropped(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._dropped)


class CollectorMetrics(Collector):
    """A prometheus-client collector over `CollectorStats`; register it on any registry."""

    def __init__(
        self,
        stats: CollectorStats,
        model: str,
        version: str = "",
        spool_bytes: Callable[[], int] | None = None,
    ) -> None:
        self.stats = stats
        self.model = model
        # Request metrics carry the version so that a canary and its stable are compared.
        self.version = version
        self._spool_bytes = spool_bytes

    def collect(self) -> Iterator[Metric]:
        s, model, version = self.stats, self.model, self.version
        m = COLLECTOR_REQUESTS_TOTAL
        fam = CounterMetricFamily(m.name.removesuffix("_total"), m.help, labels=m.labels)
        for code, n in sorted((str(c), n) for c, n in dict(s.requests).items()):
            fam.add_metric([model, version, code], n)
        yield fam
        for m, h in ((COLLECTOR_REQUEST_DURATION, s.duration), (COLLECTOR_OVERHEAD, s.overhead)):
            hfam = HistogramMetricFamily(m.name, m.help, labels=m.labels)
            hfam.add_metric([model, version], h.cumulative(), h.sum)
            yield hfam
        for m, values in (
            (COLLECTOR_EVENTS_SENT_TOTAL, s.sent()),
            (COLLECTOR_EVENTS_SPOOLED_TOTAL, s.spooled()),
        ):
            fam = CounterMetricFamily(m.name.removesuffix("_total"), m.help, labels=m.labels)
            for name, n in sorted(values.items()):
                fam.add_metric([name], n)
            yield fam
        m = COLLECTOR_EVENTS_DROPPED_TOTAL
        fam = CounterMetricFamily(m.name.removesuffix("_total"), m.help, labels=m.labels)
        for (name, reason), n in sorted(s.dropped().items()):
            fam.add_metric([name, reason], n)
        yield fam
        m = COLLECTOR_SPOOL_BYTES
        value = self._spool_bytes() if self._spool_bytes is not None else s.spool_bytes
        yield GaugeMetricFamily(m.name, m.help, value=value)
        m = COLLECTOR_DELIVERY_RESTARTS_TOTAL
        yield CounterMetricFamily(m.name.removesuffix("_total"), m.help, value=s.restarts)
        m = COLLECTOR_CONNECTIONS
        yield GaugeMetricFamily(m.name, m.help, value=s.connections)
        m = COLLECTOR_CONNECTIONS_CLOSED_TOTAL
        fam = CounterMetricFamily(m.name.removesuffix("_total"), m.help, labels=m.labels)
        for reason, n in sorted(dict(s.connections_closed).items()):
            fam.add_metric([reason], n)
        yield fam

    def describe(self) -> Iterator[Metric]:
        return iter(())
