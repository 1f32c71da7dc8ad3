"""The collector against a real Kafka broker: requests through the proxy become exactly
the expected events (ids checked) for each payload format; bad pairs are dead-lettered;
feedback, admin endpoints, the SDK, tracing, and partitioning that agrees with Java
clients (kafka-python's murmur2 partitioner)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from collector.delivery import Delivery
from collector.events import Record
from collector.sdk import CollectorClient
from collector.settings import CollectorSettings, parse_config
from driftwarden.schema import decode_feedback, decode_prediction
from driftwarden.services import KafkaBroker
from driftwarden.spec import parse_spec
from tests.kits.collector import CollectorThread, ModelServer, read_topic

pytestmark = pytest.mark.integration

SPEC = parse_spec(
    {
        "model": "credit",
        "version": "v3",
        "features": [
            {"name": "age", "type": "numerical"},
            {"name": "country", "type": "categorical"},
            {"name": "income", "type": "numerical"},
        ],
        "prediction": {"column": "probabilities", "output": "positive_class"},
    }
)


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


def settings(
    kafka: KafkaBroker, model: ModelServer, tmp_path: Path, **kw: Any
) -> CollectorSettings:
    config = kw.pop("config", {})
    base: dict[str, Any] = {
        "model": "credit",
        "model_port": model.port,
        "port": 0,
        "admin_port": 0,
        "host": "127.0.0.1",
        "bootstrap": kafka.bootstrap,
        "spool_dir": tmp_path / "spool",
        "config": parse_config({"topic_prefix": f"t{uuid.uuid4().hex[:10]}", **config}),
    }
    base.update(kw)
    return CollectorSettings(**base)


def post(
    port: int, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(
            "POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
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


def events(kafka: KafkaBroker, topic: str, n: int) -> list[Any]:
    return [decode_prediction(v) for _, v, _ in read_topic(kafka.bootstrap, topic, at_least=n)]


def test_kserve_requests_become_exactly_the_expected_events(
    kafka: KafkaBroker, model: ModelServer, tmp_path: Path
) -> None:
    s = settings(kafka, model, tmp_path, spec=SPEC, version="v3", meta={"pod": "p-0"})
    expected: set[str] = set()
    with CollectorThread(s) as c:
        conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
        for i in range(40):
            rows = (
                [[20 + i, "DE", 1000.0 * i]]
                if i % 2
                else [[i, "US", 1.5], {"age": i, "country": "FR"}]
            )
            conn.request(
                "POST",
                "/v1/models/credit:predict",
                body=json.dumps({"instances": rows}),
                headers={"X-Request-ID": f"req-{i}"},
            )
            resp = conn.getresponse()
            assert resp.status == 200 and b"predictions" in resp.read()
            expected |= {f"req-{i}"} if i % 2 else {f"req-{i}-0", f"req-{i}-1"}
        for _ in range(5):  # no X-Request-ID: ids generated, one each
            conn.request("POST", "/v1/models/credit:predict", body=b'{"instances": [[1, "DE", 2]]}')
            conn.getresponse().read()
        conn.request("GET", "/health")  # not a prediction route: no event
        conn.getresponse().read()
        conn.close()
        assert c.service.delivery.wait_idle(30)
        topics = c.service.topics
    got = events(kafka, topics.predictions, len(expected) + 5)
    ids = Counter(e.id for e in got)
    assert max(ids.values()) == 1, "duplicates"
    assert expected <= set(ids) and len(ids) == len(expected) + 5
    one = next(e for e in got if e.id == "req-1")
    assert one.model == "credit" and one.version == "v3"
    assert one.features == {"age": 21, "country": "DE", "income": 1000.0}
    assert 0 <= one.prediction <= 1 and one.latency_ms > 0 and one.meta == {"pod": "p-0"}
    row = next(e for e in got if e.id == "req-0-1")
    assert row.features == {"age": 0, "country": "FR"} and row.meta["row"] == 1


def test_invalid_pairs_are_dead_lettered_and_counted(
    kafka: KafkaBroker, model: ModelServer, tmp_path: Path
) -> None:
    s = settings(kafka, model, tmp_path)  # no spec: positional rows cannot be named
    with CollectorThread(s) as c:
        status, _ = post(
            c.port, "/v1/models/credit:predict", {"instances": [[1, 2]]}, {"X-Request-ID": "pos-1"}
        )
        assert status == 200  # the model answered; the proxy never changes that
        status, _ = post(
            c.port, "/v1/models/credit:predict", b"not json", {"X-Request-ID": "bad-1"}
        )
        assert status == 400  # the model's own answer, passed through
        assert c.service.delivery.wait_idle(30)
        deadline = time.monotonic() + 10  # the 400 is counted just after it is forwarded
        while len(c.service.stats.dropped()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        dropped = c.service.stats.dropped()
        topics = c.service.topics
        _, metrics = get(c.admin_port, "/metrics")
    assert dropped == {("credit", "positional_without_spec"): 1, ("credit", "upstream_status"): 1}
    (letter,) = read_topic(kafka.bootstrap, topics.deadletter)
    doc = msgspec.json.decode(letter[1])
    assert doc["reason"] == "positional_without_spec" and doc["request_id"] == "pos-1"
    assert (
        b'driftwarden_collector_events_dropped_total{model="credit",reason="positional_without_spec"} 1.0'
        in metrics
    )


def test_open_inference_and_json_formats(
    kafka: KafkaBroker, model: ModelServer, tmp_path: Path
) -> None:
    oip = settings(kafka, model, tmp_path / "a", spec=SPEC, payload_format="open-inference-v2")
    with CollectorThread(oip) as c:
        body = {
            "id": "body-id-1",
            "inputs": [
                {"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 40]},
                {"name": "country", "shape": [2], "datatype": "BYTES", "data": ["DE", "US"]},
            ],
        }
        assert post(c.port, "/v2/models/credit/infer", body)[0] == 200  # id from the body
        assert post(c.port, "/v2/models/credit/infer", body, {"X-Request-ID": "hdr-1"})[0] == 200
        assert c.service.delivery.wait_idle(30)
        topic = c.service.topics.predictions
    got = {e.id: e for e in events(kafka, topic, 4)}
    assert set(got) == {"body-id-1-0", "body-id-1-1", "hdr-1-0", "hdr-1-1"}
    assert got["hdr-1-1"].features == {"age": 40, "country": "US"}
    assert isinstance(got["hdr-1-1"].prediction, float)

    js = settings(
        kafka,
        model,
        tmp_path / "b",
        payload_format="json",
        config={
            "json": {"features": "rows", "prediction": "scores"},
            "redact": {"features": ["email"]},
        },
    )
    with CollectorThread(js) as c:
        rows = [{"age": 1, "email": "a@b"}, {"age": 2, "email": "c@d"}]
        assert post(c.port, "/predict", {"rows": rows}, {"X-Request-ID": "j-1"})[0] == 200
        assert c.service.delivery.wait_idle(30)
        topic = c.service.topics.predictions
    got = {e.id: e for e in events(kafka, topic, 2)}
    assert set(got) == {"j-1-0", "j-1-1"}
    assert got["j-1-0"].features == {"age": 1}  # email redacted before leaving the pod


def test_sampling_by_request_id(kafka: KafkaBroker, model: ModelServer, tmp_path: Path) -> None:
    from collector.sampling import Sampler

    s = settings(kafka, model, tmp_path, spec=SPEC, sample_rate=0.5)
    ids = [f"s-{i}" for i in range(60)]
    with CollectorThread(s) as c:
        for rid in ids:
            post(
                c.port,
                "/v1/models/credit:predict",
                {"instances": [[1, "DE", 2]]},
                {"X-Request-ID": rid},
            )
        assert c.service.delivery.wait_idle(30)
        topic = c.service.topics.predictions
    expected = {rid for rid in ids if Sampler(0.5).keep(rid)}
    assert 10 < len(expected) < 50
    got = {e.id for e in events(kafka, topic, len(expected))}
    assert got == expected


def test_feedback_endpoint_and_admin(
    kafka: KafkaBroker, model: ModelServer, tmp_path: Path
) -> None:
    s = settings(kafka, model, tmp_path, spec=SPEC, version="v7")
    with CollectorThread(s) as c:
        assert post(c.admin_port, "/v1/feedback", {"id": "req-1", "label": 1}) == (
            202,
            b'{"accepted":1}',
        )
        batch = [{"id": "req-2", "label": "fraud"}, {"id": "req-3", "label": False, "ts": 12.5}]
        assert post(c.admin_port, "/v1/feedback", batch)[0] == 202
        status, body = post(c.admin_port, "/v1/feedback", b"{oops")
        assert status == 400 and json.loads(body)["error"] == "malformed_json"
        status, body = post(c.admin_port, "/v1/feedback", {"id": "x"})
        assert status == 422 and json.loads(body)["error"] == "missing_field"
        assert get(c.admin_port, "/healthz") == (200, b'{"status":"ok"}')
        status, body = get(c.admin_port, "/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        post(c.port, "/v1/models/credit:predict", {"instances": [[1, "DE", 2]]})
        assert c.service.delivery.wait_idle(30)
        status, metrics = get(c.admin_port, "/metrics")
        topic = c.service.topics.feedback
    assert status == 200
    text = metrics.decode()
    for name in (
        'driftwarden_collector_requests_total{code="200",model="credit",version="v7"} 1.0',
        'driftwarden_collector_request_duration_seconds_count{model="credit",version="v7"} 1.0',
        'driftwarden_collector_overhead_seconds_count{model="credit",version="v7"} 1.0',
        'driftwarden_collector_events_sent_total{model="credit"} 4.0',  # 3 labels + 1 prediction
        "driftwarden_collector_spool_bytes 0.0",
    ):
        assert name in text, name
    labels = {
        e.id: e
        for e in (decode_feedback(v) for _, v, _ in read_topic(kafka.bootstrap, topic, at_least=3))
    }
    assert set(labels) == {"req-1", "req-2", "req-3"}
    assert labels["req-3"].ts == 12.5 and labels["req-2"].label == "fraud"


def test_partitioning_agrees_with_kafka_python(kafka: KafkaBroker, tmp_path: Path) -> None:
    """Keys land on the partitions a Java client (kafka-python's murmur2) would choose."""
    from kafka import KafkaProducer
    from kafka.partitioner.default import DefaultPartitioner

    ours, theirs = f"part-ours-{uuid.uuid4().hex[:8]}", f"part-kp-{uuid.uuid4().hex[:8]}"
    for topic in (ours, theirs):
        kafka.create_topic(topic, partitions=8)
    keys = [f"model-{i}".encode() for i in range(64)] + [b"credit", b"fraud-v2", "mødel".encode()]
    delivery = Delivery(bootstrap=kafka.bootstrap).start()
    for key in keys:
        delivery.submit(Record(ours, key, b"{}"))
    assert delivery.wait_idle(30)
    delivery.close()
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for key in keys:
        producer.send(theirs, key=key, value=b"{}")
    producer.flush(30)
    producer.close()
    by_key = {k: p for k, _, p in read_topic(kafka.bootstrap, ours, at_least=len(keys))}
    by_key_kp = {k: p for k, _, p in read_topic(kafka.bootstrap, theirs, at_least=len(keys))}
    partitioner = DefaultPartitioner()
    expected = {k: partitioner(k, list(range(8)), list(range(8))) for k in keys}
    assert by_key == expected == by_key_kp
    assert len(set(by_key.values())) > 4  # the keys really spread


def test_sdk_logs_the_same_events(kafka: KafkaBroker, tmp_path: Path) -> None:
    import collector

    prefix = f"sdk{uuid.uuid4().hex[:8]}"
    with CollectorClient(
        model="credit", bootstrap=kafka.bootstrap, spec=SPEC, spool_dir=tmp_path / "s",
        topic_prefix=prefix, redact=["country"], meta={"pod": "p"},
    ) as client:  # fmt: skip
        assert (
            client.log_prediction([30, "DE", 10.0], [0.2, 0.8], id="sdk-1", latency_ms=3.0)
            == "sdk-1"
        )
        ids = client.log_predictions([{"age": 1}, {"age": 2}], [0.1, 0.2], request_id="sdk-2")
        assert ids == ["sdk-2-0", "sdk-2-1"]
        assert client.log_prediction([1, 2], 0.5) is None  # wrong row length: counted, not raised
        assert client.log_feedback("sdk-1", 1)
        assert client.flush(30)
        assert client.counts()["dropped"] == Counter({("credit", "row_length_mismatch"): 1})
    got = {e.id: e for e in events(kafka, f"{prefix}.predictions", 3)}
    assert set(got) == {"sdk-1", "sdk-2-0", "sdk-2-1"}
    assert got["sdk-1"].features == {"age": 30, "income": 10.0} and got["sdk-1"].prediction == 0.8
    assert got["sdk-1"].version == "v3" and got["sdk-1"].meta == {"pod": "p"}
    (fb,) = read_topic(kafka.bootstrap, f"{prefix}.feedback")
    assert decode_feedback(fb[1]).id == "sdk-1"

    collector.configure(model="credit", bootstrap=kafka.bootstrap, topic_prefix=prefix + "m")
    try:
        event_id = collector.log_prediction({"age": 5}, 0.5)
        assert event_id is not None and collector.log_feedback(event_id, 0)
    finally:
        report = collector.shutdown()
    assert report is not None and report.flushed
    assert [
        decode_prediction(v).id for _, v, _ in read_topic(kafka.bootstrap, f"{prefix}m.predictions")
    ] == [event_id]


def test_trace_context_is_continued_and_reaches_the_event(
    kafka: KafkaBroker, model: ModelServer, tmp_path: Path
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    incoming = f"00-{trace_id}-{parent}-01"

    # tracing off (the default): the header goes through untouched, the id into the event
    s = settings(kafka, model, tmp_path / "off", spec=SPEC)
    with CollectorThread(s) as c:
        _, echoed = post(c.port, "/echo", b"", {"traceparent": incoming})
        assert ["traceparent", incoming] in json.loads(echoed)["headers"]
        post(
            c.port,
            "/v1/models/credit:predict",
            {"instances": [[1, "DE", 2]]},
            {"traceparent": incoming, "X-Request-ID": "t-1"},
        )
        assert c.service.delivery.wait_idle(30)
        topic = c.service.topics.predictions
    (event,) = events(kafka, topic, 1)
    assert event.meta["trace_id"] == trace_id

    # tracing on: SERVER span under the caller's, CLIENT span for the model, enqueue span
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    s = settings(kafka, model, tmp_path / "on", spec=SPEC)
    with CollectorThread(s, tracer_provider=provider) as c:
        _, echoed = post(c.port, "/echo", b"", {"traceparent": incoming})
        forwarded = dict(json.loads(echoed)["headers"])["traceparent"]
        post(
            c.port,
            "/v1/models/credit:predict",
            {"instances": [[1, "DE", 2]]},
            {"traceparent": incoming, "X-Request-ID": "t-2"},
        )
        assert c.service.delivery.wait_idle(30)
        topic = c.service.topics.predictions
    spans = exporter.get_finished_spans()
    assert {s.name for s in spans} == {"POST", "upstream", "enqueue"}
    for span in spans:
        assert f"{span.context.trace_id:032x}" == trace_id
    servers = [s for s in spans if s.name == "POST"]
    assert all(f"{s.parent.span_id:016x}" == parent for s in servers)
    upstream = [s for s in spans if s.name == "upstream"]
    assert {u.parent.span_id for u in upstream} <= {s.context.span_id for s in servers}
    assert forwarded.split("-")[1] == trace_id
    assert forwarded.split("-")[2] in {f"{u.context.span_id:016x}" for u in upstream}
    (event,) = events(kafka, topic, 1)
    assert event.meta["trace_id"] == trace_id
