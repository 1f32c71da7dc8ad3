"""Building events from parsed rows: ids, meta, redaction, Kafka records. Pure.

Ids (DESIGN.md, "Events on Kafka"): a request with one row gets the request id itself
(the `X-Request-ID` header, else an id the collector generates); a batch of N rows gets
`<request id>-<row index>` for each row, and the meta of each row names the request id
and row index. Records are keyed by model name so one model's events stay ordered.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from hashlib import blake2b
from typing import Any, Final, NamedTuple

import msgspec

from collector.payloads import Row
from collector.redaction import Redactor
from driftwarden.kafka import Topics
from driftwarden.schema import FeedbackEvent, PredictionEvent, encode_event, new_event_id

DEADLETTER_SCHEMA: Final = "driftwarden.deadletter/v1"
#: Longest request id kept verbatim; longer ids are replaced by a hash of themselves.
MAX_REQUEST_ID: Final = 400


class Record(NamedTuple):
    """One Kafka record as the producer and the spool see it."""

    topic: str
    key: bytes
    value: bytes


class DeadLetter(msgspec.Struct, tag_field="schema", tag=DEADLETTER_SCHEMA, frozen=True):
    """What the collector sends to `driftwarden.deadletter` for a pair it could not use.

    The bodies are not included: they may hold values that redaction must keep in the pod.
    """

    source: str
    model: str
    reason: str
    detail: str
    ts: float
    request_id: str | None = None
    route: str | None = None


_encode = msgspec.json.encode


_EVENT_ID = re.compile(rb'"id":"((?:[^"\\]|\\.){1,512})"')


def deadletter_for(record: Record, reason: str, detail: str, *, ts: float) -> Record:
    """A small dead letter in place of an encoded event that cannot be produced (e.g. larger
    than the producer accepts): its model, its id when found near the start, no body."""
    prefix, _, kind = record.topic.rpartition(".")
    match = _EVENT_ID.search(record.value, 0, 2048)
    letter = DeadLetter(
        source="collector",
        model=record.key.decode("utf-8", "replace")[:256],
        reason=reason,
        detail=f"{kind} event: {detail}"[:500],
        ts=ts,
        request_id=match.group(1).decode("utf-8", "replace") if match else None,
    )
    return Record(f"{prefix or kind}.deadletter", record.key, _encode(letter))


def normalise_request_id(raw: str | None) -> str | None:
    """A usable event id from a header value: stripped, hashed when unreasonably long."""
    if raw is None:
        return None
    rid = raw.strip()
    if not rid:
        return None
    if len(rid) > MAX_REQUEST_ID:
        return "h-" + blake2b(rid.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return rid


class EventBuilder:
    """Prediction and feedback events for one model, redacted, as Kafka records."""

    __slots__ = ("_key", "meta", "model", "redactor", "topics", "version")

    def __init__(
        self,
        *,
        model: str,
        version: str = "",
        topics: Topics | None = None,
        redactor: Redactor | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.topics = topics or Topics.with_prefix()
        self.redactor = redactor or Redactor()
        self.meta = {k: v for k, v in (meta or {}).items() if v is not None}
        self._key = model.encode()

    def predictions(
        self,
        rows: Sequence[Row],
        *,
        request_id: str | None,
        ts: float,
        latency_ms: float = 0.0,
        trace_id: str | None = None,
    ) -> list[PredictionEvent]:
        rid = request_id or new_event_id()
        base = dict(self.meta)
        if trace_id:
            base["trace_id"] = trace_id
        redact = self.redactor.apply if self.redactor else None
        latency_ms = max(0.0, latency_ms)
        if len(rows) == 1:
            features, prediction = rows[0]
            return [
                PredictionEvent(
                    id=rid,
                    model=self.model,
                    version=self.version,
                    ts=ts,
                    features=redact(features) if redact else features,
                    prediction=prediction,
                    latency_ms=latency_ms,
                    meta=base,
                )
            ]
        events = []
        for i, (features, prediction) in enumerate(rows):
            meta = dict(base)
            meta["request_id"] = rid
            meta["row"] = i
            events.append(
                PredictionEvent(
                    id=f"{rid}-{i}",
                    model=self.model,
                    version=self.version,
                    ts=ts,
                    features=redact(features) if redact else features,
                    prediction=prediction,
                    latency_ms=latency_ms,
                    meta=meta,
                )
            )
        return events

    def prediction_records(self, events: Sequence[PredictionEvent]) -> list[Record]:
        topic, key = self.topics.predictions, self._key
        return [Record(topic, key, encode_event(e)) for e in events]

    def feedback_record(self, event: FeedbackEvent) -> Record:
        return Record(self.topics.feedback, event.model.encode(), encode_event(event))

    def feedback(self, event_id: str, label: Any, ts: float | None = None) -> FeedbackEvent:
        return FeedbackEvent(
            id=event_id, model=self.model, ts=time.time() if ts is None else ts, label=label
        )

    def deadletter(
        self,
        reason: str,
        detail: str,
        *,
        ts: float,
        request_id: str | None = None,
        route: str | None = None,
    ) -> Record:
        letter = DeadLetter(
            source="collector",
            model=self.model,
            reason=reason,
            detail=detail[:500],
            ts=ts,
            request_id=request_id,
            route=route,
        )
        return Record(self.topics.deadletter, self._key, _encode(letter))
