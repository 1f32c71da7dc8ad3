"""Column summaries and the reference profile.

A *column summary* is everything a drift test needs from one side of a comparison, computed
once: for numbers, the finite values sorted (ECDFs, quantiles and histograms then come from
``np.searchsorted`` on that array, so the reference is never re-sorted), their population sd
and distinct-value count; for labels (strings, booleans, categories), the count of each
distinct value. Missing values (NaN, None) and infinities are counted and then dropped, as
Evidently drops them before testing.

`ReferenceProfile` is the summaries of every column of the reference data. It is built once
(`ReferenceProfile.from_frame`) and saved to a single ``.npz`` file holding the arrays plus a
JSON header with the format version; loading never unpickles anything.

The current window is summarised by the very same code (`summarize`), so a drift test is a
function of two summaries. `detectors.column_window.ColumnWindow` accumulates a window in mergeable
pieces before summarising it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from detectors._parallel import parallel_map

if TYPE_CHECKING:
    import pandas as pd

# pandas loads on first use: numpy arrays and pyarrow arrays (what `driftwarden drift` reads
# from parquet and CSV) are summarised without it, which saves half a second of start-up.

__all__ = [
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "CategoryCounts",
    "ColumnProfile",
    "NumericSample",
    "ProfileError",
    "ReferenceProfile",
    "dtype_family",
    "summarize",
]

PROFILE_FORMAT = "driftwarden.reference-profile"
PROFILE_VERSION = 1

# Storage families, decided by the dtype of the data (not by its role):
#   float, int    -> NumericSample (ints keep an `integer` flag: numpy's bin rules differ)
#   bool, str, category -> CategoryCounts
#   object        -> values Evidently types as Unknown (first/last value not a string)
#   datetime      -> not summarised (Evidently does not drift-test datetimes)
DtypeFamily = Literal["float", "int", "bool", "str", "category", "object", "datetime"]
NUMERIC_FAMILIES = frozenset({"float", "int"})
LABEL_FAMILIES = frozenset({"bool", "str", "category", "object"})

# Evidently 0.7 (core/datasets.py INTEGER_CARDINALITY_LIMIT): an integer column with at most
# this many distinct values is categorical.
INTEGER_CARDINALITY_LIMIT = 10


class ProfileError(ValueError):
    """Data that cannot be summarised, or a profile file that cannot be read."""


class NumericSample:
    """The finite values of a numeric column, sorted once; everything else derives from them."""

    def __init__(self, sorted_values: np.ndarray, *, integer: bool, std: float | None = None):
        self.values = np.asarray(sorted_values, dtype=np.float64)
        self.integer = bool(integer)
        if std is not None:
            self.__dict__["std"] = float(std)

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    @cached_property
    def std(self) -> float:
        """Population sd (ddof=0), as ``np.std`` gives it."""
        if not self.n:
            return math.nan
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.std(self.values))

    @cached_property
    def _distinct(self) -> tuple[np.ndarray, np.ndarray]:
        v = self.values
        if v.shape[0] == 0:
            return v, np.zeros(0, dtype=np.int64)
        starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
        counts = np.diff(np.append(starts, v.shape[0]))
        return v[starts], counts.astype(np.int64)

    def count_distinct(self, cap: int) -> int:
        """Number of distinct values, exact up to `cap` (O(cap log n) on the sorted array)."""
        if "_distinct" in self.__dict__:
            return min(cap, self.n_unique)
        v, count, i = self.values, 0, 0
        while i < v.shape[0] and count < cap:
            count += 1
            i = int(v.searchsorted(v[i], "right"))
        return count

    @property
    def uniques(self) -> np.ndarray:
        return self._distinct[0]

    @property
    def n_unique(self) -> int:
        return int(self._distinct[0].shape[0])

    @property
    def min(self) -> float:
        return float(self.values[0])

    @property
    def max(self) -> float:
        return float(self.values[-1])

    def as_counts(self) -> CategoryCounts:
        """The sample as a table of distinct values (a numeric column tested as categorical)."""
        return self._as_counts

    @cached_property
    def _as_counts(self) -> CategoryCounts:
        keys, counts = self._distinct
        if self.integer:
            keys = keys.astype(np.int64)
        return CategoryCounts(keys.astype(object), counts)


class CategoryCounts:
    """Distinct values of a label column and how often each occurs (no zero counts)."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray):
        self.keys = np.asarray(keys, dtype=object)
        self.counts = np.asarray(counts, dtype=np.int64)
        if self.keys.shape != self.counts.shape:
            raise ProfileError("category keys and counts differ in length")

    @cached_property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def n_unique(self) -> int:
        return int(self.keys.shape[0])

    @cached_property
    def index(self) -> pd.Index:
        import pandas as pd

        return pd.Index(self.keys, dtype=object)

    @cached_property
    def _count_by_key(self) -> dict[Any, int]:
        return dict(zip(self.keys.tolist(), self.counts.tolist(), strict=True))

    def counts_of(self, keys: np.ndarray | pd.Index) -> np.ndarray:
        """Counts of `keys` in this table, 0 for a key it does not hold."""
        get = self._count_by_key.get
        return np.fromiter((get(k, 0) for k in keys.tolist()), dtype=np.int64, count=len(keys))

    def as_counts(self) -> CategoryCounts:
        return self


