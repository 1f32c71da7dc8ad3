"""The detectors' Kafka boundary: confluent-kafka's errors become `RetryLater` / `GiveUp`.

librdkafka marks each error with flags; the code that decides what to do next (the loop in
`consumer.py`, the checkpoint reader in `checkpoint.py`) reads only the type it gets here:

| the failed call's `KafkaError`  | boundary error                  | what the service does          |
|---------------------------------|---------------------------------|--------------------------------|
| `fatal()`                       | `GiveUp`                        | stop (Kubernetes restarts it)  |
| `retriable()`                   | `RetryLater`                    | make the same call again       |
| `txn_requires_abort()`          | `AbortTransaction` (RetryLater) | abort the open transaction,    |
|                                 |                                 | rewind to the checkpoints, redo |
| none of them                    | `GiveUp`                        | stop                           |

`retriable()` is read before `txn_requires_abort()`, the order librdkafka documents for
the transactional calls.

An error the consumer *reports* (`Message.error()`) is not a failed call: librdkafka
recovers from those by itself (a broker away, a partition leader moving), so only a fatal
one, or refused credentials / a missing ACL (`driftwarden.kafka.AUTH_ERRORS`, which
librdkafka would retry forever), ends the service (`reported_error`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from driftwarden.errors import ExternalError, GiveUp, RetryLater
from driftwarden.kafka import AUTH_ERRORS

__all__ = ["AbortTransaction", "kafka_boundary", "kafka_error", "reported_error"]


class AbortTransaction(RetryLater):
    """The open Kafka transaction cannot commit (fenced by a rebalance, timed out): abort it,
    drop the work since the last checkpoint and redo it from there. Nothing is lost: the
    aborted records were never visible to `read_committed` readers."""


def kafka_error(error: KafkaException | KafkaError, what: str) -> ExternalError:
    """The boundary error for `what` having failed with `error` (raise it `from` the
    library's exception, where there is one)."""
    err = _unwrap(error)
    message = f"{what}: {err if err is not None else error}"
    if err is None or err.fatal():
        return GiveUp(message)
    if err.retriable():
        return RetryLater(message)
    if err.txn_requires_abort():
        return AbortTransaction(message)
    return GiveUp(message)


def reported_error(err: KafkaError, what: str) -> ExternalError | None:
    """What an error reported by a consumer (`Message.error()`) means: `GiveUp` when it is
    fatal, `RetryLater` (log it; librdkafka retries by itself) otherwise, None for the end
    of a partition, which is no error at all."""
    if err.code() == KafkaError._PARTITION_EOF:
        return None
    if err.name() in AUTH_ERRORS:  # refused credentials or a missing ACL: no retry loop
        return GiveUp(f"{what}: {err}")
    return GiveUp(f"{what}: {err}") if err.fatal() else RetryLater(f"{what}: {err}")


@contextmanager
def kafka_boundary(what: str) -> Iterator[None]:
    """Run a confluent-kafka call, raising `kafka_error(...) from` its `KafkaException`."""
    try:
        yield
    except KafkaException as e:
        raise kafka_error(e, what) from e


def _unwrap(error: Any) -> KafkaError | None:
    if isinstance(error, KafkaError):
        return error
    arg = error.args[0] if error.args else None
    return arg if isinstance(arg, KafkaError) else None
