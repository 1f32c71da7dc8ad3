"""Payload formats: kserve-v1, open-inference-v2 and json, example by example and by
property (what goes in as rows comes out as the same rows; arbitrary JSON never raises
anything but a CaptureError)."""

from __future__ import annotations

import gzip
import math
import zlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.errors import CAPTURE_REASONS, CaptureError
from collector.payloads import (
    FieldPath,
    JsonPaths,
    PredictionReducer,
    decode_body,
    make_parser,
    parse_pair,
)
from driftwarden.spec import parse_spec

SPEC = parse_spec(
    {
        "model": "credit",
        "features": [
            {"name": "age", "type": "numerical"},
            {"name": "country", "type": "categorical"},
            {"name": "income", "type": "numerical"},
        ],
        "prediction": {"column": "prob", "type": "probability", "output": "positive_class"},
    }
)


def reason(fn, *args) -> str:
    with pytest.raises(CaptureError) as e:
        fn(*args)
    assert e.value.reason in CAPTURE_REASONS
    return e.value.reason


# --- kserve-v1 --------------------------------------------------------------------------


def test_kserve_positional_rows_take_names_from_the_spec() -> None:
    parser = make_parser("kserve-v1", spec=SPEC)
    rows = parser.rows(
        {"instances": [[31, "DE", 1200.5], [45, "US", None]]},
        {"predictions": [[0.2, 0.8], [0.9, 0.1]]},
    )
    assert rows == [
        ({"age": 31, "country": "DE", "income": 1200.5}, 0.8),
        ({"age": 45, "country": "US", "income": None}, 0.1),
    ]


def test_kserve_object_rows_keep_their_names_and_inputs_alias() -> None:
    parser = make_parser("kserve-v1")  # no spec: predictions kept as they are
    rows = parser.rows({"inputs": [{"x": 1, "flag": True}]}, {"outputs": [[0.3, 0.7]]})
    assert rows == [({"x": 1, "flag": True}, [0.3, 0.7])]


def test_kserve_columnar_inputs() -> None:
    parser = make_parser("kserve-v1", spec=SPEC)
    rows = parser.rows(
        {"inputs": {"age": [1, 2], "country": ["a", "b"]}}, {"predictions": [0.1, 0.2]}
    )
    assert rows == [({"age": 1, "country": "a"}, 0.1), ({"age": 2, "country": "b"}, 0.2)]


@pytest.mark.parametrize(
    ("request_doc", "response_doc", "expected"),
    [
        ({"instances": [[1, "a", 2]]}, {"predictions": [1, 2]}, "row_count_mismatch"),
        ({"instances": [[1, "a"]]}, {"predictions": [1]}, "row_length_mismatch"),
        ({"rows": []}, {"predictions": []}, "missing_field"),
        ({"instances": [[1, "a", 2]]}, {"result": 1}, "missing_field"),
        ({"instances": "x"}, {"predictions": []}, "wrong_type"),
        ([1, 2], {"predictions": []}, "wrong_type"),
        ({"instances": [[1, "a", {"x": 1}]]}, {"predictions": [1]}, "unsupported_value"),
        ({"instances": [[1, "a", 2]]}, {"predictions": [[1, [2]]]}, "unsupported_value"),
        ({"instances": [[1, "a", 2]]}, {"predictions": [[]]}, "prediction_shape"),
        ({"instances": [[1, "a", 2]]}, {"predictions": [{"a": 1, "b": 2}]}, "prediction_shape"),
    ],
)
def test_kserve_rejections(request_doc, response_doc, expected) -> None:
    parser = make_parser("kserve-v1", spec=SPEC)
    assert reason(parse_pair, parser, request_doc, response_doc) == expected


def test_positional_rows_need_a_spec() -> None:
    parser = make_parser("kserve-v1")
    assert (
        reason(parse_pair, parser, {"instances": [[1, 2]]}, {"predictions": [1]})
        == "positional_without_spec"
    )


def test_non_finite_values_are_rejected() -> None:
    parser = make_parser("kserve-v1")
    assert reason(decode_body, b'{"instances": [{"x": 1e999}]}', None) == "non_finite"
    doc = {"instances": [{"x": float("inf")}]}
    assert reason(parse_pair, parser, doc, {"predictions": [1]}) == "non_finite"
    assert (
        reason(parse_pair, parser, {"instances": [{"x": 1}]}, {"predictions": [math.nan]})
        == "non_finite"
    )


# --- open inference v2 -------------------------------------------------------------------


def test_oip_one_tensor_per_feature() -> None:
    parser = make_parser("open-inference-v2", spec=SPEC)
    request = {
        "id": "abc",
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "INT64", "data": [31, 45]},
            {"name": "country", "shape": [2, 1], "datatype": "BYTES", "data": [["DE"], ["US"]]},
        ],
    }
    response = {
        "outputs": [
            {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 0]},
            {"name": "prob", "shape": [2, 2], "datatype": "FP32", "data": [0.1, 0.9, 0.7, 0.3]},
        ]
    }
    rows = parser.rows(request, response)
    # the output named like the spec's prediction column is chosen, then reduced
    assert rows == [({"age": 31, "country": "DE"}, 0.9), ({"age": 45, "country": "US"}, 0.3)]
    assert parser.request_id(request) == "abc"