Sample = NumericSample | CategoryCounts


@dataclass(frozen=True, eq=False)
class ColumnProfile:
    """One column's summary: what a drift test and the data-quality checks need."""

    name: str
    dtype: DtypeFamily
    n_rows: int  # every row, missing ones included
    n_missing: int  # NaN / None / NaT
    n_nonfinite: int  # +-inf (numeric columns only); dropped like missing values
    sample: Sample

    @property
    def kind(self) -> Literal["numeric", "label"]:
        return "numeric" if isinstance(self.sample, NumericSample) else "label"

    @property
    def n(self) -> int:
        """Rows a test sees: finite, non-missing values."""
        return self.sample.n

    @property
    def missing_share(self) -> float:
        return self.n_missing / self.n_rows if self.n_rows else 0.0

    @property
    def evidently_type(self) -> Literal["numerical", "categorical", "text", "unknown"]:
        """The type Evidently 0.7 infers for this data (core/datasets.py infer_column_type)."""
        if self.dtype == "float":
            return "numerical"
        if self.dtype == "int":
            n_unique = self.sample.count_distinct(INTEGER_CARDINALITY_LIMIT + 1)
            return "categorical" if n_unique <= INTEGER_CARDINALITY_LIMIT else "numerical"
        if self.dtype in ("bool", "category"):
            return "categorical"
        if self.dtype == "str":
            # nunique() > 0.5 * count(): both exclude missing values
            return "text" if self.sample.n_unique > 0.5 * self.n else "categorical"
        return "unknown"


# numpy dtype kinds whose family needs no look at the values
_NUMPY_FAMILIES: dict[str, DtypeFamily] = {
    "b": "bool",
    "f": "float",
    "i": "int",
    "u": "int",
    "M": "datetime",
    "m": "datetime",
}


def _library(values: Any) -> str:
    """The top-level package of a column object's type ("numpy", "pandas", "pyarrow")."""
    return type(values).__module__.partition(".")[0]


def _arrow_family(values: Any, *, text: bool = False) -> DtypeFamily | None:
    """The family pandas would give a pyarrow array once loaded (`pyarrow`'s ``to_pandas``):
    integers with nulls become floats, booleans with nulls objects, dictionaries categories
    (unless `text`: strings read dictionary-encoded that pandas would hold as objects).
    None for a type this module does not read directly."""
    import pyarrow as pa

    t = values.type
    if text and pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_floating(t) and not pa.types.is_float16(t):
        return "float"
    if pa.types.is_integer(t):
        return "float" if values.null_count else "int"
    if pa.types.is_boolean(t):
        return "object" if values.null_count else "bool"
    if pa.types.is_timestamp(t) or pa.types.is_duration(t):
        return "datetime"
    if pa.types.is_dictionary(t):
        return "category"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        # pandas holds strings as objects; with no value present Evidently sees "unknown"
        return "object" if values.null_count == len(values) else "str"
    if pa.types.is_null(t):
        return "object"  # pandas loads arrow's null type as objects (None)
    return None


