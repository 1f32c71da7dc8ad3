"""Open-loop demo traffic: fixed request rate, drift from a known moment, late true labels.

Each request goes where the `TrafficSplit` says (the stable Deployment's collector, or the
canary's for `weight` percent); its label is drawn from the ground truth of the world the
row came from and posted to that collector's feedback endpoint after a delay. The generator
also keeps its own tally of labelled accuracy per version, which the summary and the report
use (the live view shows the detectors' own per-version accuracy from Prometheus).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from driftwarden.demo.cluster import Endpoint, TrafficSplit
from driftwarden.demo.data import MODEL, NO_DRIFT, Drift, sample_rows, true_probability


@dataclass
class Tally:
    labelled: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass
class TrafficStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    labels_sent: int = 0
    first_drifted_at: float | None = None  # wall clock of the first drifted request
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=2_000))
    # (version, drifted) -> labelled accuracy over the whole run
    accuracy: dict[tuple[str, bool], Tally] = field(default_factory=lambda: defaultdict(Tally))
    # second since start -> version -> tally (for the report's accuracy-over-time plot)
    per_second: dict[int, dict[str, Tally]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Tally))
    )
    served: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # version -> ok

    def rate(self, now: float, span: float = 5.0) -> float:
        return sum(1 for t in self.recent if now - t <= span) / span

    def recent_accuracy(self, version: str, now_s: int, span: int = 15) -> float | None:
        t = Tally()
        for s in range(max(0, now_s - span), now_s + 1):
            x = self.per_second.get(s, {}).get(version)
            if x is not None:
                t.labelled += x.labelled
                t.correct += x.correct
        return t.accuracy if t.labelled >= 20 else None


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    rate: float = 100.0  # requests per second
    drift_after_s: float | None = 30.0  # None: never drift
    label_delay_s: float = 2.0
    label_share: float = 0.8
    seed: int = 11
    drift: Drift = field(default_factory=Drift)


async def run_traffic(
    plan: TrafficPlan, split: TrafficSplit, stats: TrafficStats, stop: asyncio.Event
) -> None:
    """Send one-row requests at a fixed rate until `stop` is set (open loop: no waiting on replies)."""
    rng = np.random.default_rng(plan.seed)
    start = time.monotonic()
    # (due, feedback url, id, label)
    pending_labels: deque[tuple[float, str, str, int]] = deque()
    in_flight: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(
            endpoint: Endpoint, request_id: str, row: dict[str, object], label: int, drifted: bool
        ) -> None:
            url = f"{endpoint.proxy_url}/v1/models/{MODEL}:predict"
            try:
                async with session.post(
                    url, json={"instances": [row]}, headers={"X-Request-ID": request_id}
                ) as r:
                    body = await r.json()
                    if r.status != 200:
                        stats.failed += 1
                        return
                    stats.ok += 1
                    stats.served[endpoint.version] += 1
                    if rng.random() >= plan.label_share:
                        return
                    p = float(body["predictions"][0])
                    correct = int((p >= 0.5) == bool(label))
                    for t in (
                        stats.accuracy[(endpoint.version, drifted)],
                        stats.per_second[int(time.monotonic() - start)][endpoint.version],
                    ):
                        t.labelled += 1
                        t.correct += correct
                    pending_labels.append(
                        (
                            time.monotonic() + plan.label_delay_s,
                            endpoint.feedback_url,
                            request_id,
                            label,
                        )
                    )
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, TypeError):
                stats.failed += 1

        async def flush_labels(now: float) -> None:
            batches: dict[str, list[dict[str, object]]] = defaultdict(list)
            while pending_labels and pending_labels[0][0] <= now:
                _, url, rid, label = pending_labels.popleft()
                batches[url].append({"id": rid, "model": MODEL, "label": label})
            for url, batch in batches.items():
                try:
                    async with session.post(url, json=batch) as r:
                        if r.status < 300:
                            stats.labels_sent += len(batch)
                except (TimeoutError, aiohttp.ClientError):
                    pass  # that collector has gone (a retired pod): its labels are lost

        n = 0
        while not stop.is_set():
            now = time.monotonic()
            drifting = plan.drift_after_s is not None and now - start >= plan.drift_after_s
            if drifting and stats.first_drifted_at is None:
                stats.first_drifted_at = time.time()
            world = plan.drift if drifting else NO_DRIFT
            columns = sample_rows(rng, 1, world)
            label = int(rng.random() < true_probability(columns, world)[0])
            row = {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in columns.items()}
            endpoint = split.pick()
            if endpoint is not None:
                task = asyncio.create_task(
                    one(endpoint, f"demo-{plan.seed}-{n}", row, label, drifting)
                )
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                stats.sent += 1
                stats.recent.append(now)
            n += 1
            await flush_labels(now)
            next_at = start + n / plan.rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=5)
