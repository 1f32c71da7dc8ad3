"""Sampling, redaction, event building, the capture job and the feedback body format."""

from __future__ import annotations

import uuid
from collections import Counter

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from collector.capture import Capturer, RouteMatcher
from collector.events import EventBuilder, Record, normalise_request_id
from collector.feedback import FeedbackError, parse_feedback
from collector.metrics import CollectorMetrics, CollectorStats, Histogram
from collector.payloads import make_parser
from collector.redaction import Redactor
from collector.sampling import Sampler
from driftwarden.kafka import Topics
from driftwarden.metrics_catalogue import CATALOGUE
from driftwarden.schema import decode_feedback, decode_prediction

# --- sampling ---------------------------------------------------------------------------


def test_sampling_is_deterministic_by_request_id() -> None:
    a, b = Sampler(0.3), Sampler(0.3)
    ids = [uuid.uuid4().hex for _ in range(5000)]
    assert [a.keep(i) for i in ids] == [b.keep(i) for i in ids]
    share = sum(a.keep(i) for i in ids) / len(ids)
    assert 0.27 < share < 0.33
    assert all(Sampler(1.0).keep(i) for i in ids[:100])
    assert not any(Sampler(0.0).keep(i) for i in ids[:100])
    with pytest.raises(ValueError):
        Sampler(1.5)


@settings(max_examples=200, deadline=None)
@given(rid=st.text(min_size=1, max_size=50), low=st.floats(0, 1), high=st.floats(0, 1))
def test_property_a_request_kept_at_a_rate_is_kept_at_any_higher_rate(rid, low, high) -> None:
    low, high = min(low, high), max(low, high)
    if Sampler(low).keep(rid):
        assert Sampler(high).keep(rid)


# --- redaction --------------------------------------------------------------------------


def test_redaction_modes() -> None:
    features = {"email": "a@b.c", "age": 30, "ssn": None}
    assert Redactor(["email", "ssn"]).apply(features) == {"age": 30}
    assert Redactor(["email"], "null").apply(features) == {"email": None, "age": 30, "ssn": None}
    hashed = Redactor(["email"], "hash", salt="s1").apply(features)
    assert hashed["email"].startswith("h:") and len(hashed["email"]) == 18
    assert hashed["email"] == Redactor(["email"], "hash", salt="s1").apply(features)["email"]
    assert hashed["email"] != Redactor(["email"], "hash", salt="s2").apply(features)["email"]
    assert features == {"email": "a@b.c", "age": 30, "ssn": None}  # input untouched
    untouched = {"age": 1}
    assert Redactor(["email"]).apply(untouched) is untouched
    with pytest.raises(ValueError):
        Redactor(["x"], "scramble")  # type: ignore[arg-type]


# --- events -----------------------------------------------------------------------------


def test_single_row_takes_the_request_id_and_a_batch_gets_row_suffixes() -> None:
    builder = EventBuilder(
        model="m",
        version="v2",
        meta={"pod": "p-1", "namespace": None},
        redactor=Redactor(["secret"]),
    )
    one = builder.predictions(
        [({"a": 1, "secret": "x"}, 0.5)],
        request_id="req-1",
        ts=10.0,
        latency_ms=2.0,
        trace_id="ab" * 16,
    )
    assert [e.id for e in one] == ["req-1"]
    assert one[0].features == {"a": 1}
    assert one[0].meta == {"pod": "p-1", "trace_id": "ab" * 16}
    batch = builder.predictions([({"a": 1}, 0.1), ({"a": 2}, 0.2)], request_id="req-2", ts=10.0)
    assert [e.id for e in batch] == ["req-2-0", "req-2-1"]
    assert batch[1].meta == {"pod": "p-1", "request_id": "req-2", "row": 1}
    generated = builder.predictions([({"a": 1}, 0.1)], request_id=None, ts=1.0)
    assert len(generated[0].id) == 32
    records = builder.prediction_records(batch)
    assert {r.topic for r in records} == {"driftwarden.predictions"} and records[0].key == b"m"
    assert decode_prediction(records[1].value) == batch[1]  # valid against the schema


def test_request_ids_are_normalised() -> None:
    assert normalise_request_id("  abc ") == "abc"
    assert normalise_request_id("") is None and normalise_request_id(None) is None
    long = normalise_request_id("x" * 1000)
    assert long is not None and long.startswith("h-") and len(long) == 34


def test_feedback_and_deadletter_records() -> None:
    builder = EventBuilder(model="m", topics=Topics.with_prefix("t"))
    record = builder.feedback_record(builder.feedback("req-1", 1, ts=5.0))
    assert record.topic == "t.feedback"
    assert decode_feedback(record.value).label == 1
    dead = builder.deadletter("malformed_json", "x" * 2000, ts=1.0, request_id="r", route="/p")
    doc = msgspec.json.decode(dead.value)
    assert dead.topic == "t.deadletter"
    assert doc["schema"] == "driftwarden.deadletter/v1" and doc["reason"] == "malformed_json"
    assert len(doc["detail"]) == 500 and "body" not in doc


# --- the capture job (runs on the delivery thread) ---------------------------------------


class _Sink:
    """Stands in for Delivery in these pure tests: it only collects what is submitted."""

    def __init__(self) -> None:
        self.items: list[object] = []

    def submit(self, item: object) -> bool:
        self.items.append(item)
        return True


def _capturer(**kwargs) -> tuple[Capturer, _Sink]:
    sink = _Sink()
    capturer = Capturer(
        parser=make_parser("kserve-v1"),
        builder=EventBuilder(model="m", redactor=Redactor(["email"])),
        delivery=sink,  # type: ignore[arg-type]
        stats=CollectorStats(),
        **kwargs,
    )
    return capturer, sink