def dtype_family(values: Any, *, text: bool = False) -> DtypeFamily:
    """The storage family of a column, from its dtype (and, for objects, its values).
    `text`: a pyarrow dictionary array stands for plain strings, not a category."""
    if _library(values) == "pyarrow":
        family = _arrow_family(values, text=text)
        if family is not None:
            return family
        values = values.to_pandas()
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        values = np.asarray(values)
        dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in _NUMPY_FAMILIES:
        return _NUMPY_FAMILIES[dtype.kind]
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "str"
    # object: Evidently looks at the first and last non-missing values only
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    first, last = _first_present(arr), _first_present(arr[::-1])
    if isinstance(first, str) and isinstance(last, str):
        return "str"
    return "object"


def _first_present(arr: np.ndarray, chunk: int = 256) -> Any:
    """The first value of an object array that is not None/NaN (None if there is none)."""
    import pandas as pd

    for start in range(0, arr.shape[0], chunk):
        part = arr[start : start + chunk]
        present = np.flatnonzero(~pd.isna(part))
        if present.shape[0]:
            return part[present[0]]
    return None


def finite_values(values: Any) -> tuple[np.ndarray, int, int, int]:
    """(finite values as float64 in row order, rows, missing, infinite) of a numeric column."""
    library = _library(values)
    if library == "pyarrow":
        values = _arrow_numbers(values)
    raw = values.to_numpy() if library == "pandas" else np.asarray(values)
    if raw.dtype.kind in "iu":  # numpy integers: nothing missing, nothing infinite
        return raw.astype(np.float64), int(raw.shape[0]), 0, 0
    if raw.dtype.kind == "f":
        arr = raw.astype(np.float64, copy=False)
    elif library == "pandas":
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable Int64/Float64
    else:
        arr = np.asarray(values, dtype=np.float64)
    n_rows = int(arr.shape[0])
    finite = np.isfinite(arr)
    n_bad = n_rows - int(np.count_nonzero(finite))
    if not n_bad:
        return arr, n_rows, 0, 0
    n_missing = int(np.count_nonzero(np.isnan(arr)))
    return arr[finite], n_rows, n_missing, n_bad - n_missing


