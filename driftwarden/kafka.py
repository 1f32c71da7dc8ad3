"""Kafka names and client settings shared by every component (DESIGN.md, "Events on Kafka")."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TOPIC_PREFIX = "driftwarden"


@dataclass(frozen=True, slots=True)
class Topics:
    predictions: str
    feedback: str
    deadletter: str

    @classmethod
    def with_prefix(cls, prefix: str = DEFAULT_TOPIC_PREFIX) -> Topics:
        return cls(f"{prefix}.predictions", f"{prefix}.feedback", f"{prefix}.deadletter")


def producer_config(bootstrap: str, **overrides: object) -> dict[str, object]:
    """librdkafka producer settings: durable, idempotent, batched, compressed.

    `murmur2_random` makes a key land on the partition a Java client (and kafka-python)
    would choose; librdkafka's default (`consistent_random`, CRC32) hashes differently.
    """
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 200_000,
    }
    config.update(overrides)
    return config


def consumer_config(bootstrap: str, group_id: str, **overrides: object) -> dict[str, object]:
    """librdkafka consumer settings: manual commits (offsets travel with checkpoints)."""
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10_000,
    }
    config.update(overrides)
    return config
