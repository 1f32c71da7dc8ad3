"""Regression tests of issue 18 for capture and delivery, against a real Kafka broker: a
record over the producer's size limit, a delivery thread that fails (supervised, restarted,
and reported truthfully when it cannot recover), feedback for other models, deep JSON,
NaN/Infinity, and integer features."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from collector.admin import AdminServer, build_admin_app
from collector.delivery import Delivery, DeliverySettings
from collector.events import EventBuilder, Record
from collector.kafka_producer import ProducerAdapter
from collector.metrics import CollectorMetrics, CollectorStats
from collector.settings import CollectorSettings, parse_config
from collector.spool import Spool
from driftwarden.errors import GiveUp
from driftwarden.kafka import Topics, producer_config
from driftwarden.schema import decode_prediction
from driftwarden.services import KafkaBroker
from tests.kits.collector import CollectorThread, LoopThread, ModelServer, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture(scope="module")
def agreeable_model() -> Iterator[int]:
    """A model stand-in that answers every request 200 `{"predictions": [0.5]}`, whatever
    the body (so that the collector, not the model, has to judge it)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = b'{"predictions": [0.5]}'
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    lt = LoopThread()
    server = lt.run(asyncio.start_server(handler, "127.0.0.1", 0))
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        lt.run(server.wait_closed())
        lt.close()


def _collector(kafka: KafkaBroker, port: int, tmp_path: Path) -> CollectorThread:
    return CollectorThread(
        CollectorSettings(
            model="credit",
            model_port=port,
            port=0,
            admin_port=0,
            host="127.0.0.1",
            bootstrap=kafka.bootstrap,
            spool_dir=tmp_path / "spool2",
            config=parse_config({"topic_prefix": f"a{uuid.uuid4().hex[:10]}"}),
        )
    )


@pytest.fixture
def collector(kafka: KafkaBroker, model: ModelServer, tmp_path: Path) -> Iterator[CollectorThread]:
    s = CollectorSettings(
        model="credit",
        model_port=model.port,
        port=0,
        admin_port=0,
        host="127.0.0.1",
        bootstrap=kafka.bootstrap,
        spool_dir=tmp_path / "spool",
        config=parse_config({"topic_prefix": f"h{uuid.uuid4().hex[:10]}"}),
    )
    with CollectorThread(s) as c:
        yield c


def post(port: int, path: str, body: bytes, rid: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"X-Request-ID": rid} if rid else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def topics(c: CollectorThread) -> Topics:
    return c.service.topics


PREDICT = "/v1/models/credit:predict"


def test_a_record_over_the_size_limit_is_dead_lettered_and_delivery_goes_on(
    kafka: KafkaBroker, collector: CollectorThread
) -> None:
    c = collector
    big = json.dumps({"instances": [{"a": "x" * 1_000_500}]}).encode()
    assert len(big) < 1024 * 1024  # under the capture limit, over message.max.bytes
    assert post(c.port, PREDICT, big, "big-1")[0] == 200
    assert post(c.port, PREDICT, b'{"instances": [{"a": 1}]}', "small-1")[0] == 200
    assert c.service.delivery.wait_idle(30)
    assert get(c.admin_port, "/readyz")[0] == 200
    assert get(c.admin_port, "/healthz")[0] == 200
    assert c.service.delivery.alive and c.service.stats.restarts == 0
    assert c.service.stats.dropped() == {("credit", "oversize"): 1}
    letters = read_topic(kafka.bootstrap, topics(c).deadletter, at_least=1)
    assert len(letters) == 1 and len(letters[0][1]) < 1024  # the dead letter itself is small
    letter = json.loads(letters[0][1])
    assert letter["reason"] == "oversize" and letter["request_id"] == "big-1"
    assert "message.max.bytes" in letter["detail"]
    events = [
        decode_prediction(v) for _, v, _ in read_topic(kafka.bootstrap, topics(c).predictions)
    ]
    assert [e.id for e in events] == ["small-1"]


def test_librdkafka_refusing_a_record_synchronously_is_a_give_up(kafka: KafkaBroker) -> None:
    adapter = ProducerAdapter(producer_config(kafka.bootstrap, **{"message.max.bytes": 10_000}))
    try:
        with pytest.raises(GiveUp) as e:
            adapter.produce(Record("t.predictions", b"m", b"x" * 20_000), lambda err, msg: None)
        assert "MSG_SIZE_TOO_LARGE" in str(e.value) and e.value.__cause__ is not None
    finally:
        adapter.close()


