"""Training data from Kafka: one model's predictions joined to their labels (adapter).

`export_dataset(settings, out)` reads `<prefix>.predictions` and `<prefix>.feedback` from
the first record at or after `since` (found with `offsets_for_times`) up to each
partition's end as it was when the export started, keeps the model's valid events, joins
them with `retrain_trigger.dataset_join.join_labels` (the detectors' join semantics) and
writes one row per labelled prediction: one column per feature, `prediction`, `label`,
`ts`, `version`, plus `id` and `label_ts`. Parquet or CSV by the output's suffix.

Kafka failures surface as `RetryLater` (broker unreachable, timed out: try again) or
`GiveUp` (a topic that does not exist); bad arguments and files are `DriftwardenError`s.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from driftwarden.errors import DataFileError, DriftwardenError, GiveUp, RetryLater
from driftwarden.kafka import (
    DEFAULT_TOPIC_PREFIX,
    KafkaSecurity,
    Topics,
    consumer_config,
)
from driftwarden.kafka_access import check_access
from driftwarden.schema import EventError, decode_feedback, decode_prediction
from driftwarden.spec import ModelSpec
from retrain_trigger.dataset_join import EXPORT_COLUMNS, JoinStats, join_labels, normalise_column

__all__ = ["ExportReport", "ExportSettings", "export_dataset", "parse_duration", "read_topic"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `6h`, `2d`, `1w` (or plain seconds) -> seconds."""
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * _UNITS[t[-1]] if t and t[-1] in _UNITS else float(t)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value:
        raise DriftwardenError(f"--since: {text!r} is not a duration like 90s, 30m, 6h or 2d")
    return value


@dataclass(frozen=True, slots=True)
class ExportSettings:
    model: str
    since_s: float  # how far back from now, in seconds of prediction event time
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    ttl_s: float = 86_400.0  # label join TTL; the spec's labels.join_ttl_s when one is given
    keep_unlabelled: bool = False  # also write predictions without a label (label null)
    timeout_s: float = 60.0  # give up reading when the topics are not caught up by then
    # Records are found by their Kafka timestamp; events are kept by their own `ts`. A
    # prediction's record is written after it was served, so the seek starts this much
    # earlier to be safe against clock skew between the pod and the broker.
    seek_slack_s: float = 300.0
    spec: ModelSpec | None = None
    clock: Callable[[], float] = field(default=time.time)
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)  # TLS / SASL


@dataclass(frozen=True, slots=True)
class ExportReport:
    path: Path
    rows: int
    labelled: int
    stats: JoinStats
    invalid: int  # records of this model that did not decode (skipped)
    since_ts: float

    def line(self) -> str:
        s = self.stats
        return (
            f"wrote {self.path}: {self.rows} rows ({self.labelled} labelled) from "
            f"{s.predictions} predictions and {s.labels} labels; {s.expired} labels after the "
            f"TTL, {s.unmatched} unmatched, {s.duplicates} duplicate ids, "
            f"{s.unlabelled} predictions without a label, {self.invalid} invalid records"
        )


def _kafka_error(e: KafkaException | KafkaError, what: str) -> Exception:
    err = e.args[0] if isinstance(e, KafkaException) and e.args else e
    if isinstance(err, KafkaError):
        if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            return GiveUp(f"{what}: topic does not exist")
        if err.retriable() or err.code() in (
            KafkaError._TRANSPORT,
            KafkaError._TIMED_OUT,
            KafkaError._ALL_BROKERS_DOWN,
        ):
            return RetryLater(f"{what}: {err.str()}")
        return GiveUp(f"{what}: {err.str()}")
    return RetryLater(f"{what}: {e}")


