"""Pure parts of the reference trainer: feature/label encoding, holdout metrics, the gate,
the split, and the model server's body parsing and output reduction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwarden.spec import parse_spec
from retrain_trigger.serve_protocol import BadRequest, OutputReducer, parse_v1, parse_v2
from retrain_trigger.train.encoding import (
    EncodingError,
    FeatureEncoder,
    LabelEncoder,
    canonical_key,
)
from retrain_trigger.train.gate import (
    classification_metrics,
    evaluate_gate,
    regression_metrics,
)
from retrain_trigger.train.trainer import split_indices

SPEC = parse_spec(
    {
        "model": "m",
        "features": [
            {"name": "x", "type": "numerical"},
            {"name": "c", "type": "categorical"},
            {"name": "k", "type": "categorical"},
        ],
        "prediction": {"type": "probability"},
        "target": {"column": "y", "type": "class", "positive_label": 1},
    }
)
NAMES = SPEC.feature_names


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, np.nan, 5.0],
            "c": ["a", "b", "a", None, "c"],
            "k": [1, 2, 3, 1, 2],  # integer categories, as a CSV file gives them
            "y": [0, 1, 0, 1, 1],
        }
    )


def test_standardises_numerical_and_imputes_missing_as_the_mean() -> None:
    enc = FeatureEncoder.fit(frame(), SPEC)
    assert enc.means[0] == pytest.approx(2.75)
    out = enc.transform(frame())
    assert out.numerical.dtype == np.float32
    assert out.numerical[3, 0] == 0.0  # NaN -> the mean -> 0
    assert out.numerical[0, 0] == pytest.approx((1 - 2.75) / np.std([1, 2, 3, 5]), rel=1e-6)


def test_categories_map_to_codes_and_unseen_or_missing_to_zero() -> None:
    enc = FeatureEncoder.fit(frame(), SPEC)
    assert enc.vocabularies["c"] == ["a", "b", "c"]
    assert enc.cardinalities == [4, 4]
    out = enc.transform({"x": [0.0, 0.0, 0.0], "c": ["a", "zz", None], "k": [2, 2, 2]})
    assert out.categorical[:, 0].tolist() == [1, 0, 0]


def test_json_forms_of_a_category_share_its_code() -> None:
    enc = FeatureEncoder.fit(frame(), SPEC)
    out = enc.transform({"x": [0, 0, 0, 0], "c": ["a"] * 4, "k": [2, 2.0, "2", True]})
    two = enc.vocabularies["k"].index("2") + 1
    one = enc.vocabularies["k"].index("1") + 1
    assert out.categorical[:, 1].tolist() == [two, two, two, one]  # True == 1, as in JSON/Python


def test_encoder_round_trips_through_json_form() -> None:
    enc = FeatureEncoder.fit(frame(), SPEC)
    again = FeatureEncoder.from_dict(enc.to_dict())
    a, b = enc.transform(frame()), again.transform(frame())
    assert np.array_equal(a.numerical, b.numerical)
    assert np.array_equal(a.categorical, b.categorical)


def test_bad_values_are_one_line_errors_naming_the_feature() -> None:
    enc = FeatureEncoder.fit(frame(), SPEC)
    with pytest.raises(EncodingError, match="feature 'x': expected a number, got 'abc'"):
        enc.transform({"x": ["abc"], "c": ["a"], "k": [1]})
    with pytest.raises(EncodingError, match="feature 'c': expected scalar"):
        enc.transform({"x": [1.0], "c": [["a"]], "k": [1]})
    with pytest.raises(EncodingError, match="feature 'x'"):
        enc.transform({"x": [[1.0]], "c": ["a"], "k": [1]})
    with pytest.raises(EncodingError, match="feature 'c' is missing"):
        enc.transform(frame().drop(columns="c"))


def test_missing_feature_in_a_request_is_treated_as_missing_values() -> None:
    enc = FeatureEncoder.fit(frame(), SPEC)
    out = enc.transform({"x": [1.0, 2.0]})
    assert out.categorical.tolist() == [[0, 0], [0, 0]]


@given(
    st.lists(
        st.one_of(
            st.integers(-5, 5),
            st.booleans(),
            st.sampled_from(["a", "1", "2.5"]),
            st.floats(allow_nan=False, allow_infinity=False, width=16),
        ),
        min_size=1,
        max_size=30,
    )
)
@settings(max_examples=80, deadline=None)
def test_transform_is_consistent_with_canonical_keys(values: list[object]) -> None:
    """Every training value gets a code (none falls into the unseen slot), and values with
    the same canonical key ("2", 2, 2.0) get the same code, in one vectorised lookup."""
    spec = parse_spec({"model": "m", "features": [{"name": "c", "type": "categorical"}]})
    enc = FeatureEncoder.fit(pd.DataFrame({"c": pd.Series(values, dtype=object)}), spec)
    codes = enc.transform({"c": values}).categorical[:, 0].tolist()
    assert min(codes) >= 1
    by_key: dict[str | None, set[int]] = {}
    for v, code in zip(values, codes, strict=True):
        by_key.setdefault(canonical_key(v), set()).add(code)
    assert all(len(c) == 1 for c in by_key.values())


def test_label_encoder_classes_and_positive_index() -> None:
    enc = LabelEncoder.fit(pd.Series([0, 1, 1, 0]), SPEC)
    assert enc.classes == ["0", "1"] and enc.positive_index == 1
    assert enc.transform(pd.Series([1.0, 0, None, 7])).tolist() == [1, 0, -1, -1]
    with pytest.raises(EncodingError, match="1 distinct class"):
        LabelEncoder.fit(pd.Series([1, 1]), SPEC)


def test_metrics_on_known_values() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = classification_metrics(proba, np.array([0, 1, 1, -1]), 1)
    assert m["accuracy"] == pytest.approx(0.5)
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(1e-15)) / 4
    assert m["log_loss"] == pytest.approx(expected)
    auc = classification_metrics(proba[:3], np.array([0, 1, 1]), 1)["roc_auc"]
    assert auc == pytest.approx(1.0)
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 4.0, np.nan]))
    assert r == {"rmse": pytest.approx(math.sqrt(2)), "mae": pytest.approx(1.0), "rows": 2}


@pytest.mark.parametrize(
    ("metric", "new", "current", "tolerance", "passed", "says"),
    [
        ("log_loss", 0.40, 0.50, 0.0, True, "better than the current"),
        ("log_loss", 0.502, 0.50, 0.01, True, "within tolerance"),
        ("log_loss", 0.60, 0.50, 0.01, False, "worse than the current model's 0.5000 by 20.0%"),
        ("roc_auc", 0.80, 0.70, 0.0, True, "better than the current"),
        ("roc_auc", 0.60, 0.70, 0.05, False, "worse than the current"),
        ("log_loss", 0.70, None, 0.0, False, "does not beat the constant baseline"),
        ("log_loss", 0.40, None, 0.0, True, "no current model"),
        ("log_loss", math.nan, 0.5, 0.0, False, "is nan"),
    ],
)
def test_gate_decisions(
    metric: str, new: float, current: float | None, tolerance: float, passed: bool, says: str
) -> None:
    baseline = {"log_loss": 0.65, "roc_auc": 0.5}
    cur = None if current is None else {metric: current}
    result = evaluate_gate(metric, {metric: new}, baseline, cur, tolerance)
    assert result.passed is passed
    assert says in result.reason
    assert "\n" not in result.reason


def test_split_is_seeded_disjoint_and_complete() -> None:
    a = split_indices(1000, 0.2, 0.1, seed=3)
    b = split_indices(1000, 0.2, 0.1, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert [len(x) for x in a] == [720, 80, 200]
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    assert all(len(x) >= 1 for x in split_indices(3, 0.2, 0.1, seed=0))


# --- the model server's protocol -----------------------------------------------------------


def test_v1_rows_objects_lists_and_columnar() -> None:
    cols, n = parse_v1({"instances": [{"x": 1, "c": "a"}, {"x": 2, "k": 3}]}, NAMES)
    assert n == 2 and cols == {"x": [1, 2], "c": ["a", None], "k": [None, 3]}
    cols, n = parse_v1({"instances": [[1, "a", 2], [3, "b", 4]]}, NAMES)
    assert cols == {"x": [1, 3], "c": ["a", "b"], "k": [2, 4]}
    cols, n = parse_v1({"inputs": {"x": [1, 2], "c": ["a", "b"]}}, NAMES)
    assert n == 2 and cols["k"] == [None, None]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([1, 2], "JSON object"),
        ({"rows": []}, "no 'instances'"),
        ({"instances": 3}, "must be a list"),
        ({"instances": [[1, "a"]]}, "has 2 values; the model has 3 features"),
        ({"instances": [{"x": 1}, [1, 2, 3]]}, "instances[1] is a list"),
        ({"instances": ["a"]}, "rows must be objects or lists"),
        ({"instances": {"x": [1], "c": [1, 2]}}, "equal length"),
    ],
)
def test_v1_bad_bodies_name_the_problem(body: object, says: str) -> None:
    with pytest.raises(BadRequest, match=None) as e:
        parse_v1(body, NAMES)
    assert says in str(e.value) and e.value.status == 400


def test_v2_named_and_positional_tensors() -> None:
    body = {
        "id": "r1",
        "inputs": [
            {"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]},
            {"name": "c", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]},
        ],
    }
    cols, n, rid = parse_v2(body, NAMES)
    assert (n, rid) == (2, "r1") and cols == {"x": [1, 2], "c": ["a", "b"], "k": [None, None]}
    body = {
        "inputs": [
            {"name": "in", "shape": [2, 3], "datatype": "BYTES", "data": [1, "a", 2, 3, "b", 4]}
        ]
    }
    cols, n, _ = parse_v2(body, NAMES)
    assert cols == {"x": [1, 3], "c": ["a", "b"], "k": [2, 4]}
    with pytest.raises(BadRequest, match=r"shape \[3\] needs 3 values, got 2"):
        parse_v2({"inputs": [{"name": "x", "shape": [3], "data": [1, 2]}]}, NAMES)
    with pytest.raises(BadRequest, match="positional tensor needs shape"):
        parse_v2({"inputs": [{"name": "in", "shape": [2, 2], "data": [1, 2, 3, 4]}]}, NAMES)


def test_output_reduction_follows_the_spec() -> None:
    labels = LabelEncoder("class", classes=["0", "1"], positive_index=1)
    proba = np.array([[0.8, 0.2], [0.3, 0.7]])
    assert OutputReducer(SPEC, labels)(proba) == [0.2, 0.7]
    argmax = parse_spec(
        {
            **SPEC.model_dump(mode="json", exclude_none=True),
            "prediction": {"type": "probability", "output": "argmax"},
        }
    )
    assert OutputReducer(argmax, labels)(proba) == [0, 1]
    as_list = parse_spec(
        {
            **SPEC.model_dump(mode="json", exclude_none=True),
            "prediction": {"type": "probability", "output": "list"},
        }
    )
    assert OutputReducer(as_list, labels)(proba) == [[0.8, 0.2], [0.3, 0.7]]
    named = LabelEncoder("class", classes=["no", "yes"], positive_index=1)
    cls = parse_spec(
        {**SPEC.model_dump(mode="json", exclude_none=True), "prediction": {"type": "class"}}
    )
    reducer = OutputReducer(cls, named)
    assert reducer(proba) == ["no", "yes"] and reducer.datatype == "BYTES"