def test_capture_job_builds_redacted_prediction_records() -> None:
    capturer, sink = _capturer()
    assert capturer.submit(
        b'{"instances": [{"x": 1, "email": "a@b"}, {"x": 2, "email": "c@d"}]}',
        b'{"predictions": [0.1, 0.9]}',
        request_id="r-7",
        ts=100.0,
        latency_ms=1.5,
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )
    (job,) = sink.items
    drops: Counter = Counter()
    records = job(drops)  # type: ignore[operator]
    events = [decode_prediction(r.value) for r in records]
    assert [e.id for e in events] == ["r-7-0", "r-7-1"]
    assert all("email" not in e.features for e in events)
    assert events[0].meta["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert events[1].latency_ms == 1.5 and not drops


def test_capture_job_dead_letters_what_does_not_parse() -> None:
    capturer, sink = _capturer()
    capturer.submit(
        b"not json", b"{}", request_id="r-1", ts=1.0, latency_ms=1.0, route="/v1/models/m:predict"
    )
    drops: Counter = Counter()
    (record,) = sink.items[0](drops)  # type: ignore[operator]
    assert drops == Counter({("m", "malformed_json"): 1})
    assert record.topic == "driftwarden.deadletter"
    assert msgspec.json.decode(record.value)["request_id"] == "r-1"


def test_capturer_routes_methods_and_sampling() -> None:
    capturer, _ = _capturer(sampler=Sampler(0.5))
    assert capturer.wants(b"POST", b"/v1/models/m:predict")
    assert not capturer.wants(b"GET", b"/v1/models/m:predict")
    assert not capturer.wants(b"POST", b"/v1/models/m")
    kept = [capturer.keep(f"id-{i}") for i in range(200)]
    assert kept == [capturer.keep(f"id-{i}") for i in range(200)]
    routes = RouteMatcher(["/v2/models/*/infer", "/predict"])
    assert routes(b"/v2/models/a/infer") and routes(b"/predict") and not routes(b"/predict/x")


def test_reject_counts_and_dead_letters() -> None:
    capturer, sink = _capturer()
    capturer.reject("oversize", "too big", ts=1.0, request_id="r")
    capturer.reject("upstream_status", "500", ts=1.0, deadletter=False)
    assert capturer.stats.dropped() == {("m", "oversize"): 1, ("m", "upstream_status"): 1}
    assert len(sink.items) == 1 and isinstance(sink.items[0], Record)


# --- metrics ----------------------------------------------------------------------------


def test_metrics_are_read_at_scrape_time_with_catalogue_names() -> None:
    stats = CollectorStats()
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(stats, "m", "v1"))
    stats.requests[200] += 3
    stats.duration.observe(0.002)
    stats.overhead.observe(0.0001)
    stats.add_sent("m", 5)
    stats.add_dropped("m", "spool_full", 2)
    stats.add_spooled("m", 4)
    stats.spool_bytes = 1234
    get = registry.get_sample_value
    assert (
        get("driftwarden_collector_requests_total", {"model": "m", "version": "v1", "code": "200"})
        == 3
    )
    assert (
        get(
            "driftwarden_collector_request_duration_seconds_bucket",
            {"model": "m", "version": "v1", "le": "0.0025"},
        )
        == 1
    )
    assert get("driftwarden_collector_overhead_seconds_count", {"model": "m", "version": "v1"}) == 1
    assert get("driftwarden_collector_events_sent_total", {"model": "m"}) == 5
    assert (
        get("driftwarden_collector_events_dropped_total", {"model": "m", "reason": "spool_full"})
        == 2
    )
    assert get("driftwarden_collector_events_spooled_total", {"model": "m"}) == 4
    assert get("driftwarden_collector_spool_bytes") == 1234
    names = {m.name for m in registry.collect()}
    exported = {n + "_total" if n + "_total" in CATALOGUE else n for n in names}
    assert exported <= set(CATALOGUE)


def test_histogram_buckets() -> None:
    h = Histogram([0.1, 1.0])
    for v in (0.05, 0.1, 0.5, 5.0):
        h.observe(v)
    assert h.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert h.quantile(0.5) == 0.1


# --- feedback bodies --------------------------------------------------------------------


def test_feedback_accepts_one_or_a_batch() -> None:
    (one,) = parse_feedback(b'{"id": "r-1", "label": 1}', model="m", now=5.0)
    assert (one.id, one.model, one.ts, one.label) == ("r-1", "m", 5.0, 1)
    batch = parse_feedback(
        b'[{"id": "a", "label": "fraud", "ts": 3.5}, {"id": "b", "label": true, "model": "other"}]',
        model="m",
        now=5.0,
    )
    assert [(e.id, e.label, e.ts, e.model) for e in batch] == [
        ("a", "fraud", 3.5, "m"),
        ("b", True, 5.0, "other"),
    ]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "malformed_json"),
        (b"{", 400, "malformed_json"),
        (b"[]", 422, "invalid_value"),
        (b'{"id": "a"}', 422, "missing_field"),
        (b'{"id": "a", "label": 1, "lable": 2}', 422, "unknown_field"),
        (b'{"id": "", "label": 1}', 422, "invalid_value"),
        (b'{"id": "a", "label": null}', 422, "wrong_type"),
        (b'{"id": "a", "label": [1]}', 422, "wrong_type"),
        (b'{"id": "a", "label": 1e999}', 422, "non_finite"),
        (b'"text"', 422, "wrong_type"),
    ],
)
def test_feedback_rejections(body: bytes, status: int, reason: str) -> None:
    with pytest.raises(FeedbackError) as e:
        parse_feedback(body, model="m")
    assert (e.value.status, e.value.reason) == (status, reason)
    assert e.value.body()["error"] == reason