def _arrow_numbers(values: Any) -> np.ndarray:
    """A numeric pyarrow array as numpy, nulls as NaN (integers with nulls become floats, as
    pandas loads them), read from the array's buffers: pyarrow's ``to_numpy`` loads pandas."""
    import pyarrow as pa

    t = values.type
    if pa.types.is_null(t):
        return np.full(len(values), np.nan)
    kind = "f" if pa.types.is_floating(t) else "i" if pa.types.is_signed_integer(t) else "u"
    dtype = np.dtype(f"{kind}{t.bit_width // 8}")
    parts = []
    for chunk in values.chunks if isinstance(values, pa.ChunkedArray) else [values]:
        n, offset = len(chunk), chunk.offset
        if not n:
            continue
        validity, data = chunk.buffers()[:2]
        arr = np.frombuffer(data, dtype=dtype, count=offset + n)[offset:]
        if chunk.null_count:
            valid = np.unpackbits(
                np.frombuffer(validity, dtype=np.uint8), count=offset + n, bitorder="little"
            )[offset:]
            arr = arr.astype(np.float64)
            arr[valid == 0] = np.nan
        parts.append(arr)
    if not parts:
        return np.zeros(0, dtype=np.float64 if values.null_count else dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def numeric_profile(
    name: str,
    family: DtypeFamily,
    clean: np.ndarray,
    n_rows: int,
    n_missing: int,
    n_inf: int,
    *,
    with_std: bool = True,
) -> ColumnProfile:
    """Profile from the finite values in row order. The sd is summed in that order, as
    Evidently's ``np.std(reference_column)`` sums it; a window skips it (`with_std`)."""
    std = None
    if with_std and clean.shape[0]:
        with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308: sd is inf
            std = float(np.std(clean))
    return ColumnProfile(
        name=name,
        dtype=family,
        n_rows=n_rows,
        n_missing=n_missing,
        n_nonfinite=n_inf,
        sample=NumericSample(np.sort(clean), integer=family == "int", std=std),
    )


def label_counts(values: Any) -> tuple[pd.Series, int]:
    """(count per distinct non-missing value in order of first appearance, rows)."""
    import pandas as pd

    if isinstance(values, pd.Series):
        arr = (
            values.to_numpy(dtype=object)
            if isinstance(values.dtype, pd.CategoricalDtype)
            else values.to_numpy()
        )
    else:
        arr = np.asarray(values)
    if arr.dtype == np.bool_:
        keys, counts, n_rows = _bool_counts(arr)
        return pd.Series(counts, index=pd.Index(keys, dtype=object), dtype=np.int64), n_rows
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    counts = np.bincount(codes + 1, minlength=len(uniques) + 1)[1:]
    keys = np.asarray(uniques, dtype=object)
    return pd.Series(counts, index=pd.Index(keys, dtype=object), dtype=np.int64), int(arr.shape[0])


def label_profile(name: str, family: DtypeFamily, counts: pd.Series, n_rows: int) -> ColumnProfile:
    """Profile from value counts (one `label_counts` result, or several added together)."""
    return _label_profile(name, family, counts.index.to_numpy(dtype=object), counts, n_rows)


def _label_profile(
    name: str, family: DtypeFamily, keys: np.ndarray, counts: Any, n_rows: int
) -> ColumnProfile:
    """Profile from distinct values (object array) and their counts (array or Series)."""
    if family == "str" and any(not isinstance(k, str) for k in keys):
        import pandas as pd

        # Mixed object columns (strings with a stray number) are compared as strings.
        as_str = np.array([k if isinstance(k, str) else str(k) for k in keys], dtype=object)
        counts = pd.Series(np.asarray(counts), index=as_str).groupby(level=0, sort=False).sum()
        keys = counts.index.to_numpy(dtype=object)
    vals = np.asarray(counts, dtype=np.int64)
    return ColumnProfile(
        name=name,
        dtype=family,
        n_rows=n_rows,
        n_missing=n_rows - int(vals.sum()),
        n_nonfinite=0,
        sample=CategoryCounts(keys, vals),
    )


def summarize(
    name: str, values: Any, family: DtypeFamily | None = None, *, with_std: bool = True
) -> ColumnProfile:
    """Summarise one column (a pandas Series, numpy or pyarrow array, or sequence).
    `with_std=False` leaves a numeric column's sd to be computed if ever asked for (only a
    reference's sd is used by a test, and it must be summed in row order, as here)."""
    family = dtype_family(values) if family is None else family
    if family in NUMERIC_FAMILIES:
        return numeric_profile(name, family, *finite_values(values), with_std=with_std)
    if family == "datetime":
        raise ProfileError(f"column {name!r}: datetime columns are not drift-tested")
    if _library(values) == "pyarrow":
        return _label_profile(name, family, *_arrow_label_counts(values))
    if isinstance(values, np.ndarray) and values.dtype == np.bool_:
        return _label_profile(name, family, *_bool_counts(values))
    return label_profile(name, family, *label_counts(values))


def _bool_counts(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(values in order of first appearance, their counts, rows) of a boolean array: two
    possible values, so they are counted, not hashed."""
    n_true = int(np.count_nonzero(arr))
    present = [(bool(v), c) for v, c in ((True, n_true), (False, arr.shape[0] - n_true)) if c]
    if len(present) == 2 and not arr[0]:
        present.reverse()
    keys = np.array([v for v, _ in present], dtype=object)
    return keys, np.array([c for _, c in present], dtype=np.int64), int(arr.shape[0])


def _arrow_label_counts(values: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """(distinct non-null values in order of first appearance, their counts, rows) of a
    pyarrow array. Booleans and dictionary codes (text read from parquet) are counted by
    numpy from the array's buffers; other types by pyarrow's hash kernel. Strings never
    become Python objects, except the distinct ones."""
    import pyarrow as pa

    t = values.type
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    if pa.types.is_boolean(t) and not values.null_count:
        bits = [_arrow_bits(c.buffers()[1], c.offset, len(c)) for c in chunks if len(c)]
        return _bool_counts(np.concatenate(bits) if bits else np.zeros(0, dtype=bool))
    if pa.types.is_dictionary(t):
        kind = "i" if pa.types.is_signed_integer(t.index_type) else "u"
        keys, counts = _dictionary_counts(chunks, np.dtype(f"{kind}{t.index_type.bit_width // 8}"))
        return keys, counts, len(values)

    import pyarrow.compute as pc

    counted = pc.value_counts(values)
    keys, counts = counted.field("values"), counted.field("counts")
    if keys.null_count:
        present = keys.is_valid()
        keys, counts = keys.filter(present), counts.filter(present)
    out = np.empty(len(keys), dtype=object)
    out[:] = keys.to_pylist()
    return out, np.array(counts.to_pylist(), dtype=np.int64), len(values)


def _arrow_bits(buffer: Any, offset: int, n: int) -> np.ndarray:
    """A pyarrow bitmap (validity or boolean values) as a numpy bool array."""
    packed = np.frombuffer(buffer, dtype=np.uint8)
    return np.unpackbits(packed, count=offset + n, bitorder="little")[offset:].view(np.bool_)


def _dictionary_counts(chunks: list[Any], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(values in order of first appearance, counts) of dictionary-encoded chunks whose
    codes have numpy type `dtype`: codes counted with ``np.bincount``; each chunk's
    dictionary may differ."""
    totals: dict[Any, int] = {}
    for chunk in chunks:
        n = len(chunk)
        if not n:
            continue
        indices = chunk.indices
        validity, data = indices.buffers()[:2]
        codes = np.frombuffer(data, dtype=dtype, count=indices.offset + n)[indices.offset :]
        if indices.null_count:
            codes = codes[_arrow_bits(validity, indices.offset, n)]
        dictionary = chunk.dictionary.to_pylist()
        counts = np.bincount(codes, minlength=len(dictionary))
        for code in _first_seen(codes, int(np.count_nonzero(counts))).tolist():
            key = dictionary[code]
            if key is not None:  # a null in the dictionary is a missing value
                totals[key] = totals.get(key, 0) + int(counts[code])
    keys = np.empty(len(totals), dtype=object)
    keys[:] = list(totals)
    return keys, np.fromiter(totals.values(), dtype=np.int64, count=len(totals))


def _first_seen(codes: np.ndarray, n_distinct: int) -> np.ndarray:
    """The distinct values of `codes` in order of first appearance, looking at a prefix
    that grows until it holds all `n_distinct` of them (one small block when they are few)."""
    size = 4096
    while True:
        head = codes[:size]
        distinct, first = np.unique(head, return_index=True)
        if distinct.shape[0] >= n_distinct or size >= codes.shape[0]:
            return distinct[np.argsort(first, kind="stable")]
        size *= 16


# --------------------------------------------------------------------------- profile file


def _keys_to_array(keys: np.ndarray) -> tuple[str, np.ndarray]:
    """Category keys as a pickle-free numpy array plus the Python type to restore."""
    if keys.shape[0] == 0:
        return "str", np.zeros(0, dtype="U1")
    kinds = {type(k) for k in keys}
    if kinds <= {bool, np.bool_}:
        return "bool", keys.astype(bool)
    if kinds <= {int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32}:
        return "int", keys.astype(np.int64)
    if kinds <= {float, np.float32, np.float64, int, np.int64}:
        return "float", keys.astype(np.float64)
    return "str", np.array([str(k) for k in keys], dtype=str)


def _keys_from_array(kind: str, arr: np.ndarray) -> np.ndarray:
    if kind == "bool":
        return np.array([bool(x) for x in arr], dtype=object)
    if kind == "int":
        return np.array([int(x) for x in arr], dtype=object)
    if kind == "float":
        return np.array([float(x) for x in arr], dtype=object)
    return np.array([str(x) for x in arr], dtype=object)


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Summaries of every column of the reference data; built once, saved, loaded."""

    columns: Mapping[str, ColumnProfile]
    skipped: Mapping[str, str] = None  # type: ignore[assignment]  # column -> why
    # Calibrated thresholds computed from this profile (detectors/calibration.py), by key:
    # plain JSON values, computed once and saved with the profile.
    calibrations: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.skipped is None:
            object.__setattr__(self, "skipped", {})

    def cached_calibration(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The calibration stored under `key`, computing and keeping it on first use."""
        hit = self.calibrations.get(key)
        if hit is None:
            hit = self.calibrations[key] = compute()
        return hit

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def n_rows(self) -> int:
        return max((c.n_rows for c in self.columns.values()), default=0)

    @classmethod
    def from_frame(
        cls,
        data: pd.DataFrame | Mapping[str, Any],
        *,
        workers: int = 1,
        text_columns: Collection[str] = (),
        with_std: bool = True,
    ) -> ReferenceProfile:
        """Summarise every column of a DataFrame or of a mapping name -> array (numpy,
        pandas or pyarrow), on `workers` threads. `text_columns`: pyarrow dictionary arrays
        that stand for plain strings (`driftwarden.tables.read_columns` reads text that way).
        `with_std=False` for data that is only ever compared, never compared against."""
        items = list(data.items())
        families = {
            str(name): dtype_family(values, text=str(name) in text_columns)
            for name, values in items
        }
        skipped = {
            name: "datetime column (not drift-tested)"
            for name, f in families.items()
            if f == "datetime"
        }
        todo = [(str(name), values) for name, values in items if str(name) not in skipped]
        profiles = parallel_map(
            lambda nv: summarize(nv[0], nv[1], families[nv[0]], with_std=with_std), todo, workers
        )
        return cls(columns={p.name: p for p in profiles}, skipped=skipped)

    def save(self, path: str | Path) -> Path:
        """Write one ``.npz`` file: the arrays plus a JSON header (format, version, columns)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        header_cols = []
        for i, col in enumerate(self.columns.values()):
            entry: dict[str, Any] = {
                "name": col.name,
                "dtype": col.dtype,
                "n_rows": col.n_rows,
                "n_missing": col.n_missing,
                "n_nonfinite": col.n_nonfinite,
                "kind": col.kind,
            }
            s = col.sample
            if isinstance(s, NumericSample):
                arrays[f"c{i}_values"] = s.values
                entry["integer"] = s.integer
                entry["std"] = None if math.isnan(s.std) else s.std
            else:
                kind, keys = _keys_to_array(s.keys)
                arrays[f"c{i}_keys"] = keys
                arrays[f"c{i}_counts"] = s.counts
                entry["key_type"] = kind
            header_cols.append(entry)
        header = {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "columns": header_cols,
            "skipped": dict(self.skipped),
            "calibrations": self.calibrations,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        with path.open("wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        """Read a file written by `save`; any other file is a `ProfileError`."""
        path = Path(path)
        try:
            npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ProfileError(f"{path}: not a driftwarden reference profile ({e})") from e
        with npz:
            try:
                header = json.loads(bytes(npz["header"]).decode("utf-8"))
            except (KeyError, ValueError) as e:
                raise ProfileError(f"{path}: not a driftwarden reference profile") from e
            if header.get("format") != PROFILE_FORMAT:
                raise ProfileError(f"{path}: not a driftwarden reference profile")
            if header.get("version") != PROFILE_VERSION:
                raise ProfileError(
                    f"{path}: profile format version {header.get('version')!r} is not supported "
                    f"(this driftwarden reads version {PROFILE_VERSION}); rebuild the profile"
                )
            columns: dict[str, ColumnProfile] = {}
            for i, entry in enumerate(header["columns"]):
                if entry["kind"] == "numeric":
                    sample: Sample = NumericSample(
                        npz[f"c{i}_values"], integer=entry["integer"], std=entry["std"]
                    )
                else:
                    keys = _keys_from_array(entry["key_type"], npz[f"c{i}_keys"])
                    sample = CategoryCounts(keys, npz[f"c{i}_counts"])
                columns[entry["name"]] = ColumnProfile(
                    name=entry["name"],
                    dtype=entry["dtype"],
                    n_rows=entry["n_rows"],
                    n_missing=entry["n_missing"],
                    n_nonfinite=entry["n_nonfinite"],
                    sample=sample,
                )
        return cls(
            columns=columns,
            skipped=header.get("skipped", {}),
            calibrations=dict(header.get("calibrations", {})),
        )
