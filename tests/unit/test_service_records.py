"""Consumed messages handed to a shard as columns: one partition's batch without a
`ConsumedRecord` per record, the message-by-message path for anything else."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message

from detectors.service.consumer import _one_partition
from detectors.service.state import ConsumedRecord, RecordColumns


def _msg(offset: int, *, topic: str = "p", partition: int = 0, **kw: object) -> Message:
    fields: dict[str, object] = {
        "key": b"m",
        "value": b"v%d" % offset,
        "timestamp": (1, 1000 + offset),
    }
    fields.update(kw)
    return Message(topic=topic, partition=partition, offset=offset, **fields)


def test_one_partition_as_columns() -> None:
    msgs = [_msg(5), _msg(6, value=None), _msg(7, timestamp=(0, -1), key=None)]
    by_tp = _one_partition(msgs)
    assert by_tp is not None and list(by_tp) == [("p", 0)]
    assert by_tp[("p", 0)].records() == [
        ConsumedRecord(5, b"m", b"v5", 1005),
        ConsumedRecord(6, b"m", b"", 1006),  # a tombstone: an empty (invalid) event
        ConsumedRecord(7, None, b"v7", 0),  # no timestamp
    ]


def test_other_batches_go_message_by_message() -> None:
    assert _one_partition([]) is None
    assert _one_partition([_msg(1), _msg(2, partition=1)]) is None
    assert _one_partition([_msg(1), _msg(2, topic="f")]) is None
    assert _one_partition([_msg(1), _msg(2, error=KafkaError(KafkaError._PARTITION_EOF))]) is None


def test_record_columns() -> None:
    recs = [ConsumedRecord(i, b"k", b"v%d" % i, i * 10) for i in range(3, 8)]
    cols = RecordColumns.of(recs)
    assert len(cols) == 5 and cols[1] == recs[1] and cols.records() == recs
    assert cols.since(0) is cols
    assert cols.since(6).records() == recs[3:]
    assert cols.since(100).records() == []
    assert len(RecordColumns.of([])) == 0
