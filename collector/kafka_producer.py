"""The librdkafka producer behind delivery, with its errors mapped at the boundary.

`ProducerAdapter` is the only place in the collector that calls confluent-kafka. Every
failure leaves it as one of the two boundary errors of `driftwarden.errors`, chained to
the library's error:

- `RetryLater`: the record may be produced later (librdkafka's queue is full, a broker is
  away, a transient error). Delivery spools it and replays it.
- `GiveUp`: producing it again cannot succeed (larger than `message.max.bytes`, an invalid
  record). Delivery dead-letters it (reason `oversize` for the size) and moves on.

Refused credentials and missing ACLs (`driftwarden.kafka.AUTH_ERRORS`) are `RetryLater`:
the record is fine, the principal is not, and an operator fixes that (Secret, ACL) without
the collector losing what it captured meanwhile: events wait in the spool, and delivery
logs one clear line saying what is wrong (docs/security.md).

`classify` applies the same rule to the error of a delivery report, so a record the broker
refuses for good (its own, smaller `message.max.bytes`) is dead-lettered too, instead of
being replayed from the spool forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from collector.events import Record
from driftwarden.errors import ExternalError, GiveUp, RetryLater

#: librdkafka's default `message.max.bytes`.
DEFAULT_MESSAGE_MAX_BYTES: Final = 1_000_000

# Error names (KafkaError.name()) after which repeating the same record cannot succeed.
_PERMANENT: Final = frozenset(
    {
        "MSG_SIZE_TOO_LARGE",  # larger than the producer's or the broker's message.max.bytes
        "_MSG_SIZE_TOO_LARGE",
        "INVALID_RECORD",
        "CORRUPT_MESSAGE",
        "_INVALID_ARG",
        "INVALID_REQUIRED_ACKS",
        "RECORD_LIST_TOO_LARGE",
        "INVALID_TOPIC_EXCEPTION",
    }
)
OVERSIZE_ERRORS: Final = frozenset({"MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE"})


def classify(err: Any) -> type[ExternalError]:
    """`GiveUp` or `RetryLater` for a `confluent_kafka.KafkaError` (or anything with `name()`)."""
    name = err.name() if hasattr(err, "name") else str(err)
    return GiveUp if name in _PERMANENT else RetryLater


def error_name(exc: ExternalError) -> str:
    """The librdkafka error name behind a boundary error (`queue_full` for a full queue)."""
    cause = exc.__cause__
    if isinstance(cause, BufferError):
        return "queue_full"
    if cause is not None and cause.args and hasattr(cause.args[0], "name"):
        return str(cause.args[0].name())
    return type(cause).__name__ if cause is not None else "unknown"


class ProducerAdapter:
    """confluent-kafka's `Producer`, raising `RetryLater` / `GiveUp` instead of its errors."""

    def __init__(
        self,
        config: dict[str, Any],
        factory: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.max_message_bytes = int(config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
        if factory is not None:
            self._producer = factory(config)
        else:
            from confluent_kafka import Producer

            self._producer = Producer(config)
        self.poll = self._producer.poll

    def __len__(self) -> int:
        return len(self._producer)

    def produce(self, record: Record, on_delivery: Callable[[Any, Any], None]) -> None:
        try:
            self._producer.produce(record.topic, record.value, record.key, on_delivery=on_delivery)
        except BufferError as e:
            raise RetryLater("librdkafka's queue is full") from e
        except (TypeError, ValueError) as e:
            raise GiveUp(f"librdkafka refused the record ({e})") from e
        except Exception as e:  # KafkaException (not importable without the library)
            err = e.args[0] if e.args else None
            if err is not None and hasattr(err, "name"):
                raise classify(err)(f"librdkafka refused the record ({err.name()})") from e
            raise RetryLater(f"produce failed ({e})") from e

    def purge(self, *, in_flight: bool) -> None:
        """Take back what librdkafka holds: queued records always, in-flight ones when asked
        (their delivery reports then come with `_PURGE_*` errors)."""
        self._producer.purge(in_queue=True, in_flight=in_flight, blocking=True)

    def set_sasl_credentials(self, username: str, password: str) -> None:
        """New SASL credentials for the next (re)authentication (a rotated password)."""
        self._producer.set_sasl_credentials(username, password)

    def flush(self, timeout: float) -> int:
        return int(self._producer.flush(timeout))

    def close(self) -> None:
        if hasattr(self._producer, "close"):
            self._producer.close()
