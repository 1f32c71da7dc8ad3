"""Proof that the Kafka fixtures run a real KRaft broker that independent clients
(kafka-python, confluent-kafka) can use: topics with several partitions, consumer groups,
an outage and a restart on the same address with the data kept."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from driftwarden.services import KafkaBroker

pytestmark = pytest.mark.integration


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _partition_count(bootstrap: str, topic: str) -> int:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=10)
    return len(meta.topics[topic].partitions)


def _consume_all(consumer: KafkaConsumer, n: int, timeout: float = 30.0) -> list:
    records: list = []
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def test_broker_is_kraft_on_loopback(kafka: KafkaBroker) -> None:
    host, port = kafka.bootstrap.split(":")
    assert host == "127.0.0.1"
    assert int(port) > 0
    text = kafka.properties_path.read_text()
    assert "process.roles=broker,controller" in text
    assert "group.initial.rebalance.delay.ms=0" in text
    assert kafka.startup_seconds is not None


def test_kafka_python_creates_topic_with_partitions(kafka: KafkaBroker) -> None:
    topic = _unique("kp-topic")
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap, client_id="driftwarden-test")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        admin.close()
    assert _partition_count(kafka.bootstrap, topic) == 4


def test_consumer_group_reads_every_keyed_message(kafka: KafkaBroker) -> None:
    topic, group = _unique("group-topic"), _unique("group")
    kafka.create_topic(topic, partitions=3)
    assert _partition_count(kafka.bootstrap, topic) == 3

    n, keys = 300, [f"model-{i}".encode() for i in range(6)]
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5)
    try:
        for i in range(n):
            producer.send(topic, key=keys[i % len(keys)], value=f"{i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
    )
    try:
        records = _consume_all(consumer, n)
        consumer.commit()
        assignment = consumer.assignment()
    finally:
        consumer.close()

    assert sorted(int(r.value) for r in records) == list(range(n))
    assert {tp.partition for tp in assignment} == {0, 1, 2}
    # One key, one partition, and in produce order within it.
    partitions_by_key: dict[bytes, set[int]] = defaultdict(set)
    values_by_key: dict[bytes, list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        partitions_by_key[r.key].add(r.partition)
        values_by_key[r.key].append(int(r.value))
    assert all(len(p) == 1 for p in partitions_by_key.values())
    assert all(v == sorted(v) for v in values_by_key.values())
    assert len({p for ps in partitions_by_key.values() for p in ps}) > 1


def test_confluent_and_kafka_python_agree_on_key_partitioning(kafka: KafkaBroker) -> None:
    """confluent-kafka with murmur2_random maps keys like Java clients (and kafka-python)."""
    topic = _unique("interop")
    kafka.create_topic(topic, partitions=5)
    keys = [f"model-{i}" for i in range(20)]

    producer = Producer({"bootstrap.servers": kafka.bootstrap, "partitioner": "murmur2_random"})
    for key in keys:
        producer.produce(topic, key=key, value=b"confluent")
    assert producer.flush(30) == 0
    kp = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    try:
        for key in keys:
            kp.send(topic, key=key.encode(), value=b"kafka-python")
        kp.flush(timeout=30)
    finally:
        kp.close(timeout=10)

    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": _unique("interop-group"),
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        seen: dict[str, dict[bytes, int]] = defaultdict(dict)
        deadline = time.monotonic() + 30
        while sum(len(v) for v in seen.values()) < 2 * len(keys) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            seen[msg.key().decode()][msg.value()] = msg.partition()
    finally:
        consumer.close()
    assert len(seen) == len(keys)
    for key, by_client in seen.items():
        assert by_client[b"confluent"] == by_client[b"kafka-python"], key


def test_factory_broker_survives_kill_and_restart(kafka_factory) -> None:
    broker = kafka_factory()
    topic = _unique("outage")
    broker.create_topic(topic, partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(50):
        producer.produce(topic, key=f"k{i % 4}", value=f"before-{i}")
    assert producer.flush(30) == 0

    address = broker.bootstrap
    broker.kill()
    assert not broker.running()
    broker.restart()
    assert broker.bootstrap == address
    assert broker.running()

    for i in range(50):
        producer.produce(topic, key=f"k{i % 4}", value=f"after-{i}")
    assert producer.flush(30) == 0

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=_unique("outage-group"),
        auto_offset_reset="earliest",
    )
    try:
        values = {r.value.decode() for r in _consume_all(consumer, 100)}
    finally:
        consumer.close()
    assert {f"before-{i}" for i in range(50)} <= values
    assert {f"after-{i}" for i in range(50)} <= values
    broker.stop()
    assert not broker.running()