def read_topic(
    consumer: Consumer,
    topic: str,
    since_ms: int,
    model_key: bytes,
    deadline: float,
    on_record: Callable[[bytes, int], None],
) -> None:
    """Call `on_record(value, timestamp_ms)` for every record keyed `model_key` from
    `since_ms` to the end offsets of when the read started."""
    try:
        meta = consumer.list_topics(topic, timeout=max(deadline - time.monotonic(), 1.0))
    except KafkaException as e:
        raise _kafka_error(e, topic) from e
    tmeta = meta.topics.get(topic)
    if tmeta is None or tmeta.error is not None or not tmeta.partitions:
        raise GiveUp(f"{topic}: topic does not exist")
    wanted = [TopicPartition(topic, p, since_ms) for p in sorted(tmeta.partitions)]
    try:
        starts = consumer.offsets_for_times(wanted, timeout=max(deadline - time.monotonic(), 1.0))
        ends = {
            tp.partition: consumer.get_watermark_offsets(
                tp, timeout=max(deadline - time.monotonic(), 1.0)
            )[1]
            for tp in wanted
        }
    except KafkaException as e:
        raise _kafka_error(e, topic) from e
    assign = []
    remaining: dict[int, int] = {}
    for tp in starts:
        end = ends[tp.partition]
        if tp.offset == OFFSET_END or tp.offset < 0 or tp.offset >= end:
            continue  # nothing at or after `since` in this partition
        assign.append(TopicPartition(topic, tp.partition, tp.offset))
        remaining[tp.partition] = end
    if not assign:
        return
    consumer.assign(assign)
    try:
        while remaining:
            if time.monotonic() > deadline:
                raise RetryLater(
                    f"{topic}: not read to the end within the timeout "
                    f"({len(remaining)} partition(s) left)"
                )
            for msg in consumer.consume(num_messages=5_000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise _kafka_error(err, topic)
                p = msg.partition()
                end = remaining.get(p)
                if end is None:
                    continue
                if msg.key() == model_key:
                    on_record(msg.value(), msg.timestamp()[1])
                if msg.offset() + 1 >= end:
                    del remaining[p]
    finally:
        consumer.unassign()


def _frames(
    settings: ExportSettings, since_ts: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    topics = Topics.with_prefix(settings.topic_prefix)
    since_ms = int((since_ts - settings.seek_slack_s) * 1000)
    deadline = time.monotonic() + settings.timeout_s
    if settings.kafka_security.protocol != "PLAINTEXT":  # refused access: one line, no wait
        check_access(
            settings.bootstrap,
            settings.kafka_security,
            topics=(topics.predictions, topics.feedback),
            timeout=min(20.0, settings.timeout_s),
        )
    consumer = Consumer(
        consumer_config(
            settings.bootstrap,
            f"driftwarden-dataset-export-{uuid.uuid4().hex[:12]}",
            security=settings.kafka_security,
            **{"enable.partition.eof": False, "socket.timeout.ms": 10_000},
        )
    )
    key = settings.model.encode()
    preds: dict[str, list[Any]] = {
        k: [] for k in ("id", "ts", "version", "prediction", "arrival_ms")
    }
    features: list[dict[str, Any]] = []
    labels: dict[str, list[Any]] = {k: [] for k in ("id", "ts", "label", "arrival_ms")}
    invalid = 0

    def on_prediction(value: bytes, ts_ms: int) -> None:
        nonlocal invalid
        try:
            ev = decode_prediction(value)
        except EventError:
            invalid += 1
            return
        if ev.model != settings.model or ev.ts < since_ts:
            return
        preds["id"].append(ev.id)
        preds["ts"].append(ev.ts)
        preds["version"].append(ev.version)
        preds["prediction"].append(ev.prediction)
        preds["arrival_ms"].append(ts_ms)
        features.append(ev.features)

    def on_label(value: bytes, ts_ms: int) -> None:
        nonlocal invalid
        try:
            ev = decode_feedback(value)
        except EventError:
            invalid += 1
            return
        if ev.model != settings.model:
            return
        labels["id"].append(ev.id)
        labels["ts"].append(ev.ts)
        labels["label"].append(ev.label)
        labels["arrival_ms"].append(ts_ms)

    try:
        read_topic(consumer, topics.predictions, since_ms, key, deadline, on_prediction)
        read_topic(consumer, topics.feedback, since_ms, key, deadline, on_label)
    finally:
        consumer.close()
    p = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in preds.items()})
    p = p.astype({"ts": "float64", "arrival_ms": "int64"})
    lab = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in labels.items()})
    lab = lab.astype({"ts": "float64", "arrival_ms": "int64"})
    return p, pd.DataFrame.from_records(features), lab, invalid


def _feature_kinds(settings: ExportSettings, columns: list[str]) -> dict[str, str | None]:
    if settings.spec is not None:
        kinds: dict[str, str | None] = {f.name: f.type for f in settings.spec.features}
        return {**kinds, **{c: None for c in columns if c not in kinds}}
    return {c: None for c in columns}


def export_dataset(settings: ExportSettings, out: Path) -> ExportReport:
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise DataFileError(f"{out}: use a .parquet or .csv output file")
    since_ts = settings.clock() - settings.since_s
    preds, feats, labels, invalid = _frames(settings, since_ts)
    kinds = _feature_kinds(settings, list(feats.columns))
    clash = sorted(set(kinds) & set(EXPORT_COLUMNS))
    if clash:
        raise DriftwardenError(
            f"feature(s) {', '.join(map(repr, clash))} clash with the export's own columns"
        )
    for name, kind in kinds.items():
        column = feats[name] if name in feats.columns else pd.Series([None] * len(preds))
        preds[name] = normalise_column(column.reset_index(drop=True), kind)
    joined, stats = join_labels(
        preds, labels, settings.ttl_s, keep_unlabelled=settings.keep_unlabelled
    )
    joined["prediction"] = normalise_column(joined["prediction"])
    joined["label"] = normalise_column(joined["label"])
    ordered = ["id", "ts", "version", *kinds, "prediction", "label", "label_ts"]
    frame = joined[ordered]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        tmp.replace(out)
    except (OSError, ValueError, TypeError) as e:  # pyarrow: ArrowInvalid, ArrowTypeError
        tmp.unlink(missing_ok=True)
        raise DataFileError(f"{out}: cannot write ({e})") from e
    return ExportReport(
        path=out,
        rows=len(frame),
        labelled=stats.joined,
        stats=stats,
        invalid=invalid,
        since_ts=since_ts,
    )
