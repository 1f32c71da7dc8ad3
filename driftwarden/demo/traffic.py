"""Open-loop demo traffic: fixed request rate, drift from a known moment, late labels."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from driftwarden.demo.data import MODEL, NO_DRIFT, Drift, labels_for, sample_rows


@dataclass
class TrafficStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    labels_sent: int = 0
    first_drifted_at: float | None = None  # wall clock of the first drifted request
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=2_000))

    def rate(self, now: float, span: float = 5.0) -> float:
        return sum(1 for t in self.recent if now - t <= span) / span


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    proxy_url: str  # the collector's proxy, in front of the model
    feedback_url: str  # the collector's POST /v1/feedback
    rate: float = 100.0  # requests per second
    drift_after_s: float = 30.0
    label_delay_s: float = 2.0
    label_share: float = 0.5
    seed: int = 11
    drift: Drift = field(default_factory=Drift)


async def run_traffic(plan: TrafficPlan, stats: TrafficStats, stop: asyncio.Event) -> None:
    """Send one-row requests at a fixed rate until `stop` is set (open loop: no waiting on replies)."""
    rng = np.random.default_rng(plan.seed)
    start = time.monotonic()
    pending_labels: deque[tuple[float, str, float]] = deque()
    in_flight: set[asyncio.Task[None]] = set()
    predict = f"{plan.proxy_url}/v1/models/{MODEL}:predict"
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(request_id: str, row: dict[str, object]) -> None:
            try:
                async with session.post(
                    predict, json={"instances": [row]}, headers={"X-Request-ID": request_id}
                ) as r:
                    body = await r.json()
                    if r.status == 200:
                        stats.ok += 1
                        if rng.random() < plan.label_share:
                            p = float(body["predictions"][0])
                            pending_labels.append(
                                (time.monotonic() + plan.label_delay_s, request_id, p)
                            )
                    else:
                        stats.failed += 1
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError):
                stats.failed += 1

        async def flush_labels(now: float) -> None:
            batch = []
            while pending_labels and pending_labels[0][0] <= now:
                _, rid, p = pending_labels.popleft()
                batch.append({"id": rid, "model": MODEL, "label": labels_for([p], rng)[0]})
            if batch:
                try:
                    async with session.post(plan.feedback_url, json=batch) as r:
                        if r.status < 300:
                            stats.labels_sent += len(batch)
                except (TimeoutError, aiohttp.ClientError):
                    pass

        n = 0
        while not stop.is_set():
            now = time.monotonic()
            drifting = now - start >= plan.drift_after_s
            if drifting and stats.first_drifted_at is None:
                stats.first_drifted_at = time.time()
            columns = sample_rows(rng, 1, plan.drift if drifting else NO_DRIFT)
            row = {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in columns.items()}
            request_id = f"demo-{plan.seed}-{n}"
            task = asyncio.create_task(one(request_id, row))
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
