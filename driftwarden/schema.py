"""Events on Kafka (DESIGN.md, "Events on Kafka"): typed, strictly validated, fast.

Every component encodes and decodes events here. msgspec Structs decode and validate a
1 KB event in ~3 µs (pydantic takes ~8 µs), which matters on the collector's and the
detectors' hot paths. Every rejection is an `EventError` whose `reason` is one of
`REASONS` (a low-cardinality label for `driftwarden_events_invalid_total`) and whose
message says exactly what is wrong and where.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Final, Literal, get_args

import msgspec

PREDICTION_SCHEMA: Final = "driftwarden.prediction/v1"
FEEDBACK_SCHEMA: Final = "driftwarden.feedback/v1"
MAX_EVENT_BYTES: Final = 256 * 1024

# Bounds instead of a plain float reject inf (JSON 1e999) and NaN in one C-level check.
_FLOAT_MAX = 1.7976931348623157e308
Finite = Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0, le=_FLOAT_MAX)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]

FeatureValue = Finite | str | bool | None
Prediction = Finite | str | bool | list[Finite | str | bool]
Label = Finite | str | bool
MetaValue = Finite | str | bool | None


class PredictionEvent(
    msgspec.Struct,
    tag_field="schema",
    tag=PREDICTION_SCHEMA,
    forbid_unknown_fields=True,
    frozen=True,
):
    id: Id
    model: Name
    version: Annotated[str, msgspec.Meta(max_length=256)]
    ts: NonNegative
    features: dict[str, FeatureValue]
    prediction: Prediction
    latency_ms: NonNegative = 0.0
    meta: dict[str, MetaValue] = msgspec.field(default_factory=dict)


class FeedbackEvent(
    msgspec.Struct,
    tag_field="schema",
    tag=FEEDBACK_SCHEMA,
    forbid_unknown_fields=True,
    frozen=True,
):
    id: Id
    model: Name
    ts: NonNegative
    label: Label


Event = PredictionEvent | FeedbackEvent

REASONS: Final = (
    "malformed_json",
    "oversize",
    "missing_field",
    "unknown_field",
    "unknown_schema",
    "wrong_type",
    "non_finite",
    "invalid_value",
)


class EventError(ValueError):
    """An event that does not match the schema. `reason` is one of `REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_ENCODER = msgspec.json.Encoder()
_DECODERS = {
    PredictionEvent: msgspec.json.Decoder(PredictionEvent),
    FeedbackEvent: msgspec.json.Decoder(FeedbackEvent),
    Event: msgspec.json.Decoder(Event),
}
_AT_SCHEMA = re.compile(r"at `\$\.schema`$")
# "Expected `float` >= 0.0", "Expected `str` of length >= 1": right type, value out of bounds.
_CONSTRAINT = re.compile(r"^Expected `[^`]+` (?:of length )?[<>]=?")


def _reason(err: msgspec.ValidationError) -> str:
    text = str(err)
    if text.startswith("Object missing required field"):
        # A missing tag means we cannot tell which schema the event claims.
        return "unknown_schema" if "`schema`" in text else "missing_field"
    if text.startswith("Object contains unknown field"):
        return "unknown_field"
    if _AT_SCHEMA.search(text):
        return "unknown_schema"
    if text.startswith("Number out of range"):
        return "non_finite"
    if _CONSTRAINT.match(text):
        return "invalid_value"
    if text.startswith("Expected"):
        return "wrong_type"
    return "invalid_value"


def _decode(data: bytes | bytearray | memoryview | str, kind: type) -> object:
    if len(data) > MAX_EVENT_BYTES:
        raise EventError("oversize", f"event is {len(data)} bytes, the limit is {MAX_EVENT_BYTES}")
    try:
        return _DECODERS[kind].decode(data)
    except msgspec.ValidationError as e:
        raise EventError(_reason(e), str(e)) from e
    except msgspec.DecodeError as e:
        raise EventError("malformed_json", str(e)) from e


def decode_prediction(data: bytes | bytearray | memoryview | str) -> PredictionEvent:
    return _decode(data, PredictionEvent)  # type: ignore[return-value]


def decode_feedback(data: bytes | bytearray | memoryview | str) -> FeedbackEvent:
    return _decode(data, FeedbackEvent)  # type: ignore[return-value]


def decode_event(data: bytes | bytearray | memoryview | str) -> PredictionEvent | FeedbackEvent:
    """Decode either kind of event, chosen by its `schema` field."""
    return _decode(data, Event)  # type: ignore[return-value]


def decode_batch(
    records: Iterable[bytes], kind: type = Event
) -> tuple[list[Event], list[tuple[int, EventError]]]:
    """Decode many records; returns the good events and (index, error) for each bad one."""
    good: list[Event] = []
    bad: list[tuple[int, EventError]] = []
    for i, data in enumerate(records):
        try:
            good.append(_decode(data, kind))  # type: ignore[arg-type]
        except EventError as e:
            bad.append((i, e))
    return good, bad


def encode_event(event: Event) -> bytes:
    """UTF-8 JSON of one event; `schema` comes first."""
    return _ENCODER.encode(event)


def encode_batch(events: Iterable[Event]) -> list[bytes]:
    """One JSON document per event (Kafka batches at the protocol level, not in the value)."""
    encode = _ENCODER.encode
    return [encode(e) for e in events]


def new_event_id() -> str:
    return uuid.uuid4().hex


# --- Lineage (DESIGN.md, "Kubernetes contract"): what happened to a model, step by step ----

LINEAGE_SCHEMA: Final = "driftwarden.lineage/v1"
LineageStep = Literal[
    "alert",
    "decision",
    "job_started",
    "job_finished",
    "artifact",
    "rollout_step",
    "rollout_finished",
]
LINEAGE_STEPS: Final = get_args(LineageStep)


class LineageEvent(
    msgspec.Struct,
    tag_field="schema",
    tag=LINEAGE_SCHEMA,
    forbid_unknown_fields=True,
    frozen=True,
):
    """One step of a model's retrain/rollout history, on `<prefix>.lineage` keyed by model.

    `ref` names what the step is about: the alert fingerprint (`alert`, `decision`), the Job
    (`job_started`, `job_finished`), the version (`artifact`) or the Deployment (`rollout_*`);
    `detail` carries the step's facts (decision and reason, outcome, artifact path, ...)."""

    model: Name
    ts: NonNegative
    step: LineageStep
    ref: Annotated[str, msgspec.Meta(max_length=1024)]
    detail: dict[str, Any] = msgspec.field(default_factory=dict)


_DECODERS[LineageEvent] = msgspec.json.Decoder(LineageEvent)


def encode_lineage(event: LineageEvent) -> bytes:
    return _ENCODER.encode(event)


def decode_lineage(data: bytes | bytearray | memoryview | str) -> LineageEvent:
    """Decode one lineage record; an `EventError` (with a `REASONS` reason) when it is bad."""
    return _decode(data, LineageEvent)  # type: ignore[return-value]
