"""Data quality shares: encodings, exact counts, column blocks and properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from detectors.quality import (
    CATEGORICAL_CHECKS,
    CHECKS,
    MISSING,
    NUMERICAL_CHECKS,
    TYPE_ERROR,
    UNSEEN,
    categorical_quality,
    encode_categorical,
    encode_numerical,
    numerical_quality,
)


def test_check_names_are_the_metric_labels():
    assert CHECKS == ("missing", "out_of_range", "unseen_category", "type_error")
    assert set(NUMERICAL_CHECKS) | set(CATEGORICAL_CHECKS) == set(CHECKS)
    assert (MISSING, UNSEEN, TYPE_ERROR) == (-1, -2, -3)


def test_numerical_counts():
    values = [0.5, np.nan, 12.0, -1.0, 3.0, np.inf, 7.0, np.nan]
    type_errors = [False, False, False, False, False, False, False, True]
    shares = numerical_quality(values, 0.0, 10.0, type_errors=type_errors)
    assert list(shares) == list(NUMERICAL_CHECKS)
    assert shares == {"missing": 1 / 8, "out_of_range": 3 / 8, "type_error": 1 / 8}
    assert all(type(v) is float for v in shares.values())


def test_bounds_are_inclusive_and_nan_bounds_never_flag():
    assert numerical_quality([0.0, 10.0], 0.0, 10.0)["out_of_range"] == 0.0
    assert numerical_quality([-5.0, 50.0], np.nan, np.nan)["out_of_range"] == 0.0
    assert numerical_quality([-5.0, 50.0], np.nan, 10.0)["out_of_range"] == 0.5


def test_a_type_error_is_neither_missing_nor_out_of_range():
    shares = numerical_quality([99.0, np.nan], 0.0, 1.0, type_errors=[True, True])
    assert shares == {"missing": 0.0, "out_of_range": 0.0, "type_error": 1.0}


def test_numerical_block_of_columns_matches_column_by_column():
    rng = np.random.default_rng(0)
    block = rng.normal(size=(200, 4))
    block[rng.random(block.shape) < 0.1] = np.nan
    errors = rng.random(block.shape) < 0.05
    lo, hi = np.array([-1.0, -2.0, np.nan, 0.0]), np.array([1.0, 2.0, 0.5, np.inf])
    together = numerical_quality(block, lo, hi, type_errors=errors)
    for j in range(4):
        alone = numerical_quality(block[:, j], lo[j], hi[j], type_errors=errors[:, j])
        for check in NUMERICAL_CHECKS:
            assert together[check][j] == alone[check]


def test_categorical_counts():
    codes = np.array([0, 1, MISSING, UNSEEN, UNSEEN, TYPE_ERROR, 2, 0])
    shares = categorical_quality(codes, n_categories=3)
    assert list(shares) == list(CATEGORICAL_CHECKS)
    assert shares == {"missing": 1 / 8, "unseen_category": 2 / 8, "type_error": 1 / 8}


def test_categorical_block_of_columns():
    codes = np.array([[0, MISSING], [UNSEEN, 1], [UNSEEN, TYPE_ERROR], [1, 1]])
    shares = categorical_quality(codes)
    np.testing.assert_array_equal(shares["missing"], [0.0, 0.25])
    np.testing.assert_array_equal(shares["unseen_category"], [0.5, 0.0])
    np.testing.assert_array_equal(shares["type_error"], [0.0, 0.25])


@pytest.mark.parametrize(
    "empty",
    [[], np.zeros(0), np.zeros((0, 3))],
)
def test_empty_windows_give_nan_without_warnings(empty):
    shares = numerical_quality(empty, 0.0, 1.0)
    assert all(np.all(np.isnan(v)) for v in shares.values())
    codes = np.zeros(np.shape(empty), dtype=np.int64)
    assert all(np.all(np.isnan(v)) for v in categorical_quality(codes).values())


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="type_errors"):
        numerical_quality([1.0, 2.0], 0.0, 1.0, type_errors=[True])
    with pytest.raises(ValueError, match="reference_min"):
        numerical_quality([1.0, 2.0], [0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="reference_max"):
        numerical_quality(np.zeros((3, 2)), 0.0, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="sentinel"):
        categorical_quality([0, -4])
    with pytest.raises(ValueError, match="past"):
        categorical_quality([0, 3], n_categories=3)
    with pytest.raises(TypeError):
        categorical_quality([0.5, 1.0])
    with pytest.raises(ValueError, match="unique"):
        encode_categorical(["a"], ["a", "a"])


def test_encode_numerical_raw_values():
    raw = [1, 2.5, None, "3", float("nan"), True, [1], {"a": 1}, pd.NA, np.int32(4)]
    floats, errors = encode_numerical(raw)
    np.testing.assert_array_equal(
        floats, [1.0, 2.5, np.nan, np.nan, np.nan, 1.0, np.nan, np.nan, np.nan, 4.0]
    )
    assert errors.tolist() == [False, False, False, True, False, False, True, True, False, False]
    shares = numerical_quality(floats, 0.0, 2.0, type_errors=errors)
    assert shares == {"missing": 3 / 10, "out_of_range": 2 / 10, "type_error": 3 / 10}


def test_encode_numerical_fast_paths():
    floats, errors = encode_numerical(np.array([1, 2, 3], dtype=np.int16))
    assert floats.dtype == np.float64
    assert not errors.any()
    floats, errors = encode_numerical(np.array(["a", "b"]))
    assert errors.all()
    assert np.isnan(floats).all()
    floats, errors = encode_numerical(pd.Series([1.0, None]))
    assert np.isnan(floats[1])
    assert not errors.any()


def test_encode_categorical_raw_values():
    categories = ["DE", "FR", 7]
    raw = ["FR", "DE", None, "US", ["DE"], float("nan"), 7, ("DE",), {"x": 1}, "7"]
    codes = encode_categorical(raw, categories)
    assert codes.dtype == np.int64
    assert codes.tolist() == [1, 0, MISSING, UNSEEN, TYPE_ERROR, MISSING, 2, TYPE_ERROR,
                              TYPE_ERROR, UNSEEN]  # fmt: skip
    # A list of equal-length lists is a column of lists, not a 2-D array.
    assert encode_categorical([[1, 2], [3, 4]], categories).tolist() == [TYPE_ERROR] * 2
    assert encode_categorical(np.array(["DE", "XX"]), categories).tolist() == [0, UNSEEN]
    assert encode_categorical([], categories).shape == (0,)


# -- properties ------------------------------------------------------------------------------

_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(deadline=None)
@given(
    values=hnp.arrays(np.float64, st.integers(0, 60), elements=_floats),
    bounds=st.tuples(_floats, _floats),
    data=st.data(),
)
def test_numerical_shares_are_fractions_that_add_up(values, bounds, data):
    errors = data.draw(hnp.arrays(np.bool_, values.shape))
    lo, hi = min(bounds, key=lambda b: (math.isnan(b), b)), max(bounds)
    shares = numerical_quality(values, lo, hi, type_errors=errors)
    if values.size == 0:
        assert all(math.isnan(v) for v in shares.values())
        return
    assert all(0.0 <= v <= 1.0 for v in shares.values())
    # Every row counts in at most one check.
    assert sum(shares.values()) <= 1.0 + 1e-12
    assert shares["type_error"] == errors.mean()
    assert shares["missing"] == (np.isnan(values) & ~errors).mean()


@settings(deadline=None)
@given(codes=hnp.arrays(np.int64, st.integers(0, 60), elements=st.integers(-3, 9)))
def test_categorical_shares_are_fractions_that_add_up(codes):
    shares = categorical_quality(codes, n_categories=10)
    if codes.size == 0:
        assert all(math.isnan(v) for v in shares.values())
        return
    assert all(0.0 <= v <= 1.0 for v in shares.values())
    assert sum(shares.values()) == pytest.approx((codes < 0).mean())


_raw = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)


@settings(deadline=None)
@given(raw=st.lists(_raw, max_size=40))
def test_encoders_classify_every_raw_value_once(raw):
    floats, errors = encode_numerical(raw)
    assert floats.shape == errors.shape == (len(raw),)
    for value, f, e in zip(raw, floats, errors, strict=True):
        if isinstance(value, str | list):
            assert e and math.isnan(f)
        elif value is None:
            assert not e and math.isnan(f)
        else:
            assert not e and (f == float(value) or (math.isnan(f) and math.isnan(value)))
    codes = encode_categorical(raw, ["a", 1, "b"])
    assert codes.shape == (len(raw),)
    assert codes.min(initial=0) >= TYPE_ERROR
    assert codes.max(initial=0) <= 2
    shares = categorical_quality(codes, n_categories=3)
    if raw:
        assert all(0.0 <= v <= 1.0 for v in shares.values())