def test_feedback_for_another_model_or_too_large_is_refused(collector: CollectorThread) -> None:
    c = collector
    before = get(c.admin_port, "/metrics")[1]
    for i in range(5):
        items = [{"id": f"r{j}", "label": 1, "model": f"m{i}-{j}"} for j in range(1000)]
        status, body = post(c.admin_port, "/v1/feedback", json.dumps(items).encode())
        assert status == 422 and json.loads(body)["error"] == "wrong_model"
    label = json.dumps({"id": "r", "label": "y" * (3 * 1024 * 1024)}).encode()
    status, body = post(c.admin_port, "/v1/feedback", label)
    assert status == 413 and json.loads(body)["error"] == "oversize"
    ok = post(c.admin_port, "/v1/feedback", b'{"id": "r", "label": 1, "model": "credit"}')
    assert ok[0] == 202
    assert c.service.delivery.wait_idle(30)
    after = get(c.admin_port, "/metrics")[1]
    assert b"m0-0" not in after and len(after) < len(before) + 2048  # no series per model
    assert c.service.delivery.alive and c.service.stats.sent() == {"credit": 1}


def test_deep_json_and_non_finite_numbers_are_dead_lettered_with_their_reason(
    kafka: KafkaBroker, agreeable_model: int, tmp_path: Path
) -> None:
    with _collector(kafka, agreeable_model, tmp_path) as c:
        _deep_json_and_non_finite(kafka, c)


def _deep_json_and_non_finite(kafka: KafkaBroker, c: CollectorThread) -> None:
    deep = b'{"instances": [' + b"[" * 10_000 + b"]" * 10_000 + b"]}"
    unbalanced = b'{"instances": ' + b"[" * 10_000
    for rid, body in [
        ("deep", deep),
        ("unbalanced", unbalanced),
        ("nan", b'{"instances": [{"a": NaN}]}'),
        ("inf", b'{"instances": [{"a": -Infinity}]}'),
        ("ints", b'{"instances": [{"age": 41, "n": 12345678901234567890, "vip": true}]}'),
    ]:
        post(c.port, PREDICT, body, rid)
    assert c.service.delivery.wait_idle(30)
    letters = {
        json.loads(v)["request_id"]: json.loads(v)["reason"]
        for _, v, _ in read_topic(kafka.bootstrap, topics(c).deadletter, at_least=4)
    }
    assert letters == {
        "deep": "too_deep",
        "unbalanced": "too_deep",
        "nan": "non_finite",
        "inf": "non_finite",
    }
    (raw,) = [v for _, v, _ in read_topic(kafka.bootstrap, topics(c).predictions)]
    assert b'"age":41.0' in raw and b'"vip":true' in raw  # numbers are floats, bools stay
    assert decode_prediction(raw).features == {"age": 41.0, "n": 1.2345678901234567e19, "vip": True}
    assert not any(r == "internal_error" for _, r in c.service.stats.dropped())