def test_oip_single_positional_tensor() -> None:
    parser = make_parser("open-inference-v2", spec=SPEC)
    request = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 3],
                "datatype": "BYTES",
                "data": [[1, "a", 2], [3, "b", 4]],
            }
        ]
    }
    response = {
        "outputs": [{"name": "output-0", "shape": [2], "datatype": "FP32", "data": [0.5, 0.6]}]
    }
    assert parser.rows(request, response) == [
        ({"age": 1, "country": "a", "income": 2}, 0.5),
        ({"age": 3, "country": "b", "income": 4}, 0.6),
    ]


@pytest.mark.parametrize(
    ("request_doc", "response_doc", "expected"),
    [
        (
            {"inputs": [{"name": "age", "shape": [3], "data": [1, 2]}]},
            {"outputs": []},
            "bad_tensor",
        ),
        ({"inputs": []}, {"outputs": []}, "wrong_type"),
        (
            {"inputs": [{"name": "age", "shape": [2], "data": [1, 2]}]},
            {"outputs": [{"name": "p", "shape": [3], "data": [1, 2, 3]}]},
            "row_count_mismatch",
        ),
        ({"inputs": [{"shape": [1], "data": [1]}]}, {"outputs": []}, "missing_field"),
        (
            {
                "inputs": [
                    {"name": "age", "shape": [1, 2], "data": [1, 2]},
                    {"name": "x", "shape": [1], "data": [1]},
                ]
            },
            {"outputs": []},
            "bad_tensor",
        ),
    ],
)
def test_oip_rejections(request_doc, response_doc, expected) -> None:
    parser = make_parser("open-inference-v2", spec=SPEC)
    assert reason(parse_pair, parser, request_doc, response_doc) == expected


# --- json -------------------------------------------------------------------------------


def test_json_defaults_root_object_and_prediction_column() -> None:
    parser = make_parser("json", spec=SPEC)
    rows = parser.rows({"age": 3, "country": "DE"}, {"prob": [0.25, 0.75]})
    assert rows == [({"age": 3, "country": "DE"}, 0.75)]
    # a bare scalar response is the prediction
    assert parser.rows({"age": 3}, 0.5) == [({"age": 3}, 0.5)]


def test_json_configured_paths_with_wildcards() -> None:
    parser = make_parser(
        "json", json_paths=JsonPaths(features="data.rows", prediction="results.*.score")
    )
    rows = parser.rows(
        {"data": {"rows": [{"a": 1}, {"a": 2}]}},
        {"results": [{"score": 0.1}, {"score": 0.2}]},
    )
    assert rows == [({"a": 1}, 0.1), ({"a": 2}, 0.2)]


def test_json_feature_mapping_paths() -> None:
    paths = JsonPaths(features={"age": "user.age", "city": "user.address.city"}, prediction="out")
    parser = make_parser("json", json_paths=paths)
    rows = parser.rows({"user": {"age": 40, "address": {"city": "Oslo"}}}, {"out": 1})
    assert rows == [({"age": 40, "city": "Oslo"}, 1)]
    batch = JsonPaths(features={"age": "users.*.age"}, prediction="out")
    rows = make_parser("json", json_paths=batch).rows(
        {"users": [{"age": 1}, {"age": 2}]}, {"out": [5, 6]}
    )
    assert rows == [({"age": 1}, 5), ({"age": 2}, 6)]


def test_json_rejections() -> None:
    parser = make_parser("json", json_paths=JsonPaths(features="rows", prediction="scores"))
    assert reason(parse_pair, parser, {"x": 1}, {"scores": 1}) == "missing_field"
    assert (
        reason(parse_pair, parser, {"rows": [{"a": 1}, {"a": 2}]}, {"scores": 1})
        == "row_count_mismatch"
    )
    assert reason(parse_pair, parser, {"rows": 5}, {"scores": 1}) == "positional_without_spec"


def test_field_path_syntax() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}], "c": {"d": [10, 20]}}
    assert FieldPath("$").resolve(doc) is doc
    assert FieldPath("").resolve(doc) is doc
    assert FieldPath("a.*.b").resolve(doc) == [1, 2]
    assert FieldPath("$.c.d.1").resolve(doc) == 20
    assert FieldPath("c.d.-1").resolve(doc) == 20
    with pytest.raises(ValueError):
        FieldPath("a..b")
    assert reason(FieldPath("c.*").resolve, doc) == "wrong_type"
    assert reason(FieldPath("c.d.5").resolve, doc) == "missing_field"


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown payload format"):
        make_parser("protobuf")


# --- prediction reduction ----------------------------------------------------------------


