"""Lineage: every step of a model's retrain is appended to `<prefix>.lineage` (key = model).

`LineageLog` is the Kafka adapter (confluent-kafka): `append` is asynchronous (librdkafka
batches, retries and keeps order per key; delivery failures are logged and counted), and
`history(model)` reads the topic back from the beginning. The same steps are mirrored as a
JSON list in the Job's `driftwarden.io/lineage` annotation, so `kubectl get job -o yaml`
tells the story even without Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from driftwarden.errors import RetryLater
from driftwarden.kafka import (
    DEFAULT_TOPIC_PREFIX,
    KafkaSecurity,
    Topics,
    admin_config,
    consumer_config,
    producer_config,
)
from driftwarden.kafka_access import PasswordWatch, check_access
from driftwarden.schema import EventError, LineageEvent, decode_lineage, encode_lineage

__all__ = ["LineageLog", "lineage_topic", "step"]

log = logging.getLogger(__name__)


def lineage_topic(prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    return Topics.with_prefix(prefix).lineage


def step(model: str, name: str, ref: str, ts: float, **detail: Any) -> LineageEvent:
    """One lineage event (pure); `name` is one of `driftwarden.schema.LINEAGE_STEPS`."""
    return LineageEvent(model=model, ts=ts, step=name, ref=ref, detail=detail)  # type: ignore[arg-type]


def as_annotation_entry(event: LineageEvent) -> dict[str, Any]:
    """The compact form mirrored on the Job (`driftwarden.io/lineage`)."""
    return {"ts": round(event.ts, 3), "step": event.step, "ref": event.ref, **event.detail}


class LineageLog:
    """Append to and read back the lineage topic. Thread-safe."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        partitions: int = 3,
        on_error: Callable[[str], None] | None = None,
        producer_overrides: Mapping[str, object] | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        #: TLS / SASL (docs/security.md lists the ACLs the trigger needs on the topic).
        self.security = security
        self.topic = topic
        self.partitions = partitions
        self._on_error = on_error
        self._producer: Producer | None = None
        self._lock = threading.Lock()
        self._overrides = dict(producer_overrides or {})
        self.failed = 0
        self._password_watch = PasswordWatch.of(security)

    # --- writing ---------------------------------------------------------------------------

    def ensure_topic(self, timeout: float = 10.0) -> None:
        """Create the topic if it is missing (an existing one is left as it is). With
        security on, refused credentials or a missing ACL are one `KafkaAccessError` line;
        an existing topic needs no CREATE ACL."""
        admin = AdminClient(admin_config(self.bootstrap, security=self.security))
        if self.security is not None and self.security.protocol != "PLAINTEXT":
            check_access(self.bootstrap, self.security, topics=(self.topic,), timeout=timeout)
            found = admin.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
            if found is not None and found.error is None and found.partitions:
                return
        futures = admin.create_topics(
            [NewTopic(self.topic, num_partitions=self.partitions)], request_timeout=timeout
        )
        try:
            futures[self.topic].result(timeout)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            raise RetryLater(f"cannot create lineage topic {self.topic}: {e}") from e

    def _get_producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                config = producer_config(
                    self.bootstrap, security=self.security, **{"linger.ms": 2, **self._overrides}
                )
                self._producer = Producer(config)
            else:
                self._follow_password()
            return self._producer

    def _follow_password(self) -> None:
        """A rotated password file reaches the long-lived producer (next authentication)."""
        if self._password_watch is not None:
            self._password_watch.rotate(time.monotonic(), (self._producer,))

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failed += 1
            log.error("lineage record for %s not delivered: %s", msg.key(), err)
            if self._on_error is not None:
                self._on_error(str(err))

    def append(self, event: LineageEvent) -> None:
        """Queue one event (key = model); delivery happens in the background."""
        producer = self._get_producer()
        try:
            producer.produce(
                self.topic,
                key=event.model.encode(),
                value=encode_lineage(event),
                on_delivery=self._delivered,
            )
        except BufferError:
            producer.poll(0.5)
            producer.produce(
                self.topic,
                key=event.model.encode(),
                value=encode_lineage(event),
                on_delivery=self._delivered,
            )
        producer.poll(0)

    def flush(self, timeout: float = 10.0) -> int:
        """Wait for queued events; returns how many are still undelivered."""
        if self._producer is None:
            return 0
        return self._producer.flush(timeout)

    # --- reading ---------------------------------------------------------------------------

    def history(self, model: str, timeout: float = 10.0, limit: int = 10_000) -> list[LineageEvent]:
        """Every lineage event of `model`, oldest first (the topic read from its beginning)."""
        group = f"driftwarden-lineage-reader-{uuid.uuid4().hex[:8]}"
        if self.security is not None and self.security.protocol != "PLAINTEXT":
            check_access(self.bootstrap, self.security, topics=(self.topic,), timeout=timeout)
        consumer = Consumer(
            consumer_config(
                self.bootstrap, group, security=self.security, **{"enable.partition.eof": False}
            )
        )
        try:
            try:
                meta = consumer.list_topics(self.topic, timeout=timeout)
            except KafkaException as e:
                raise RetryLater(f"cannot reach Kafka at {self.bootstrap}: {e}") from e
            topic_meta = meta.topics.get(self.topic)
            if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
                return []
            ends: dict[int, int] = {}
            for p in topic_meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=timeout
                )
                if high > low:
                    ends[p] = high
            if not ends:
                return []
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in ends])
            key = model.encode()
            out: list[LineageEvent] = []
            deadline = time.monotonic() + timeout
            while ends and time.monotonic() < deadline:
                for msg in consumer.consume(500, timeout=0.5):
                    if msg.error() is not None:
                        continue
                    if msg.key() == key:
                        try:
                            out.append(decode_lineage(msg.value()))
                        except EventError as e:
                            log.warning(
                                "skipping a bad lineage record at offset %s: %s", msg.offset(), e
                            )
                    if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                        ends.pop(msg.partition(), None)
            if ends:
                raise RetryLater(f"reading {self.topic} took longer than {timeout}s")
            out.sort(key=lambda e: e.ts)
            return out[-limit:]
        finally:
            consumer.close()

    def close(self, timeout: float = 10.0) -> None:
        left = self.flush(timeout)
        if left:
            log.error("%d lineage record(s) not delivered at shutdown", left)
        self._producer = None  # the librdkafka handle closes when collected
