"""Data quality: per-feature shares of missing, out-of-range, unseen and mistyped values.

Check names (the ``check`` label of ``driftwarden_data_quality_share``):

- ``missing``: the value is absent (``None``/``null`` or NaN).
- ``out_of_range``: a numerical value outside the reference's ``[min, max]``.
- ``unseen_category``: a categorical value the reference never had.
- ``type_error``: a value of the wrong type (a string, list or object in a numerical feature;
  a list or object in a categorical one).

Every share has the window's row count as denominator, and every row counts in at most one
check: a mistyped value is neither missing nor out of range. A window with no rows has NaN
shares (undefined, not 0).

Encodings (the vectorised core works on these; the ``encode_*`` helpers build them from
raw Python values, e.g. the ``features`` of decoded events)
--------------------------------------------------------------------------------------------
Numerical column: a float array, NaN where missing, plus an optional boolean ``type_errors``
mask of the same shape (rows whose raw value had the wrong type; their float is ignored).
``+-inf`` is a value, and out of range when the reference range is finite. Booleans and any
real number are valid numerical values (``True`` is 1.0).

Categorical column: an integer array of codes into the reference's category list: ``>= 0``
is the index of a known category, and the sentinels are :data:`MISSING` (-1), :data:`UNSEEN`
(-2) and :data:`TYPE_ERROR` (-3).

Both cores accept a 1-D column (``n``) and return floats, or a 2-D block of columns
(``n x k``, one feature per column, with per-column bounds) and return arrays of length
``k``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL_CHECKS",
    "CHECKS",
    "MISSING",
    "NUMERICAL_CHECKS",
    "TYPE_ERROR",
    "UNSEEN",
    "categorical_quality",
    "encode_categorical",
    "encode_numerical",
    "numerical_quality",
]

CHECKS = ("missing", "out_of_range", "unseen_category", "type_error")
NUMERICAL_CHECKS = ("missing", "out_of_range", "type_error")
CATEGORICAL_CHECKS = ("missing", "unseen_category", "type_error")

MISSING = -1
"""Categorical code of a missing value."""
UNSEEN = -2
"""Categorical code of a value not in the reference's categories."""
TYPE_ERROR = -3
"""Categorical code of a value of the wrong type (list, dict, ...)."""

Share = float | np.ndarray


def _shares(counts: dict[str, np.ndarray], n_rows: int) -> dict[str, Share]:
    """Counts over axis 0 to shares; NaN (not a warning) when there are no rows."""
    out: dict[str, Share] = {}
    for name, count in counts.items():
        if n_rows == 0:
            share = np.full(np.shape(count), np.nan)
        else:
            share = np.asarray(count, dtype=np.float64) / n_rows
        out[name] = float(share) if share.ndim == 0 else share
    return out


def _count(mask: np.ndarray) -> Any:
    """True values over axis 0: one count per column of an ``n x k`` block (a scalar for a
    column). A block stored column by column (the transpose of a C-ordered ``k x n`` array,
    which is how the detectors service holds a window) is counted one contiguous column at
    a time: numpy's ``count_nonzero(axis=0)`` converts and sums the whole block instead."""
    if mask.ndim == 2 and mask.shape[1] and mask.T.flags.c_contiguous:
        return np.fromiter(
            (np.count_nonzero(c) for c in mask.T), dtype=np.intp, count=mask.shape[1]
        )
    return np.count_nonzero(mask, axis=0)


def _columnwise(x: np.ndarray, op: Any) -> np.ndarray:
    """`op(x)` for an elementwise `op`, laid out like `x` when `x` is stored column by
    column (so that `_count` takes its fast path)."""
    if x.ndim == 2 and x.T.flags.c_contiguous:
        return op(x.T).T
    return op(x)


