"""Restart safety and scale-out of the detectors service against a real Kafka broker.

Both tests compare against an uninterrupted in-process run over the same input (produced
identically into a second set of topics, so offsets match): every window of every model
must appear exactly once in the results topic (read_committed) with the same rows and the
same statistics, and every invalid record exactly once in the dead-letter topic.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from detectors.service import ServiceSettings, WindowResult, start_service
from driftwarden.services import KafkaBroker
from driftwarden.services.ports import free_port
from tests.kits.detectors import (
    ServiceProcess,
    SyntheticModel,
    consume_all,
    read_results,
)
from tests.kits.waiting import wait_until

pytestmark = pytest.mark.integration

Record = tuple[str, int, bytes | None, bytes]  # (topic suffix, partition, key, value)


def _models(specs: Path, window_rows: int) -> list[SyntheticModel]:
    models = [
        SyntheticModel("alpha", n_numerical=3, n_categorical=2, seed=1),
        SyntheticModel("beta", n_numerical=2, n_categorical=1, seed=2),
        SyntheticModel("gamma", n_numerical=2, n_categorical=2, seed=3),
        SyntheticModel("delta", n_numerical=3, n_categorical=1, seed=4),
    ]
    for m in models:
        m.write(
            specs, reference_rows=2000, window_rows=window_rows, performance=("accuracy", "roc_auc")
        )
    return models


def _input(models: list[SyntheticModel], per_version: int) -> list[list[Record]]:
    """Chunks of records: each model on its own partition, two versions interleaved,
    drift from the middle, feedback for 80 % of the predictions a chunk later, and a
    few invalid records."""
    chunks: list[list[Record]] = []
    step = 500
    streams = []
    for i, m in enumerate(models):
        for j, version in enumerate(("stable", "canary")):
            n = per_version if version == "stable" else per_version // 2
            s = m.stream(
                n, version=version, drift_from=n // 2, drifted={m.numerical[0]}, seed=10 * i + j
            )
            streams.append((i, s, s.records()))
    longest = max(len(r) for _, _, r in streams)
    pending_feedback: list[Record] = []
    for start in range(0, longest, step):
        chunk: list[Record] = list(pending_feedback)
        pending_feedback = []
        for part, s, recs in streams:
            chunk += [("predictions", part, k, v) for k, v in recs[start : start + step]]
            # labels only for predictions already produced: they go out with the next chunk
            fb = s.feedback_records(fraction=0.8, seed=part, start=start, stop=start + step)
            pending_feedback += [("feedback", part, k, v) for k, v in fb]
            if start == step:
                chunk.append(("predictions", part, s.model.encode(), b"{not json"))
                chunk.append(
                    ("feedback", part, s.model.encode(), b'{"schema": "driftwarden.feedback/v1"}')
                )
        chunks.append(chunk)
    chunks.append(pending_feedback)
    return chunks


def _produce_chunks(
    bootstrap: str, prefix: str, chunks: list[list[Record]], pause: float = 0.0
) -> None:
    """Produce the chunks in order with one idempotent producer (same offsets every time)."""
    from confluent_kafka import Producer

    from driftwarden.kafka import producer_config

    producer = Producer(producer_config(bootstrap))
    try:
        for chunk in chunks:
            for suffix, part, key, value in chunk:
                while True:
                    try:
                        producer.produce(f"{prefix}.{suffix}", value=value, key=key, partition=part)
                        break
                    except BufferError:
                        producer.poll(0.05)
            assert producer.flush(60) == 0
            if pause:
                time.sleep(pause)
    finally:
        del producer


def _expected_windows(chunks: list[list[Record]], window_rows: int) -> int:
    """Drift windows + labelled windows the input closes (full windows only)."""
    preds: Counter[tuple[int, str]] = Counter()
    labels: Counter[tuple[int, str]] = Counter()
    import msgspec

    for chunk in chunks:
        for suffix, part, _, value in chunk:
            try:
                ev = msgspec.json.decode(value)
            except msgspec.DecodeError:
                continue
            if suffix == "predictions":
                preds[(part, ev["version"])] += 1
            elif "label" in ev:
                labels[(part, ev["id"].split("-")[1])] += 1
    return sum(n // window_rows for n in preds.values()) + sum(
        n // window_rows for n in labels.values()
    )


def _by_key(results: list[WindowResult]) -> dict[tuple[str, str, str, int], WindowResult]:
    keys = Counter(r.key for r in results)
    twice = [k for k, n in keys.items() if n > 1]
    assert not twice, f"windows produced more than once: {twice[:5]}"
    return {r.key: r for r in results}


def _same(a: WindowResult, b: WindowResult) -> None:
    assert (a.rows, a.first_offset, a.last_offset, a.partition) == (
        b.rows,
        b.first_offset,
        b.last_offset,
        b.partition,
    ), a.key
    assert [(f.name, f.test, f.drift_detected) for f in a.features] == [
        (f.name, f.test, f.drift_detected) for f in b.features
    ], a.key
    for fa, fb in zip(a.features, b.features, strict=True):
        # categorical keys come in Python set order, which varies with PYTHONHASHSEED
        assert math.isclose(fa.score, fb.score, rel_tol=1e-9, abs_tol=1e-12), (a.key, fa.name)
    assert a.drift_share == b.drift_share and a.quality == b.quality, a.key
    assert a.performance.keys() == b.performance.keys(), a.key
    for k, v in a.performance.items():
        assert math.isclose(v, b.performance[k], rel_tol=1e-12), (a.key, k)


def _dead_sources(bootstrap: str, topic: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for m in consume_all(bootstrap, topic, timeout=20):
        headers = dict(m.headers() or [])
        out[
            headers["driftwarden.source"].decode() + " " + headers["driftwarden.reason"].decode()
        ] += 1
    return out


def _reference_run(
    broker: KafkaBroker, specs: Path, chunks: list[list[Record]], partitions: int, total: int
) -> tuple[dict, Counter]:
    prefix = f"ref{uuid.uuid4().hex[:8]}"
    for suffix in ("predictions", "feedback"):
        broker.create_topic(f"{prefix}.{suffix}", partitions=partitions)
    _produce_chunks(broker.bootstrap, prefix, chunks)
    settings = ServiceSettings(
        specs=specs,
        bootstrap=broker.bootstrap,
        topic_prefix=prefix,
        group_id=f"{prefix}-g",
        instance_id="ref",
        metrics_port=0,
        metrics_host="127.0.0.1",
        checkpoint_interval_s=0.5,
        transaction_timeout_s=10.0,
    )
    stop = threading.Event()
    service, thread = start_service(settings, stop)
    try:
        wait_until(
            lambda: service.windows_committed >= total, 60, f"{total} windows in the reference run"
        )
    finally:
        stop.set()
        thread.join(30)
    assert not thread.error, thread.error
    results = read_results(broker.bootstrap, settings.results_topic, min_count=total)
    return _by_key(results), _dead_sources(broker.bootstrap, f"{prefix}.deadletter")


def _processed(proc: ServiceProcess) -> int:
    return sum(m["processed"] for m in _health(proc).get("models", {}).values())


def _health(proc: ServiceProcess) -> dict:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{proc.url}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return {}


def test_sigkill_and_restart_give_the_same_windows(kafka: KafkaBroker, tmp_path: Path) -> None:
    """SIGKILL the service twice at random points while input streams in; after
    the last restart every window exists exactly once, equal to an uninterrupted run."""
    window_rows = 500
    specs = tmp_path / "specs"
    models = _models(specs, window_rows)
    chunks = _input(models, per_version=3000)
    total = _expected_windows(chunks, window_rows)
    reference, ref_dead = _reference_run(kafka, specs, chunks, 4, total)
    assert len(reference) == total

    prefix = f"kill{uuid.uuid4().hex[:8]}"
    for suffix in ("predictions", "feedback"):
        kafka.create_topic(f"{prefix}.{suffix}", partitions=4)
    producer = threading.Thread(
        target=_produce_chunks, args=(kafka.bootstrap, prefix, chunks, 0.15), daemon=True
    )
    port = free_port()
    args = dict(
        specs=specs,
        bootstrap=kafka.bootstrap,
        metrics_port=port,
        group_id=f"{prefix}-g",
        topic_prefix=prefix,
        log_path=tmp_path / "detectors.log",
        extra_args=[
            "--checkpoint-interval",
            "0.3",
            "--transaction-timeout",
            "10",
            "--instance-id",
            "restart-test",
            "--metrics-host",
            "127.0.0.1",
        ],
    )
    rng = random.Random(7)
    producer.start()
    n_predictions = sum(1 for chunk in chunks for r in chunk if r[0] == "predictions")
    for share in (0.2, 0.6):
        proc = ServiceProcess(**args).start()
        try:
            proc.wait_healthy(60)
            wait_until(
                lambda p=proc, s=share: _processed(p) >= s * n_predictions, 60, "events processed"
            )
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            proc.kill()
    producer.join(120)
    proc = ServiceProcess(**args).start()
    try:
        proc.wait_healthy(60)
        results_topic = f"{prefix}.windows"
        wait_until(
            lambda: len(consume_all(kafka.bootstrap, results_topic, timeout=5)) >= total,
            90,
            f"{total} windows",
        )
    finally:
        assert proc.stop() == 0
    dead = _dead_sources(kafka.bootstrap, f"{prefix}.deadletter")
    assert dead == ref_dead
    got = _by_key(read_results(kafka.bootstrap, f"{prefix}.windows", min_count=total))
    assert got.keys() == reference.keys()
    for key, result in reference.items():
        _same(got[key], result)
    assert all(n == 1 for n in dead.values())
    assert len(dead) == 2 * 2 * len(models)  # two invalid records per model version


def test_two_replicas_split_the_models_and_take_over_when_one_dies(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    """Two detector processes in one group split four partitions (one model each); when
    one is SIGKILLed mid-stream the other takes its partitions over from their
    checkpoints. Every window of every model is still produced exactly once."""
    window_rows = 500
    specs = tmp_path / "specs"
    models = _models(specs, window_rows)
    chunks = _input(models, per_version=2000)
    total = _expected_windows(chunks, window_rows)
    reference, ref_dead = _reference_run(kafka, specs, chunks, 4, total)

    prefix = f"scale{uuid.uuid4().hex[:8]}"
    for suffix in ("predictions", "feedback"):
        kafka.create_topic(f"{prefix}.{suffix}", partitions=4)

    def replica(name: str) -> ServiceProcess:
        return ServiceProcess(
            specs=specs,
            bootstrap=kafka.bootstrap,
            metrics_port=free_port(),
            group_id=f"{prefix}-g",
            topic_prefix=prefix,
            log_path=tmp_path / f"detectors-{name}.log",
            extra_args=[
                "--checkpoint-interval",
                "0.3",
                "--transaction-timeout",
                "6",
                "--instance-id",
                name,
                "--metrics-host",
                "127.0.0.1",
            ],
        )

    a, b = replica("a").start(), replica("b").start()
    try:
        a.wait_healthy(60)
        b.wait_healthy(60)
        wait_until(
            lambda: (
                len(_health(a).get("partitions", [])) == 2
                and len(_health(b).get("partitions", [])) == 2
            ),
            60,
            "the two replicas to split the four partitions",
        )
        assert sorted(_health(a)["partitions"] + _health(b)["partitions"]) == [0, 1, 2, 3]
        half = len(chunks) // 2
        _produce_chunks(kafka.bootstrap, prefix, chunks[:half])
        n_first = sum(1 for c in chunks[:half] for r in c if r[0] == "predictions")
        wait_until(
            lambda: _processed(a) + _processed(b) >= 0.8 * n_first, 60, "the first half processed"
        )
        a.kill()
        _produce_chunks(kafka.bootstrap, prefix, chunks[half:])
        # b gets a's partitions after a's session times out and its open transaction aborts
        wait_until(
            lambda: _health(b).get("partitions") == [0, 1, 2, 3], 60, "b to own every partition"
        )
        results_topic = f"{prefix}.windows"
        wait_until(
            lambda: len(consume_all(kafka.bootstrap, results_topic, timeout=5)) >= total,
            90,
            f"{total} windows",
        )
    finally:
        a.kill()
        assert b.stop() == 0
    dead = _dead_sources(kafka.bootstrap, f"{prefix}.deadletter")
    assert dead == ref_dead
    got = _by_key(read_results(kafka.bootstrap, f"{prefix}.windows", min_count=total))
    assert got.keys() == reference.keys()
    for key, result in reference.items():
        _same(got[key], result)
    # each model's windows came from the partition that holds it
    assert {r.model: r.partition for r in got.values()} == {m.name: i for i, m in enumerate(models)}