def test_reducer_follows_the_spec() -> None:
    probs = [0.1, 0.7, 0.2]
    assert PredictionReducer(output="positive_class", positive_class=2)(probs) == 0.2
    assert PredictionReducer(output="argmax")(probs) == 1
    assert PredictionReducer(output="argmax", classes=("a", "b", "c"))(probs) == "b"
    assert PredictionReducer(output="list")(probs) == probs
    assert PredictionReducer(output="positive_class")([0.4]) == 0.4  # one output: unwrapped
    assert PredictionReducer(output="list")([0.4]) == [0.4]
    assert PredictionReducer(column="score")({"score": 3, "other": 1}) == 3
    assert PredictionReducer()({"only": "yes"}) == "yes"
    with pytest.raises(CaptureError):
        PredictionReducer(output="positive_class", positive_class=5)(probs)
    with pytest.raises(CaptureError):
        PredictionReducer(output="argmax")(["x", 1])


# --- bodies -----------------------------------------------------------------------------


def test_decode_body_handles_compression_and_errors() -> None:
    doc = {"instances": [[1, 2]]}
    raw = msgspec.json.encode(doc)
    assert decode_body(raw) == doc
    assert decode_body(gzip.compress(raw), "gzip") == doc
    assert decode_body(zlib.compress(raw), "deflate") == doc
    assert decode_body(raw, "identity") == doc
    assert reason(decode_body, b"{nope", None) == "malformed_json"
    assert reason(decode_body, raw, "br") == "unsupported_encoding"
    assert reason(decode_body, b"not gzip", "gzip") == "unsupported_encoding"


# --- properties -------------------------------------------------------------------------

NAMES = [f.name for f in SPEC.features]
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=20),
)
row = st.fixed_dictionaries({n: scalar for n in NAMES})
prob = st.floats(min_value=0, max_value=1, allow_nan=False)


def _roundtrip(doc: object) -> object:
    return msgspec.json.decode(msgspec.json.encode(doc))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(row, min_size=1, max_size=20), preds=st.data())
def test_property_kserve_rows_round_trip(rows, preds) -> None:
    scores = preds.draw(st.lists(prob, min_size=len(rows), max_size=len(rows)))
    positional = preds.draw(st.booleans())
    instances = [[r[n] for n in NAMES] for r in rows] if positional else rows
    request = _roundtrip({"instances": instances})
    response = _roundtrip({"predictions": [[1 - s, s] for s in scores]})
    got = make_parser("kserve-v1", spec=SPEC).rows(request, response)
    assert [f for f, _ in got] == _roundtrip(rows)
    assert [p for _, p in got] == _roundtrip(scores)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(row, min_size=1, max_size=20), data=st.data())
def test_property_oip_rows_round_trip(rows, data) -> None:
    n = len(rows)
    scores = data.draw(st.lists(prob, min_size=n, max_size=n))
    if data.draw(st.booleans()):  # one tensor per feature
        inputs = [
            {"name": c, "shape": [n], "datatype": "BYTES", "data": [r[c] for r in rows]}
            for c in NAMES
        ]
    else:  # one positional [N, F] tensor, flat data
        flat = [r[c] for r in rows for c in NAMES]
        inputs = [{"name": "input-0", "shape": [n, len(NAMES)], "datatype": "BYTES", "data": flat}]
    request = _roundtrip({"inputs": inputs})
    response = _roundtrip(
        {
            "outputs": [
                {
                    "name": "prob",
                    "shape": [n, 2],
                    "datatype": "FP64",
                    "data": [v for s in scores for v in (1 - s, s)],
                }
            ]
        }
    )
    got = make_parser("open-inference-v2", spec=SPEC).rows(request, response)
    assert [f for f, _ in got] == _roundtrip(rows)
    assert [p for _, p in got] == pytest.approx(_roundtrip(scores))


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(row, min_size=2, max_size=10), data=st.data())
def test_property_json_rows_round_trip(rows, data) -> None:
    scores = data.draw(st.lists(prob, min_size=len(rows), max_size=len(rows)))
    parser = make_parser(
        "json", spec=SPEC, json_paths=JsonPaths(features="payload.rows", prediction="out.*.p")
    )
    request = _roundtrip({"payload": {"rows": rows}})
    response = _roundtrip({"out": [{"p": s} for s in scores]})
    got = parser.rows(request, response)
    assert [f for f, _ in got] == _roundtrip(rows)


json_value = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.sampled_from(
                [
                    "instances",
                    "inputs",
                    "predictions",
                    "outputs",
                    "name",
                    "shape",
                    "data",
                    "a",
                    "prob",
                ]
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    request=json_value,
    response=json_value,
    fmt=st.sampled_from(["kserve-v1", "open-inference-v2", "json"]),
)
def test_property_arbitrary_json_yields_rows_or_a_capture_error(request, response, fmt) -> None:
    parser = make_parser(fmt, spec=SPEC)
    try:
        rows = parse_pair(parser, request, response)
    except CaptureError as e:
        assert e.reason in CAPTURE_REASONS
        return
    for features, _ in rows:
        assert isinstance(features, dict)
        for v in features.values():
            assert v is None or isinstance(v, int | float | str | bool)
            assert not (isinstance(v, float) and not math.isfinite(v))


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=200),
    encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity"]),
)
def test_property_arbitrary_bytes_decode_or_capture_error(body, encoding) -> None:
    try:
        decode_body(body, encoding)
    except CaptureError as e:
        assert e.reason in ("malformed_json", "unsupported_encoding", "non_finite")
