"""confluent-kafka's errors mapped onto the boundary vocabulary (`RetryLater` / `GiveUp`)
by `detectors.service.kafka_errors`; real `KafkaError` objects, no broker needed."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from detectors.service.checkpoint import CheckpointError
from detectors.service.kafka_errors import (
    AbortTransaction,
    kafka_boundary,
    kafka_error,
    reported_error,
)
from driftwarden.errors import DriftwardenError, ExternalError, GiveUp, RetryLater


def _err(code: int = KafkaError._TIMED_OUT, **flags: bool) -> KafkaError:
    return KafkaError(code, "broker said no", **flags)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"retriable": True}, RetryLater),
        ({"txn_requires_abort": True}, AbortTransaction),
        ({"fatal": True}, GiveUp),
        ({}, GiveUp),
    ],
)
def test_a_failed_call_maps_on_its_flags(flags: dict[str, bool], expected: type) -> None:
    error = kafka_error(KafkaException(_err(**flags)), "commit_transaction")
    assert type(error) is expected
    assert str(error).startswith("commit_transaction: KafkaError{")
    assert "broker said no" in str(error)


def test_retriable_is_read_before_abort_as_librdkafka_documents() -> None:
    both = _err(retriable=True, txn_requires_abort=True)
    assert type(kafka_error(both, "send_offsets_to_transaction")) is RetryLater


def test_the_vocabulary_is_one_attribute_for_whoever_decides() -> None:
    assert kafka_error(_err(retriable=True), "x").retry is True
    assert kafka_error(_err(txn_requires_abort=True), "x").retry is True  # after an abort
    assert kafka_error(_err(fatal=True), "x").retry is False
    assert issubclass(AbortTransaction, RetryLater)
    # a corrupt checkpoint is permanent, and not a user error the CLI prints as one line
    assert issubclass(CheckpointError, GiveUp)
    assert not issubclass(ExternalError, DriftwardenError)


def test_an_exception_without_a_kafka_error_gives_up() -> None:
    error = kafka_error(KafkaException("no error object"), "init_transactions")
    assert type(error) is GiveUp and "no error object" in str(error)


def test_the_boundary_raises_the_mapped_error_chained_to_the_library_one() -> None:
    original = KafkaException(_err(txn_requires_abort=True))
    with pytest.raises(AbortTransaction) as caught, kafka_boundary("commit_transaction"):
        raise original
    assert caught.value.__cause__ is original
    with kafka_boundary("nothing fails"):
        pass
    with pytest.raises(ValueError), kafka_boundary("not a Kafka error"):
        raise ValueError("left alone")


def test_consumer_reports_end_the_service_only_when_fatal() -> None:
    assert reported_error(_err(KafkaError._PARTITION_EOF), "Kafka consumer") is None
    # librdkafka reconnects by itself: neither retriable nor fatal is still "later"
    away = reported_error(_err(KafkaError._ALL_BROKERS_DOWN), "Kafka consumer")
    assert type(away) is RetryLater
    fatal = reported_error(_err(KafkaError._FENCED, fatal=True), "Kafka consumer")
    assert type(fatal) is GiveUp and str(fatal).startswith("Kafka consumer: KafkaError{FATAL")


def test_refused_credentials_reported_by_the_consumer_give_up() -> None:
    refused = reported_error(_err(KafkaError.TOPIC_AUTHORIZATION_FAILED), "Kafka consumer")
    assert type(refused) is GiveUp
