"""Checkpoints of shard state in a compacted Kafka topic, written in the same Kafka
transaction as the consumer offsets they correspond to.

Layout (topic `<prefix>.checkpoints`, `cleanup.policy=compact`): the checkpoint of shard
`p` of consumer group `g` lives in partition `p % partitions` as

    key "g/p/<gen>/<i>"  value: chunk i of the msgpack-encoded state (<= 900 kB each)
    key "g/p"            value: header {gen, chunks, bytes, offsets}  (written last)

and the chunks of the previous generation are tombstoned in the same transaction, so
compaction keeps exactly one generation per shard. Chunks let a state of any size pass the
broker's default 1 MB record limit.

Because the service produces the chunks, the header, its dead letters and window results
and calls `send_offsets_to_transaction` in one transaction, a checkpoint and its offsets
are committed together or not at all: after a crash, the group's committed offsets are
exactly the offsets of the latest checkpoint visible to a `read_committed` reader.

Reading (`KafkaCheckpoints.load`) scans the partition backwards from its end in growing
steps until it finds the shard's latest header and all of its chunks, so the cost is the
size of the latest checkpoint, not of the topic's history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from detectors.service.kafka_errors import kafka_error
from driftwarden.errors import GiveUp, RetryLater
from driftwarden.kafka import KafkaSecurity, admin_config

__all__ = [
    "CHUNK_BYTES",
    "Checkpoint",
    "CheckpointError",
    "KafkaCheckpoints",
    "assemble",
    "chunk_records",
    "ensure_checkpoint_topic",
]

_log = logging.getLogger(__name__)

CHUNK_BYTES = 900_000
FORMAT = 1


class CheckpointError(GiveUp):
    """A checkpoint that cannot be used: written in another format, or its chunks do not add
    up. Permanent: reading it again gives the same bytes. (Reads that may succeed later,
    a timeout or a retriable broker error, raise `RetryLater`.)"""


class Header(msgspec.Struct, frozen=True):
    format: int
    gen: int
    chunks: int
    bytes: int
    offsets: dict[str, int | None]
    written_at: float


@dataclass(frozen=True, slots=True)
class Checkpoint:
    gen: int
    state: dict[str, Any]
    chunks: int


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()
_header_dec = msgspec.msgpack.Decoder(Header)


def shard_key(group: str, partition: int) -> str:
    return f"{group}/{partition}"


def chunk_key(group: str, partition: int, gen: int, index: int) -> str:
    return f"{group}/{partition}/{gen}/{index}"


def chunk_records(
    group: str,
    partition: int,
    state: dict[str, Any],
    gen: int,
    *,
    previous: tuple[int, int] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    now: float | None = None,
) -> list[tuple[str, bytes | None]]:
    """The (key, value) records of one checkpoint, in the order they must be produced:
    chunks, header, then tombstones of the `previous` (gen, chunks)."""
    blob = _enc.encode(state)
    chunks = [blob[i : i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)] or [b""]
    out: list[tuple[str, bytes | None]] = [
        (chunk_key(group, partition, gen, i), c) for i, c in enumerate(chunks)
    ]
    header = Header(
        format=FORMAT,
        gen=gen,
        chunks=len(chunks),
        bytes=len(blob),
        offsets={"predictions": state.get("pred_offset"), "feedback": state.get("fb_offset")},
        written_at=time.time() if now is None else now,
    )
    out.append((shard_key(group, partition), _enc.encode(header)))
    if previous is not None and previous[0] != gen:
        prev_gen, prev_chunks = previous
        out += [(chunk_key(group, partition, prev_gen, i), None) for i in range(prev_chunks)]
    return out


def assemble(
    group: str, partition: int, records: Iterable[tuple[str, bytes | None]]
) -> Checkpoint | bool | None:
    """The latest complete checkpoint of a shard among `records` (in partition order).

    Returns the `Checkpoint`, `None` when the records hold no header of the shard, or
    `False` when the latest header's chunks are not all among the records (read further
    back)."""
    hkey = shard_key(group, partition)
    prefix = hkey + "/"
    header: Header | None = None
    chunks: dict[str, bytes | None] = {}
    for key, value in records:
        if key == hkey:
            header = _header_dec.decode(value) if value is not None else None
        elif key.startswith(prefix):
            chunks[key] = value
    if header is None:
        return None
    if header.format != FORMAT:
        raise CheckpointError(
            f"checkpoint of partition {partition} has format {header.format}, this version "
            f"reads {FORMAT}"
        )
    parts = []
    for i in range(header.chunks):
        c = chunks.get(chunk_key(group, partition, header.gen, i))
        if c is None:
            return False
        parts.append(c)
    blob = b"".join(parts)
    if len(blob) != header.bytes:
        raise CheckpointError(
            f"checkpoint of partition {partition}: {len(blob)} bytes, header says {header.bytes}"
        )
    return Checkpoint(gen=header.gen, state=_dec.decode(blob), chunks=header.chunks)


def ensure_checkpoint_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    timeout: float = 30.0,
    *,
    security: KafkaSecurity | None = None,
) -> int:
    """Create the compacted checkpoint topic if missing; return its partition count."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(admin_config(bootstrap, security=security))
    meta = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    if meta is not None and meta.error is None and meta.partitions:
        return len(meta.partitions)
    config = {
        "cleanup.policy": "compact",
        # roll segments often so the cleaner can compact old generations away
        "segment.ms": "600000",
        "min.cleanable.dirty.ratio": "0.1",
        "delete.retention.ms": "3600000",
    }
    fut = admin.create_topics(
        [NewTopic(topic, num_partitions=max(1, partitions), replication_factor=-1, config=config)],
        operation_timeout=timeout,
        request_timeout=timeout,
    )[topic]
    try:
        fut.result(timeout)
    except KafkaException as e:
        err = e.args[0] if e.args else None
        if getattr(err, "code", lambda: None)() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise RetryLater(f"cannot create checkpoint topic {topic!r}: {e}") from e
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=5).topics.get(topic)
        if (
            meta is not None
            and meta.error is None
            and meta.partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return len(meta.partitions)
        time.sleep(0.1)
    raise RetryLater(f"checkpoint topic {topic!r} has no leader after {timeout}s")


class KafkaCheckpoints:
    """Reads checkpoints of one consumer group's shards (writing is the service's
    transactional producer's job: see `chunk_records`)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        partitions: int,
        *,
        timeout: float = 60.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self.group = group
        self.partitions = partitions
        self.timeout = timeout
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                **(security.client_config() if security is not None else {}),
                "group.id": f"{group}.checkpoint-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "fetch.wait.max.ms": 20,
            }
        )
        # (gen, chunks) of the latest checkpoint of every shard read or written
        self.generations: dict[int, tuple[int, int]] = {}

    def partition_of(self, shard: int) -> int:
        return shard % self.partitions

    def load(self, shard: int) -> Checkpoint | None:
        """The latest committed checkpoint of `shard`, or None when it has none."""
        return self.load_many([shard])[shard]

    def load_many(self, shards: Iterable[int]) -> dict[int, Checkpoint | None]:
        """The latest committed checkpoint of each shard (None: it has none). Reads the
        tails of all their partitions at once, further back only where needed."""
        from confluent_kafka import TopicPartition

        shards = list(shards)
        out: dict[int, Checkpoint | None] = {}
        parts = {self.partition_of(s) for s in shards}
        bounds: dict[int, tuple[int, int]] = {}
        for part in parts:
            lo, hi = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, part), timeout=10, cached=False
            )
            bounds[part] = (lo, hi)
        todo = {
            s for s in shards if bounds[self.partition_of(s)][1] > bounds[self.partition_of(s)][0]
        }
        out.update({s: None for s in shards if s not in todo})
        step = 64
        deadline = time.monotonic() + self.timeout
        while todo:
            starts = {}
            for s in todo:
                lo, hi = bounds[self.partition_of(s)]
                starts[self.partition_of(s)] = max(lo, hi - step)
            records = self._read(starts, deadline)
            for s in sorted(todo):
                part = self.partition_of(s)
                found = assemble(self.group, s, records[part])
                at_start = starts[part] == bounds[part][0]
                if isinstance(found, Checkpoint):
                    self.generations[s] = (found.gen, found.chunks)
                    out[s] = found
                elif found is None and at_start:
                    out[s] = None
                elif at_start:
                    raise CheckpointError(
                        f"checkpoint of partition {s} is incomplete in {self.topic}"
                    )
                else:
                    continue
                todo.discard(s)
            step *= 4
        return out

    def _read(
        self, starts: dict[int, int], deadline: float
    ) -> dict[int, list[tuple[str, bytes | None]]]:
        """Records of each partition from its start offset to its end (last stable offset)."""
        from confluent_kafka import KafkaError, TopicPartition

        self._consumer.assign([TopicPartition(self.topic, p, off) for p, off in starts.items()])
        out: dict[int, list[tuple[str, bytes | None]]] = {p: [] for p in starts}
        left = set(starts)
        try:
            while left:
                if time.monotonic() > deadline:
                    raise RetryLater(
                        f"reading checkpoints from {self.topic} timed out (an open transaction of "
                        "a dead detector blocks it until the broker aborts it)"
                    )
                for m in self._consumer.consume(1000, 0.2):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            left.discard(m.partition())
                            continue
                        # a failed read: retried while librdkafka calls the error retriable
                        raise kafka_error(err, f"reading {self.topic}")
                    key = m.key()
                    out[m.partition()].append((key.decode() if key else "", m.value()))
        finally:
            self._consumer.unassign()
        return out

    def end_offset(self, topic: str, partition: int, timeout: float = 5.0) -> int:
        """The current end (last stable offset) of any partition, asked of the broker.

        Uses this reader's own connection, idle between loads, so the answer does not
        wait behind the main consumer's long-polling fetches."""
        from confluent_kafka import TopicPartition

        _, hi = self._consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout, cached=False
        )
        return int(hi)

    def set_sasl_credentials(self, username: str, password: str) -> None:
        """A rotated password, used at the next (re)authentication of the reader."""
        self._consumer.set_sasl_credentials(username, password)

    def close(self) -> None:
        self._consumer.close()