class _FailingClock:
    """A monotonic clock that raises `failures` times (counting calls after `arm()`)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.armed = False
        self.lock = threading.Lock()

    def arm(self) -> None:
        self.armed = True

    def __call__(self) -> float:
        with self.lock:
            if self.armed and self.failures > 0:
                self.failures -= 1
                raise RuntimeError("injected fault in the delivery thread")
        return time.monotonic()


def _delivery(kafka: KafkaBroker, tmp_path: Path, clock: Any) -> Delivery:
    return Delivery(
        bootstrap=kafka.bootstrap,
        stats=CollectorStats(),
        spool=Spool(tmp_path / "spool").open(),
        settings=DeliverySettings(max_restarts=3, restart_window_s=60, restart_backoff_s=0.01),
        clock=clock,
    )


def test_a_failing_delivery_thread_is_restarted_and_keeps_delivering(
    kafka: KafkaBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"s{uuid.uuid4().hex[:8]}"
    builder = EventBuilder(model="m", topics=Topics.with_prefix(prefix))
    clock = _FailingClock(failures=2)
    delivery = _delivery(kafka, tmp_path, clock).start()
    try:
        with caplog.at_level(logging.ERROR, logger="collector.delivery"):
            clock.arm()
            for i in range(20):
                assert delivery.submit(builder.feedback_record(builder.feedback(f"id-{i}", i)))
            assert delivery.wait_idle(30)
        assert delivery.restarts == 2 and delivery.healthy and delivery.alive
        assert delivery.stats.restarts == 2
        # logged once with its traceback, however often it happens
        assert sum("injected fault" in r.getMessage() for r in caplog.records) == 1
    finally:
        report = delivery.close()
    assert report.failed is None
    got = {
        json.loads(v)["id"]
        for _, v, _ in read_topic(kafka.bootstrap, f"{prefix}.feedback", at_least=20)
    }
    assert got == {f"id-{i}" for i in range(20)}


def test_a_delivery_that_cannot_recover_fails_healthz_and_reports_what_was_lost(
    kafka: KafkaBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    builder = EventBuilder(model="m", topics=Topics.with_prefix(f"f{uuid.uuid4().hex[:8]}"))
    clock = _FailingClock(failures=10**9)
    delivery = _delivery(kafka, tmp_path, clock).start()
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(delivery.stats, "m"))
    lt = LoopThread()
    admin = AdminServer(
        build_admin_app(registry=registry, delivery=delivery, builder=builder), "127.0.0.1", 0
    )
    lt.run(admin.start())
    try:
        assert get(admin.port, "/healthz")[0] == 200
        clock.arm()
        deadline = time.monotonic() + 20
        while delivery.healthy and time.monotonic() < deadline:
            time.sleep(0.02)
        status, body = get(admin.port, "/healthz")
        assert status == 503 and b"restarts within" in body
        assert get(admin.port, "/readyz")[0] == 503
        assert (
            b"driftwarden_collector_delivery_restarts_total 4.0" in get(admin.port, "/metrics")[1]
        )
        # events that arrive now are refused and counted, never silently kept
        assert not delivery.submit(builder.feedback_record(builder.feedback("late", 1)))
        assert delivery.stats.dropped() == {("m", "delivery_failed"): 1}
    finally:
        with caplog.at_level(logging.ERROR, logger="collector.delivery"):
            report = delivery.close()
        lt.run(admin.stop())
        lt.close()
    assert report.failed is not None and "injected fault" in report.failed
    assert report.dropped == 0  # nothing was queued: the late event was refused


def test_events_queued_when_delivery_failed_are_reported_lost_at_shutdown(
    kafka: KafkaBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    builder = EventBuilder(model="m", topics=Topics.with_prefix(f"q{uuid.uuid4().hex[:8]}"))
    clock = _FailingClock(failures=10**9)
    delivery = _delivery(kafka, tmp_path, clock).start()
    gate = threading.Event()

    def stuck_job(drops: Any) -> list[Record]:
        gate.wait(10)  # holds the thread while more events queue up behind it
        clock.arm()
        return []

    stuck_job.model = "m"  # type: ignore[attr-defined]
    delivery.submit(stuck_job)
    # one pass of the thread takes 256 items: the job and 255 events; 45 stay queued
    for i in range(300):
        delivery.submit(builder.feedback_record(builder.feedback(f"q-{i}", i)))
    with caplog.at_level(logging.ERROR, logger="collector.delivery"):
        gate.set()
        deadline = time.monotonic() + 20
        while delivery.healthy and time.monotonic() < deadline:
            time.sleep(0.02)
        report = delivery.close()
    assert report.failed is not None and not report.flushed
    assert report.dropped == delivery.stats.dropped()[("m", "delivery_failed")]
    lost_lines = [r.getMessage() for r in caplog.records if "were lost" in r.getMessage()]
    assert lost_lines == [
        f"delivery had failed ({report.failed}): {report.dropped} queued events were lost"
    ]
    assert report.dropped == 45


def test_capture_accounting_adds_up(collector: CollectorThread) -> None:
    """Every captured request ends as exactly one event (per row) or one counted rejection."""
    c = collector
    for i in range(10):
        body = b'{"instances": [{"a": %d}]}' % i if i % 3 else b'{"instances": [{"a": NaN}]}'
        post(c.port, PREDICT, body, f"acc-{i}")
    assert c.service.delivery.wait_idle(30)
    sent = c.service.stats.sent().get("credit", 0)
    # the trivial model answers the NaN bodies 400: counted, not dead-lettered (by design)
    assert sent == 6 and c.service.stats.dropped() == {("credit", "upstream_status"): 4}
