"""The detectors service fed through a real Kafka broker and scraped by a real Prometheus:
drift injected at a known point shows in the first full window after it and not before,
undrifted features stay below their thresholds, late labels give the right accuracy,
invalid events are dead-lettered and counted while processing goes on."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from detectors.service import DetectorService, ServiceSettings, start_service
from driftwarden import metrics_catalogue as mc
from driftwarden.services import KafkaBroker
from tests.kits.detectors import SyntheticModel, consume_all, produce

pytestmark = pytest.mark.integration

WINDOW = 1000
DRIFT_FROM = 3000  # a window boundary: window 4 is the first full window after the point
DRIFTED = {"num_1", "cat_0"}
UNDRIFTED = {"num_0", "num_2", "num_3", "cat_1"}


def _committed(service: DetectorService, kind: str, n: int, timeout: float = 30.0) -> list:
    """The committed results of `kind`, once there are `n` (metrics show a window as soon
    as it is evaluated; `history` only after its transaction commits)."""
    deadline = time.monotonic() + timeout
    while True:
        got = sorted((r for r in service.history if r.kind == kind), key=lambda r: r.seq)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def _value(prom, promql: str) -> float:
    result = prom.query(promql)
    assert len(result) == 1, (promql, result)
    return float(result[0]["value"][1])


@pytest.fixture
def setup(
    kafka: KafkaBroker, tmp_path: Path
) -> Iterator[tuple[str, SyntheticModel, DetectorService, ServiceSettings]]:
    prefix = f"svc{uuid.uuid4().hex[:8]}"
    for suffix in ("predictions", "feedback"):
        kafka.create_topic(f"{prefix}.{suffix}", partitions=1)
    model = SyntheticModel("churn", n_numerical=4, n_categorical=2, seed=5)
    model.write(
        tmp_path / "specs",
        reference_rows=5000,
        window_rows=WINDOW,
        performance=("accuracy", "roc_auc"),
    )
    settings = ServiceSettings(
        specs=tmp_path / "specs",
        bootstrap=kafka.bootstrap,
        topic_prefix=prefix,
        group_id=f"{prefix}-g",
        instance_id="it",
        metrics_port=0,
        metrics_host="127.0.0.1",
        checkpoint_interval_s=0.5,
        transaction_timeout_s=10.0,
    )
    stop = threading.Event()
    service, thread = start_service(settings, stop)
    try:
        yield prefix, model, service, settings
    finally:
        stop.set()
        thread.join(30)
    assert not thread.error, thread.error


def test_drift_latency_labels_and_dead_letters_through_prometheus(
    setup, kafka: KafkaBroker, prometheus_factory
) -> None:
    prefix, model, service, _ = setup
    prom = prometheus_factory(scrape_targets=[f"127.0.0.1:{service.metrics_port}"])
    stream = model.stream(6000, drift_from=DRIFT_FROM, drifted=DRIFTED, seed=11)
    records = stream.records()
    topic = f"{prefix}.predictions"
    sel = 'model="churn",version="v1"'

    # --- before the drift point, with a few invalid events in between ------------------
    invalid = [
        (b"churn", b"{broken"),
        (b"churn", b'{"schema": "driftwarden.prediction/v1", "id": "x"}'),
        (b"nobody", records[0][1].replace(b'"churn"', b'"nobody"')),
    ]
    produce(kafka.bootstrap, topic, records[:1500] + invalid + records[1500:DRIFT_FROM])
    prom.wait_for(f"{mc.WINDOWS_TOTAL.name}{{{sel}}} == 3", timeout=60)
    for f in DRIFTED | UNDRIFTED:
        assert _value(prom, f'{mc.FEATURE_DRIFT_DETECTED.name}{{{sel},feature="{f}"}}') == 0.0
    assert _value(prom, f"{mc.DATASET_DRIFT_DETECTED.name}{{{sel}}}") == 0.0
    assert (
        _value(prom, f'{mc.EVENTS_INVALID_TOTAL.name}{{model="churn",reason="malformed_json"}}')
        == 1
    )
    assert (
        _value(prom, f'{mc.EVENTS_INVALID_TOTAL.name}{{model="churn",reason="missing_field"}}') == 1
    )
    assert (
        _value(prom, f'{mc.EVENTS_INVALID_TOTAL.name}{{model="unknown",reason="unknown_model"}}')
        == 1
    )

    # --- the first full window after the drift point ------------------------------------
    produce(kafka.bootstrap, topic, records[DRIFT_FROM : DRIFT_FROM + WINDOW])
    prom.wait_for(f"{mc.WINDOWS_TOTAL.name}{{{sel}}} == 4", timeout=60)
    for f in DRIFTED:
        assert _value(prom, f'{mc.FEATURE_DRIFT_DETECTED.name}{{{sel},feature="{f}"}}') == 1.0
    score = prom.query(f'{mc.FEATURE_DRIFT_SCORE.name}{{{sel},feature="num_1"}}')
    assert score[0]["metric"]["test"] == "wasserstein" and float(score[0]["value"][1]) > 0.5
    for f in UNDRIFTED:
        assert _value(prom, f'{mc.FEATURE_DRIFT_DETECTED.name}{{{sel},feature="{f}"}}') == 0.0
    assert _value(prom, f"{mc.DATASET_DRIFT_SHARE.name}{{{sel}}}") == pytest.approx(2 / 6)
    assert _value(prom, f"{mc.WINDOW_ROWS.name}{{{sel}}}") == WINDOW

    produce(kafka.bootstrap, topic, records[DRIFT_FROM + WINDOW :])
    prom.wait_for(f"{mc.WINDOWS_TOTAL.name}{{{sel}}} == 6", timeout=60)
    assert _value(prom, f'{mc.EVENTS_PROCESSED_TOTAL.name}{{model="churn"}}') == 6000
    prom.wait_for(f'{mc.CONSUMER_LAG.name}{{topic="{topic}",partition="0"}} == 0', timeout=30)

    # every window, exactly: not before the point, from the first full window after it on
    drift = _committed(service, "drift", 6)
    assert [r.seq for r in drift] == [1, 2, 3, 4, 5, 6]
    predictions = stream.frame["prediction"].to_numpy()
    spreads = [predictions[(r.seq - 1) * WINDOW : r.seq * WINDOW].std() for r in drift]
    assert [r.prediction_spread for r in drift] == pytest.approx(spreads, rel=1e-9)
    assert _value(prom, f"{mc.PREDICTION_SPREAD.name}{{{sel}}}") == pytest.approx(spreads[-1])
    for r in drift:
        by_name = {f.name: f for f in r.features}
        for f in DRIFTED:
            assert by_name[f].drift_detected == (r.seq >= 4), (r.seq, f, by_name[f])
        for f in UNDRIFTED:
            assert not by_name[f].drift_detected, (r.seq, f, by_name[f])
            assert by_name[f].score < by_name[f].threshold
        assert r.quality["num_0"]["missing"] == 0.0

    # --- labels arriving late (an hour of event time after their predictions) -----------
    feedback = stream.feedback_records(fraction=0.8, delay_s=3600.0, seed=2, flip=0.1)
    produce(
        kafka.bootstrap,
        f"{prefix}.feedback",
        [
            *feedback,
            (
                b"churn",
                b'{"schema": "driftwarden.feedback/v1", "id": "nope", "model": "churn", "ts": 1, "label": 1}',
            ),
        ],
    )
    n_labels = len(feedback)
    prom.wait_for(f'{mc.LABELS_JOINED_TOTAL.name}{{model="churn"}} == {n_labels}', timeout=60)
    n_windows = n_labels // WINDOW
    prom.wait_for(f'{mc.MODEL_PERFORMANCE.name}{{{sel},metric="accuracy"}}', timeout=30)

    # expected: labelled windows are consecutive blocks of WINDOW labels in feedback order
    rng = np.random.default_rng(2)
    n = len(stream)
    chosen = np.flatnonzero(rng.random(n) < 0.8)
    flips = rng.random(n) < 0.1
    target = stream.frame["target"].to_numpy()
    label = np.where(flips, 1 - target, target)[chosen]
    predicted = (stream.frame["prediction"].to_numpy() >= 0.5).astype(int)[chosen]
    expected = [
        float(
            np.mean(
                predicted[i * WINDOW : (i + 1) * WINDOW] == label[i * WINDOW : (i + 1) * WINDOW]
            )
        )
        for i in range(n_windows)
    ]
    perf = _committed(service, "performance", n_windows)
    assert [r.seq for r in perf] == list(range(1, n_windows + 1))
    assert [r.performance["accuracy"] for r in perf] == pytest.approx(expected, abs=1e-12)
    assert _value(prom, f'{mc.MODEL_PERFORMANCE.name}{{{sel},metric="accuracy"}}') == pytest.approx(
        expected[-1]
    )
    prom.wait_for(
        f'{mc.EVENTS_INVALID_TOTAL.name}{{model="churn",reason="label_unmatched"}} == 1', timeout=30
    )

    # --- the dead letters: original payload, reason in a header, each once --------------
    dead = consume_all(kafka.bootstrap, f"{prefix}.deadletter", min_count=4)
    reasons = sorted(dict(m.headers())["driftwarden.reason"].decode() for m in dead)
    assert reasons == ["label_unmatched", "malformed_json", "missing_field", "unknown_model"]
    assert {m.value() for m in dead} >= {b"{broken"}


def test_metric_names_and_labels_are_the_catalogue(setup, kafka: KafkaBroker) -> None:
    """Every family the service exports is catalogued, with exactly the catalogued labels."""
    import urllib.request

    prefix, model, service, _ = setup
    stream = model.stream(2 * WINDOW, seed=3)
    produce(kafka.bootstrap, f"{prefix}.predictions", stream.records())
    produce(kafka.bootstrap, f"{prefix}.feedback", stream.feedback_records())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and service.windows_committed < 4:
        time.sleep(0.1)
    assert service.windows_committed >= 4
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10)
        .read()
        .decode()
    )
    from prometheus_client.parser import text_string_to_metric_families

    seen = set()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            name = sample.name
            definition = mc.CATALOGUE.get(name) or mc.CATALOGUE.get(name + "_total")
            assert definition is not None, f"{name} is not in the metric catalogue"
            assert set(sample.labels) == set(definition.labels), (name, sample.labels)
            seen.add(definition.name)
    detectors = {
        m.name
        for m in (
            mc.FEATURE_DRIFT_SCORE,
            mc.FEATURE_DRIFT_DETECTED,
            mc.DATASET_DRIFT_SHARE,
            mc.DATASET_DRIFT_DETECTED,
            mc.PREDICTION_DRIFT_SCORE,
            mc.MODEL_PERFORMANCE,
            mc.DATA_QUALITY_SHARE,
            mc.WINDOW_ROWS,
            mc.WINDOWS_TOTAL,
            mc.EVENTS_PROCESSED_TOTAL,
            mc.LABELS_JOINED_TOTAL,
            mc.CONSUMER_LAG,
        )
    }
    assert detectors <= seen, detectors - seen
    health = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/healthz", timeout=10)
    assert health.status == 200


def test_a_replica_fenced_by_a_newer_one_gives_up_with_a_one_line_error(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    """Two replicas with one instance id: the newer one fences the older one's transactional
    producer and static group membership. The older one must stop (a fatal Kafka error is a
    `GiveUp`), say why in /healthz, and raise a `ServiceError` chained to the `GiveUp`; the
    newer one goes on committing."""
    from driftwarden.errors import GiveUp, ServiceError

    prefix = f"fen{uuid.uuid4().hex[:8]}"
    for suffix in ("predictions", "feedback"):
        kafka.create_topic(f"{prefix}.{suffix}", partitions=1)
    model = SyntheticModel("churn", n_numerical=2, n_categorical=1, seed=7)
    model.write(tmp_path / "specs", reference_rows=2000, window_rows=200)
    settings = ServiceSettings(
        specs=tmp_path / "specs",
        bootstrap=kafka.bootstrap,
        topic_prefix=prefix,
        group_id=f"{prefix}-g",
        instance_id="same",
        metrics_port=0,
        metrics_host="127.0.0.1",
        checkpoint_interval_s=0.3,
        transaction_timeout_s=10.0,
    )
    topic = f"{prefix}.predictions"
    stream = model.stream(2000, seed=1).records()
    stop_old, stop_new = threading.Event(), threading.Event()
    old, old_thread = start_service(settings, stop_old)
    new_thread = None
    try:
        produce(kafka.bootstrap, topic, stream[:500])
        deadline = time.monotonic() + 60
        while old.windows_committed < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert old.windows_committed >= 2, "the first replica committed no window"

        new, new_thread = start_service(settings, stop_new)
        produce(kafka.bootstrap, topic, stream[500:])
        old_thread.join(60)
        assert not old_thread.is_alive(), "the fenced replica kept running"
        assert len(old_thread.error) == 1, old_thread.error
        error = old_thread.error[0]
        assert isinstance(error, ServiceError), repr(error)
        assert isinstance(error.__cause__, GiveUp), repr(error.__cause__)
        assert "FATAL" in str(error), str(error)
        ok, detail = old.health()
        assert not ok and detail["status"] == "failing"
        assert detail["error"] == str(error)

        deadline = time.monotonic() + 60
        while new.windows_committed < 10 - old.windows_committed and time.monotonic() < deadline:
            time.sleep(0.05)
        # every window of the 2000 events is committed by one replica or the other
        assert old.windows_committed + new.windows_committed >= 10
        assert new.health()[0]
    finally:
        stop_old.set()
        stop_new.set()
        old_thread.join(30)
        if new_thread is not None:
            new_thread.join(30)
    assert new_thread is not None and not new_thread.error, new_thread.error
