"""From a proxied request/response pair to records: what the proxy hands to delivery.

The proxy's event loop does only the cheap part (route match, sampling decision, keeping
the body bytes); the `CaptureJob` it submits is run by the delivery thread, which decodes
the JSON, applies the payload format, builds and redacts the events and encodes them.
A pair that yields no event is counted by reason and sent to the dead-letter topic
(without its bodies, which may hold values that redaction must keep in the pod).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from fnmatch import translate
from typing import Final

from collector.delivery import Delivery, Drops
from collector.errors import CaptureError
from collector.events import EventBuilder, Record, normalise_request_id
from collector.metrics import CollectorStats
from collector.payloads import MAX_JSON_DEPTH, PayloadParser, decode_body, parse_pair
from collector.sampling import Sampler

#: Prediction routes captured by default, per payload format (shell-style globs).
DEFAULT_ROUTES: Final[dict[str, tuple[str, ...]]] = {
    "kserve-v1": ("/v1/models/*:predict",),
    "open-inference-v2": ("/v2/models/*/infer", "/v2/models/*/versions/*/infer"),
    "json": ("/predict", "/invocations"),
}
CAPTURE_METHODS: Final = frozenset({b"POST", b"PUT"})


class RouteMatcher:
    """Which paths are prediction routes: shell-style globs (`*` also matches `/`)."""

    __slots__ = ("_cache", "_regex", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        body = "|".join(f"(?:{translate(p)})" for p in self.patterns) or r"(?!x)x"
        self._regex = re.compile(body.encode())
        self._cache: dict[bytes, bool] = {}

    def __call__(self, path: bytes) -> bool:
        hit = self._cache.get(path)
        if hit is None:
            hit = self._regex.fullmatch(path) is not None
            if len(self._cache) < 4096:
                self._cache[path] = hit
        return hit


class CaptureJob:
    """One captured pair, turned into records on the delivery thread."""

    __slots__ = (
        "capturer",
        "latency_ms",
        "request_body",
        "request_encoding",
        "request_id",
        "response_body",
        "response_encoding",
        "route",
        "trace_id",
        "ts",
    )

    def __init__(
        self,
        capturer: Capturer,
        request_body: bytes,
        response_body: bytes,
        *,
        request_id: str | None,
        ts: float,
        latency_ms: float,
        trace_id: str | None = None,
        request_encoding: str | None = None,
        response_encoding: str | None = None,
        route: str | None = None,
    ) -> None:
        self.capturer = capturer
        self.request_body = request_body
        self.response_body = response_body
        self.request_id = request_id
        self.ts = ts
        self.latency_ms = latency_ms
        self.trace_id = trace_id
        self.request_encoding = request_encoding
        self.response_encoding = response_encoding
        self.route = route

    @property
    def model(self) -> str:
        return self.capturer.builder.model

    def __call__(self, drops: Drops) -> list[Record]:
        c = self.capturer
        builder = c.builder
        try:
            request = decode_body(self.request_body, self.request_encoding, c.max_json_depth)
            response = decode_body(self.response_body, self.response_encoding, c.max_json_depth)
            rows = parse_pair(c.parser, request, response)
            rid = self.request_id or normalise_request_id(c.parser.request_id(request))
            events = builder.predictions(
                rows,
                request_id=rid,
                ts=self.ts,
                latency_ms=self.latency_ms,
                trace_id=self.trace_id,
            )
            return builder.prediction_records(events)
        except CaptureError as e:
            drops[(builder.model, e.reason)] += 1
            return [
                builder.deadletter(
                    e.reason, e.detail, ts=self.ts, request_id=self.request_id, route=self.route
                )
            ]


class Capturer:
    """The proxy's view of capture: route match, sampling, and handing pairs to delivery."""

    def __init__(
        self,
        *,
        parser: PayloadParser,
        builder: EventBuilder,
        delivery: Delivery,
        stats: CollectorStats,
        sampler: Sampler | None = None,
        routes: Sequence[str] | None = None,
        max_body_bytes: int = 1024 * 1024,
        max_json_depth: int = MAX_JSON_DEPTH,
        rng: random.Random | None = None,
    ) -> None:
        """`rng` draws the sampling decision of requests without an id (seed it in tests)."""
        self.parser = parser
        self.builder = builder
        self.delivery = delivery
        self.stats = stats
        self.sampler = sampler or Sampler(1.0)
        self.routes = RouteMatcher(
            routes if routes is not None else DEFAULT_ROUTES.get(parser.format, ())
        )
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self._random = (rng if rng is not None else random.Random()).random

    @property
    def model(self) -> str:
        return self.builder.model

    def wants(self, method: bytes, path: bytes) -> bool:
        """Is this request a prediction to capture (before sampling)?"""
        return method in CAPTURE_METHODS and self.routes(path)

    def keep(self, request_id: str | None) -> bool:
        """The sampling decision (deterministic when the request has an id)."""
        sampler = self.sampler
        if sampler.rate >= 1.0:
            return True
        if request_id is None:
            return self._random() < sampler.rate
        return sampler.keep(request_id)

    def submit(
        self,
        request_body: bytes,
        response_body: bytes,
        *,
        request_id: str | None,
        ts: float,
        latency_ms: float,
        trace_id: str | None = None,
        request_encoding: str | None = None,
        response_encoding: str | None = None,
        route: str | None = None,
    ) -> bool:
        return self.delivery.submit(
            CaptureJob(
                self,
                request_body,
                response_body,
                request_id=request_id,
                ts=ts,
                latency_ms=latency_ms,
                trace_id=trace_id,
                request_encoding=request_encoding,
                response_encoding=response_encoding,
                route=route,
            )
        )

    def reject(
        self,
        reason: str,
        detail: str,
        *,
        ts: float,
        request_id: str | None = None,
        route: str | None = None,
        deadletter: bool = True,
    ) -> None:
        """A pair that yields no event for a reason the proxy already knows."""
        self.stats.add_dropped(self.builder.model, reason)
        if deadletter:
            self.delivery.submit(
                self.builder.deadletter(reason, detail, ts=ts, request_id=request_id, route=route)
            )
