"""Event schema: strict validation with precise reasons, byte-stable round trips, no crashes."""

from __future__ import annotations

import json
import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwarden.schema import (
    FEEDBACK_SCHEMA,
    MAX_EVENT_BYTES,
    PREDICTION_SCHEMA,
    REASONS,
    EventError,
    FeedbackEvent,
    PredictionEvent,
    decode_batch,
    decode_event,
    decode_feedback,
    decode_prediction,
    encode_batch,
    encode_event,
)

finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(min_size=1, max_size=40)
feature_value = st.one_of(finite, st.text(max_size=20), st.booleans(), st.none())
scalar = st.one_of(finite, st.text(max_size=20), st.booleans())

predictions = st.builds(
    PredictionEvent,
    id=text,
    model=text,
    version=st.text(max_size=20),
    ts=st.floats(min_value=0, max_value=4e9),
    features=st.dictionaries(st.text(max_size=30), feature_value, max_size=30),
    prediction=st.one_of(scalar, st.lists(st.one_of(finite, st.text(max_size=5)), max_size=5)),
    latency_ms=st.floats(min_value=0, max_value=1e6),
    meta=st.dictionaries(st.text(max_size=20), feature_value, max_size=5),
)
feedbacks = st.builds(
    FeedbackEvent, id=text, model=text, ts=st.floats(min_value=0, max_value=4e9), label=scalar
)


def _valid_prediction(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "schema": PREDICTION_SCHEMA,
        "id": "req-1",
        "model": "credit",
        "version": "v1",
        "ts": 1_700_000_000.5,
        "features": {"age": 41, "country": "DE", "vip": True, "income": None},
        "prediction": 0.73,
        "latency_ms": 4.2,
        "meta": {"namespace": "risk", "pod": "credit-0", "trace_id": "ab" * 16},
    }
    event.update(overrides)
    return event


def _reason(doc: object) -> str:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(EventError) as info:
        decode_event(raw)
    assert info.value.reason in REASONS
    return info.value.reason


@settings(max_examples=300, deadline=None)
@given(predictions)
def test_prediction_round_trip_is_byte_stable(event: PredictionEvent) -> None:
    raw = encode_event(event)
    again = decode_prediction(raw)
    assert again == event
    assert encode_event(again) == raw


@settings(max_examples=200, deadline=None)
@given(feedbacks)
def test_feedback_round_trip_is_byte_stable(event: FeedbackEvent) -> None:
    raw = encode_event(event)
    assert decode_feedback(raw) == event
    assert encode_event(decode_event(raw)) == raw


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_decoder(raw: bytes) -> None:
    try:
        decode_event(raw)
    except EventError as e:
        assert e.reason in REASONS


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=8), children, max_size=4),
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_crashes_the_decoder(doc: object) -> None:
    raw = json.dumps(doc, allow_nan=True).encode()
    try:
        decode_event(raw)
    except EventError as e:
        assert e.reason in REASONS


@settings(max_examples=100, deadline=None)
@given(predictions, st.sampled_from(["id", "model", "version", "ts", "features", "prediction"]))
def test_any_missing_required_field_is_named(event: PredictionEvent, field: str) -> None:
    doc = json.loads(encode_event(event))
    del doc[field]
    with pytest.raises(EventError) as info:
        decode_prediction(json.dumps(doc).encode())
    assert info.value.reason == "missing_field"
    assert f"`{field}`" in info.value.detail


def test_a_valid_event_decodes_to_the_right_type() -> None:
    event = decode_event(json.dumps(_valid_prediction()).encode())
    assert isinstance(event, PredictionEvent)
    assert event.features["age"] == 41.0 and event.features["country"] == "DE"
    fb = decode_event(
        json.dumps(
            {"schema": FEEDBACK_SCHEMA, "id": "req-1", "model": "credit", "ts": 1.0, "label": 1}
        ).encode()
    )
    assert isinstance(fb, FeedbackEvent) and fb.label == 1.0


def test_schema_field_is_encoded_first() -> None:
    raw = encode_event(decode_event(json.dumps(_valid_prediction()).encode()))
    assert raw.startswith(b'{"schema":"driftwarden.prediction/v1",')


@pytest.mark.parametrize(
    ("doc", "reason", "where"),
    [
        (b"{not json", "malformed_json", ""),
        (_valid_prediction(ts="yesterday"), "wrong_type", "$.ts"),
        (_valid_prediction(features=[1, 2]), "wrong_type", "$.features"),
        (_valid_prediction(features={"age": {"nested": 1}}), "wrong_type", "$.features"),
        (_valid_prediction(prediction={"p": 1}), "wrong_type", "$.prediction"),
        (_valid_prediction(id=""), "invalid_value", "$.id"),
        (_valid_prediction(latency_ms=-1), "invalid_value", "$.latency_ms"),
        (_valid_prediction(extra=1), "unknown_field", "extra"),
        (_valid_prediction(schema="driftwarden.prediction/v9"), "unknown_schema", "$.schema"),
        ({"id": "x", "model": "m"}, "unknown_schema", "schema"),
        (
            json.dumps(_valid_prediction()).replace('"age": 41', '"age": 1e999').encode(),
            "non_finite",
            "$.features",
        ),
        (
            json.dumps(_valid_prediction()).replace('"ts": 1700000000.5', '"ts": -1e999').encode(),
            "non_finite",
            "$.ts",
        ),
        (b"[]", "wrong_type", ""),
        (b"", "malformed_json", ""),
    ],
)
def test_each_rejection_has_a_precise_reason(doc: object, reason: str, where: str) -> None:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(EventError) as info:
        decode_event(raw)
    assert info.value.reason == reason
    assert where in info.value.detail


def test_nan_literals_are_rejected() -> None:
    raw = json.dumps(_valid_prediction(prediction=math.nan)).encode()  # json.dumps writes NaN
    assert _reason(raw) == "malformed_json"


def test_oversize_events_are_rejected_before_parsing() -> None:
    big = _valid_prediction(features={f"f{i}": "x" * 100 for i in range(3000)})
    raw = json.dumps(big).encode()
    assert len(raw) > MAX_EVENT_BYTES
    assert _reason(raw) == "oversize"


def test_decode_batch_separates_good_and_bad() -> None:
    good = encode_batch(
        [decode_prediction(json.dumps(_valid_prediction(id=str(i))).encode()) for i in range(3)]
    )
    records = [
        good[0],
        b"garbage",
        good[1],
        json.dumps(_valid_prediction(ts=None)).encode(),
        good[2],
    ]
    events, errors = decode_batch(records)
    assert [e.id for e in events] == ["0", "1", "2"]
    assert [(i, e.reason) for i, e in errors] == [(1, "malformed_json"), (3, "wrong_type")]


def test_feedback_decoder_rejects_a_prediction() -> None:
    with pytest.raises(EventError) as info:
        decode_feedback(json.dumps(_valid_prediction()).encode())
    assert info.value.reason == "unknown_schema"


def test_events_are_immutable() -> None:
    event = decode_prediction(json.dumps(_valid_prediction()).encode())
    with pytest.raises(AttributeError):
        event.model = "other"  # type: ignore[misc]
    assert isinstance(msgspec.json.encode(event), bytes)