def numerical_quality(
    values: Any,
    reference_min: float | Sequence[float] | np.ndarray,
    reference_max: float | Sequence[float] | np.ndarray,
    *,
    type_errors: Any = None,
) -> dict[str, Share]:
    """Shares of ``missing``, ``out_of_range`` and ``type_error`` in numerical columns.

    ``values`` is ``n`` or ``n x k`` floats with NaN for missing; ``reference_min`` and
    ``reference_max`` are the reference's range (scalars, or one per column). A NaN bound is
    "unknown" and never flags a value (a reference column that was all missing has no
    range). ``type_errors`` marks rows whose raw value had the wrong type.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"values: expected 1-D or 2-D, got shape {x.shape}")
    lo = np.asarray(reference_min, dtype=np.float64)
    hi = np.asarray(reference_max, dtype=np.float64)
    bound_shape = () if x.ndim == 1 else x.shape[1:]
    for name, bound in (("reference_min", lo), ("reference_max", hi)):
        if bound.shape not in ((), bound_shape):
            raise ValueError(f"{name}: expected a scalar or shape {bound_shape}, got {bound.shape}")
    bad = None
    if type_errors is not None:
        bad = np.asarray(type_errors, dtype=bool)
        if bad.shape != x.shape:
            raise ValueError(f"type_errors has shape {bad.shape}, values have {x.shape}")
    nan = _columnwise(x, np.isnan)
    # Comparisons with NaN (missing values, unknown bounds) are False and raise no warning.
    if x.ndim == 2 and x.T.flags.c_contiguous:  # column by column: bounds per row of x.T
        xt = x.T
        lo_t = lo[:, None] if lo.ndim else lo
        hi_t = hi[:, None] if hi.ndim else hi
        outside = ((xt < lo_t) | (xt > hi_t)).T
    else:
        outside = (x < lo) | (x > hi)
    if bad is None:
        counts = {
            "missing": _count(nan),
            "out_of_range": _count(outside),
            "type_error": np.zeros(x.shape[1:], dtype=np.intp),
        }
    else:
        good = ~bad
        counts = {
            "missing": _count(nan & good),
            "out_of_range": _count(outside & good),
            "type_error": _count(bad),
        }
    return _shares(counts, x.shape[0])


def categorical_quality(codes: Any, *, n_categories: int | None = None) -> dict[str, Share]:
    """Shares of ``missing``, ``unseen_category`` and ``type_error`` in categorical columns.

    ``codes`` is ``n`` or ``n x k`` integers in the encoding above. With ``n_categories``,
    codes at or above it are rejected (they would index past the reference's list).
    """
    c = np.asarray(codes)
    if c.ndim not in (1, 2):
        raise ValueError(f"codes: expected 1-D or 2-D, got shape {c.shape}")
    if c.size and not np.issubdtype(c.dtype, np.integer):
        raise TypeError(f"codes: expected integers, got dtype {c.dtype}")
    if c.size and int(c.min()) < TYPE_ERROR:
        raise ValueError(f"codes: {int(c.min())} is not a category index or sentinel")
    if n_categories is not None and c.size and int(c.max()) >= n_categories:
        raise ValueError(f"codes: {int(c.max())} is past the {n_categories} reference categories")
    return _shares(
        {
            "missing": _count(_columnwise(c, lambda t: t == MISSING)),
            "unseen_category": _count(_columnwise(c, lambda t: t == UNSEEN)),
            "type_error": _count(_columnwise(c, lambda t: t == TYPE_ERROR)),
        },
        c.shape[0],
    )


# -- encoders: raw Python values -> the arrays above -----------------------------------------


def _is_missing(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(values), dtype=bool)


def _column(values: Iterable[Any]) -> np.ndarray:
    """A 1-D array; raw Python sequences become object arrays element by element (so a
    list of equal-length lists stays a column of lists, not a 2-D array)."""
    if isinstance(values, np.ndarray):
        arr = values
    elif isinstance(values, pd.Series | pd.Index):
        arr = values.to_numpy()
    else:
        arr = np.fromiter(values, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"expected one column (1-D), got shape {arr.shape}")
    return arr


def encode_numerical(values: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """One column of raw values to ``(floats, type_errors)`` for :func:`numerical_quality`.

    Real numbers and booleans are values; ``None``, NaN and ``pd.NA`` are missing (NaN, not a
    type error); anything else (a string, even ``"1.5"``, a list, a dict) is a type error
    with NaN as its float. Numeric numpy arrays take a fast path with no per-element work.
    """
    arr = _column(values)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64), np.zeros(arr.shape, dtype=bool)
    if arr.dtype.kind != "O":
        # A string, bytes or datetime array: every element has the wrong type.
        return np.full(arr.shape, np.nan), np.ones(arr.shape, dtype=bool)
    ok = np.fromiter(
        (isinstance(v, int | float | np.integer | np.floating | np.bool_) for v in arr),
        dtype=bool,
        count=arr.size,
    )
    floats = np.full(arr.shape, np.nan)
    if ok.any():
        floats[ok] = arr[ok].astype(np.float64)
    wrong = ~ok & ~_is_missing(arr)
    return floats, wrong


def _wrong_category_type(value: Any) -> bool:
    return isinstance(value, list | dict | set | tuple | bytearray | np.ndarray) or not isinstance(
        value, Hashable
    )


def encode_categorical(values: Iterable[Any], categories: Sequence[Any]) -> np.ndarray:
    """One column of raw values to int64 codes against the reference's ``categories``.

    A known value gets its index in ``categories``; ``None``, NaN and ``pd.NA`` become
    :data:`MISSING`; lists, dicts, tuples and other container or unhashable values become
    :data:`TYPE_ERROR`; any other value not in ``categories`` becomes :data:`UNSEEN`.
    Values match by equality as ``pandas.Index.get_indexer`` matches them, so give the
    categories in the types the events carry (``"1"`` is not ``1``).
    """
    arr = _column(values)
    index = pd.Index(list(categories), dtype=object)
    if not index.is_unique:
        raise ValueError("categories must be unique")
    if arr.dtype.kind == "O":
        wrong = np.fromiter((_wrong_category_type(v) for v in arr), dtype=bool, count=arr.size)
    else:
        wrong = np.zeros(arr.shape, dtype=bool)
    if wrong.any():
        arr = arr.copy()
        arr[wrong] = None
    missing = _is_missing(arr) & ~wrong
    codes = (
        np.asarray(index.get_indexer(arr), dtype=np.int64) if arr.size else np.zeros(0, np.int64)
    )
    codes[codes == -1] = UNSEEN
    codes[missing] = MISSING
    codes[wrong] = TYPE_ERROR
    return codes
