"""Prediction events decoded straight into columns: the typed fast path, the generic slow
path (type errors), invalid events with the schema's reasons, category codes, versions."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.service.columns import MISSING, OVERFLOW_CATEGORY, CategoryVocab, ModelCodec
from driftwarden.schema import PREDICTION_SCHEMA
from driftwarden.spec import parse_spec


def _spec(**extra: object):
    data = {
        "model": "m",
        "features": [
            {"name": "x", "type": "numerical"},
            {"name": "y", "type": "numerical"},
            {"name": "c", "type": "categorical"},
        ],
        "prediction": {"column": "p", "type": "probability"},
        "target": {"column": "t", "type": "class"},
        "performance": {"metrics": ["accuracy"]},
        **extra,
    }
    return parse_spec(data)


def _event(i: int = 0, **over: object) -> bytes:
    ev: dict[str, object] = {
        "schema": PREDICTION_SCHEMA,
        "id": f"id{i}",
        "model": "m",
        "version": "v1",
        "ts": 100.0 + i,
        "features": {"x": 1.5 + i, "y": i, "c": "red"},
        "prediction": 0.25,
    }
    ev.update(over)
    return msgspec.json.encode(ev)


def test_fast_path_columns() -> None:
    codec = ModelCodec(_spec(), categories={"c": ["blue", "red"]})
    batch, invalid, foreign = codec.decode(
        [_event(0), _event(1), _event(2, features={"x": None, "c": "green"})]
    )
    assert not invalid and not foreign
    assert batch.num.shape == (2, 3)
    np.testing.assert_array_equal(batch.num[0], [1.5, 2.5, np.nan])
    np.testing.assert_array_equal(batch.num[1], [0.0, 1.0, np.nan])  # a missing feature
    assert batch.cat[0].tolist() == [1, 1, 2]  # reference categories first, then unseen
    assert codec.vocabs[0].values == ["blue", "red", "green"]
    assert batch.ts.tolist() == [100.0, 101.0, 102.0]
    assert batch.ids == ["id0", "id1", "id2"]
    assert batch.type_errors is None
    np.testing.assert_array_equal(batch.score, [0.25] * 3)


def test_wrong_feature_type_is_a_type_error_not_an_invalid_event() -> None:
    codec = ModelCodec(_spec())
    batch, invalid, _ = codec.decode([_event(0, features={"x": "oops", "y": 2, "c": 3}), _event(1)])
    assert not invalid
    assert math.isnan(batch.num[0, 0])
    assert batch.type_errors is not None
    assert batch.type_errors[:, 0].tolist() == [True, False]
    assert batch.type_errors[:, 1].tolist() == [False, False]
    assert codec.vocabs[0].values[batch.cat[0, 0]] == 3.0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{nope", "malformed_json"),
        (
            b'{"schema": "driftwarden.feedback/v1", "id": "a", "model": "m", "ts": 1, "label": 1}',
            "unknown_schema",
        ),
        (b'{"schema": "driftwarden.prediction/v1", "id": "a", "model": "m"}', "missing_field"),
        (_event(0, ts=float("nan")) if False else _event(0, extra=1), "unknown_field"),
        (_event(0, ts=-1.0), "invalid_value"),
        (_event(0, version=3), "wrong_type"),
    ],
)
def test_invalid_events_get_the_schema_reason(payload: bytes, reason: str) -> None:
    codec = ModelCodec(_spec())
    batch, invalid, _ = codec.decode([_event(0), payload, _event(2)])
    assert batch.rows == 2
    assert [(i.index, i.reason) for i in invalid] == [(1, reason)]


def test_oversize_event() -> None:
    codec = ModelCodec(_spec())
    big = _event(0, meta={"pad": "x" * 300_000})
    _, invalid, _ = codec.decode([big])
    assert [i.reason for i in invalid] == ["oversize"]


def test_event_of_another_model_is_reported() -> None:
    codec = ModelCodec(_spec())
    batch, invalid, foreign = codec.decode([_event(0, model="other"), _event(1)])
    assert batch.rows == 1 and not invalid
    assert foreign == [(0, "other")]


def test_versions_are_bounded() -> None:
    codec = ModelCodec(_spec(), max_versions=2)
    events = [_event(i, version=v) for i, v in enumerate(["a", "b", "a", "c", "b"])]
    batch, invalid, _ = codec.decode(events)
    assert [i.reason for i in invalid] == ["too_many_versions"]
    assert invalid[0].index == 3
    assert [codec.versions.values[v] for v in batch.version.tolist()] == ["a", "b", "a", "b"]
    assert batch.index.tolist() == [0, 1, 2, 4]


def test_list_prediction_takes_the_positive_class() -> None:
    codec = ModelCodec(_spec())
    batch, _, _ = codec.decode([_event(0, prediction=[0.2, 0.8]), _event(1, prediction=0.4)])
    np.testing.assert_allclose(batch.score, [0.8, 0.4])


def test_class_predictions_get_class_codes() -> None:
    spec = _spec(prediction={"column": "p", "type": "class"})
    codec = ModelCodec(spec, classes=[0, 1])
    batch, _, _ = codec.decode(
        [
            _event(0, prediction=1),
            _event(1, prediction="cat"),
            _event(2, prediction=[0.1, 0.7, 0.2]),
        ]
    )
    assert batch.label.tolist() == [1, 2, 1]
    assert codec.classes.values == [0, 1, "cat"]


def test_ids_are_kept_only_for_label_joins() -> None:
    codec = ModelCodec(_spec(performance={"metrics": []}))
    batch, _, _ = codec.decode([_event(0)])
    assert batch.ids is None and not codec.keep_ids


def test_vocab_overflow_bucket() -> None:
    v = CategoryVocab(["a"], limit=3)
    codes = v.encode(["a", "b", "c", "d", None, "e"])
    assert codes.tolist() == [0, 1, 2, 3, MISSING, 3]
    assert v.values == ["a", "b", "c", OVERFLOW_CATEGORY]


def test_vocab_state_round_trip() -> None:
    codec = ModelCodec(_spec(), categories={"c": ["blue"]})
    codec.decode([_event(0, features={"c": "zz"}), _event(1, version="v2")])
    other = ModelCodec(_spec(), categories={"c": ["blue"]})
    other.restore_vocab(msgspec.msgpack.decode(msgspec.msgpack.encode(codec.vocab_state())))
    batch, _, _ = other.decode([_event(2, features={"c": "zz"}, version="v2")])
    assert batch.cat[0].tolist() == [1] and batch.version.tolist() == [1]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "x": st.one_of(
                    st.none(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3)
                ),
                "c": st.one_of(st.none(), st.text(max_size=3), st.integers(-5, 5), st.booleans()),
            }
        ),
        max_size=20,
    )
)
def test_columns_match_the_events(features: list[dict[str, object]]) -> None:
    codec = ModelCodec(_spec())
    batch, invalid, _ = codec.decode([_event(i, features=f) for i, f in enumerate(features)])
    assert not invalid
    assert batch.rows == len(features)
    for i, f in enumerate(features):
        x = f["x"]
        if isinstance(x, float):
            assert batch.num[0, i] == x
        else:
            assert math.isnan(batch.num[0, i])
        err = batch.type_errors is not None and bool(batch.type_errors[0, i])
        assert err == isinstance(x, str)
        c = f["c"]
        if c is None:
            assert batch.cat[0, i] == MISSING
        else:
            assert codec.vocabs[0].values[batch.cat[0, i]] == c


_MIXED = [
    _event(0),
    b"{nope",
    _event(2, model="other"),
    _event(3, features={"x": "oops", "y": 2, "c": 3}),
    _event(4, extra=1),
    _event(5, meta={"pad": "x" * 300_000}),
    _event(6, features={"x": None, "y": True, "c": False}),
    _event(7, version="v2"),
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(range(len(_MIXED))), max_size=12))
def test_a_batch_decodes_as_its_records_one_by_one(picks: list[int]) -> None:
    """Runs of good events are decoded in one call; a bad record in between (invalid, of
    another model, a wrong feature type, oversize) gets the verdict it gets on its own, and
    every row keeps its position."""
    values = [_MIXED[k] for k in picks]
    batch, invalid, foreign = ModelCodec(_spec()).decode(values)
    single = ModelCodec(_spec())
    rows, bad, other = [], [], []
    for i, v in enumerate(values):
        b, inv, fo = single.decode([v])
        rows += [(i, b.num[:, k].tolist(), int(b.cat[0, k])) for k in range(b.rows)]
        bad += [(i, x.reason) for x in inv]
        other += [(i, m) for _, m in fo]
    assert [(x.index, x.reason) for x in invalid] == bad
    assert foreign == other
    assert batch.index.tolist() == [r[0] for r in rows]
    np.testing.assert_array_equal(batch.num.T, np.array([r[1] for r in rows]).reshape(-1, 2))
    assert batch.cat[0].tolist() == [r[2] for r in rows]
    assert (batch.type_errors is not None) == any(values[i] is _MIXED[3] for i, *_ in rows)
