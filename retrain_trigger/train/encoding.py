"""Feature and label encoding for the reference trainer, built from the monitoring spec. Pure.

`FeatureEncoder.fit(columns, spec)` learns what a model needs to read a row: the mean and
standard deviation of every numerical feature, and the vocabulary of every categorical one.
`transform(columns)` turns columns (a DataFrame or a mapping name -> values) into two numpy
arrays, `numerical` (float32, standardised, missing -> 0, i.e. the mean) and `categorical`
(int64 codes, 0 = missing or never seen in training). Everything is vectorised: a hash
lookup per categorical column (`pandas.Index.get_indexer`), array arithmetic for the rest.

Category keys are canonical strings ("DE", "3", "1.5", "True"); a lookup table also maps
the JSON forms of the same value (3, 3.0, 1.5, true) to the same code, so a category seen
as the integer 3 in a CSV file is the same category when a request sends 3.0.

`LabelEncoder` does the same for the target: class labels -> class index (classification)
or standardised value (regression). Both round-trip through plain JSON (`to_dict` /
`from_dict`), which is how an artifact stores them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftwarden.errors import DriftwardenError
from driftwarden.spec import ModelSpec

__all__ = ["EncodedFeatures", "EncodingError", "FeatureEncoder", "LabelEncoder", "canonical_key"]

_INT = re.compile(r"^-?\d+$")
_STD_FLOOR = 1e-12


class EncodingError(DriftwardenError):
    """Data that cannot be encoded (a missing column, a label the model cannot learn from)."""


def canonical_key(value: Any) -> str | None:
    """The category key of one value: None for missing, else a canonical string."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return None
        if v.is_integer() and abs(v) < 2**63:
            return str(int(v))
        return repr(v)
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _aliases(key: str) -> list[Any]:
    """The JSON forms a canonical key stands for, besides the string itself."""
    if key in ("True", "False"):
        return [key == "True"]
    if _INT.match(key):
        return [int(key)]
    try:
        v = float(key)
    except ValueError:
        return []
    return [v] if math.isfinite(v) else []


#: Below this many values a dict lookup beats building a pandas Index for the batch (a
#: model server's request is a few rows; a training set is many).
_SMALL_BATCH = 64


class _Lookup:
    """Vectorised value -> code (1-based; 0 = missing/unseen) for one vocabulary."""

    __slots__ = ("codes", "index", "table")

    def __init__(self, vocabulary: Sequence[str]) -> None:
        table: dict[Any, int] = {}
        for code, key in enumerate(vocabulary, start=1):
            table.setdefault(key, code)
        for code, key in enumerate(vocabulary, start=1):
            for alias in _aliases(key):
                # 1 == 1.0 == True in Python: the first key claiming a value keeps it.
                table.setdefault(alias, code)
        self.table = table
        self.index = pd.Index(list(table), dtype=object)
        self.codes = np.fromiter(table.values(), dtype=np.int64, count=len(table))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if values.shape[0] < _SMALL_BATCH:
            get = self.table.get
            return np.fromiter((get(v, 0) for v in values.tolist()), np.int64, values.shape[0])
        pos = self.index.get_indexer(values)
        out = np.zeros(pos.shape[0], dtype=np.int64)
        hit = pos >= 0
        out[hit] = self.codes[pos[hit]]
        return out


def _column(columns: Mapping[str, Any] | pd.DataFrame, name: str, n: int) -> Any:
    if isinstance(columns, pd.DataFrame):
        if name not in columns.columns:
            raise EncodingError(f"feature {name!r} is missing from the data")
        return columns[name]
    if name not in columns:
        # a request that leaves a feature out: every row is missing it
        return np.full(n, np.nan)
    return columns[name]


def _as_float(values: Any, name: str) -> np.ndarray:
    """Numbers as float64, missing as NaN; a value that is not a number is an error."""
    if isinstance(values, pd.Series):
        if values.dtype.kind in "fiub":
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values.to_numpy(dtype=object)
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    raw = pd.Series(_as_objects(values), dtype=object)
    try:
        coerced = pd.to_numeric(raw, errors="coerce")
    except (TypeError, ValueError) as e:
        raise EncodingError(f"feature {name!r}: expected numbers ({e})") from e
    bad = coerced.isna() & raw.notna()  # None and NaN are missing values, not bad ones
    if bad.any():
        raise EncodingError(f"feature {name!r}: expected a number, got {raw[bad].iloc[0]!r}")
    return coerced.to_numpy(dtype=np.float64, na_value=np.nan)


def _as_objects(values: Any) -> np.ndarray:
    """A 1-D object array; a nested value stays one element (and is rejected later)."""
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        return values.to_numpy(dtype=object, na_value=None)
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values.astype(object, copy=False)
    return np.fromiter(values, dtype=object, count=len(values))


def _length(columns: Mapping[str, Any] | pd.DataFrame) -> int:
    if isinstance(columns, pd.DataFrame):
        return len(columns)
    for v in columns.values():
        return len(v)
    return 0


@dataclass(frozen=True, slots=True)
class EncodedFeatures:
    numerical: np.ndarray  # float32 [N, n_numerical]
    categorical: np.ndarray  # int64 [N, n_categorical]

    @property
    def rows(self) -> int:
        return int(self.numerical.shape[0])


@dataclass
class FeatureEncoder:
    """Standardisation of numerical features and vocabularies of categorical ones."""

    numerical: list[str]
    categorical: list[str]
    means: list[float]
    stds: list[float]
    vocabularies: dict[str, list[str]]
    _lookups: dict[str, _Lookup] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, spec: ModelSpec, *, max_categories: int = 1_000
    ) -> FeatureEncoder:
        """Learn means/stds and vocabularies (the `max_categories` most frequent values)."""
        numerical = [f.name for f in spec.features if f.type == "numerical"]
        categorical = [f.name for f in spec.features if f.type == "categorical"]
        means: list[float] = []
        stds: list[float] = []
        for name in numerical:
            x = _as_float(_column(frame, name, len(frame)), name)
            finite = x[np.isfinite(x)]
            means.append(float(finite.mean()) if finite.size else 0.0)
            stds.append(float(finite.std()) if finite.size > 1 else 1.0)
        vocabularies: dict[str, list[str]] = {}
        for name in categorical:
            counts = pd.Series(_as_objects(_column(frame, name, len(frame)))).value_counts(
                dropna=True
            )
            keyed: dict[str, int] = {}
            for value, count in counts.items():  # one step per distinct value, not per row
                key = canonical_key(value)
                if key is not None:
                    keyed[key] = keyed.get(key, 0) + int(count)
            ranked = sorted(keyed, key=lambda k: (-keyed[k], k))[:max_categories]
            vocabularies[name] = sorted(ranked)
        return cls(numerical, categorical, means, stds, vocabularies)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding sizes: the vocabulary plus the missing/unseen slot 0."""
        return [len(self.vocabularies[n]) + 1 for n in self.categorical]

    def __post_init__(self) -> None:
        self._mean_arr = np.asarray(self.means, dtype=np.float64)
        self._std_arr = np.maximum(np.asarray(self.stds, dtype=np.float64), _STD_FLOOR)

    def _lookup(self, name: str) -> _Lookup:
        lookup = self._lookups.get(name)
        if lookup is None:
            lookup = self._lookups[name] = _Lookup(self.vocabularies[name])
        return lookup

    def transform(self, columns: Mapping[str, Any] | pd.DataFrame) -> EncodedFeatures:
        n = _length(columns)
        xs = [_as_float(_column(columns, name, n), name) for name in self.numerical]
        for name, x in zip(self.numerical, xs, strict=True):
            if x.shape != (n,):
                raise EncodingError(f"feature {name!r}: expected one number per row")
        if xs:
            z = (np.stack(xs, axis=1) - self._mean_arr) / self._std_arr
            num = np.where(np.isfinite(z), z, 0.0).astype(np.float32)
        else:
            num = np.zeros((n, 0), dtype=np.float32)
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, name in enumerate(self.categorical):
            values = _as_objects(_column(columns, name, n))
            if values.shape != (n,):
                raise EncodingError(
                    f"feature {name!r}: expected {n} values, got shape {values.shape}"
                )
            try:
                cat[:, j] = self._lookup(name)(values)
            except TypeError as e:  # a list or object where a category belongs
                raise EncodingError(f"feature {name!r}: expected scalar values ({e})") from e
        return EncodedFeatures(num, cat)

    def to_dict(self) -> dict[str, Any]:
        return {
            "numerical": [
                {"name": n, "mean": m, "std": s}
                for n, m, s in zip(self.numerical, self.means, self.stds, strict=True)
            ],
            "categorical": [
                {"name": n, "vocabulary": self.vocabularies[n]} for n in self.categorical
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        num = data["numerical"]
        cat = data["categorical"]
        return cls(
            numerical=[e["name"] for e in num],
            categorical=[e["name"] for e in cat],
            means=[float(e["mean"]) for e in num],
            stds=[float(e["std"]) for e in num],
            vocabularies={e["name"]: [str(k) for k in e["vocabulary"]] for e in cat},
        )


@dataclass
class LabelEncoder:
    """Class labels -> class indices, or a standardised regression target."""

    task: str  # "class" | "regression"
    classes: list[str] = field(default_factory=list)
    positive_index: int | None = None  # the positive class (binary probability outputs)
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, labels: pd.Series, spec: ModelSpec) -> LabelEncoder:
        task = spec.target.type if spec.target is not None else "class"
        if task == "regression":
            y = _as_float(labels, "label")
            finite = y[np.isfinite(y)]
            if finite.size < 2:
                raise EncodingError("the label column has fewer than 2 numeric values")
            return cls("regression", mean=float(finite.mean()), std=float(finite.std()) or 1.0)
        keys = {canonical_key(v) for v in pd.unique(_as_objects(labels))} - {None}
        if len(keys) < 2:
            raise EncodingError(
                f"the label column has {len(keys)} distinct class(es); a classifier needs 2 or more"
            )
        classes = sorted(keys, key=lambda k: (not _INT.match(k), int(k) if _INT.match(k) else 0, k))
        positive = canonical_key(spec.target.positive_label) if spec.target is not None else "1"
        pos_index = classes.index(positive) if positive in classes else None
        if pos_index is None and len(classes) == 2:
            pos_index = 1
        return cls("class", classes=classes, positive_index=pos_index)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "class" else 1

    def transform(self, labels: Any) -> np.ndarray:
        """Class index per row (-1: missing or unknown class) or standardised value (NaN)."""
        if self.task == "regression":
            return ((_as_float(labels, "label") - self.mean) / self.std).astype(np.float32)
        return _Lookup(self.classes)(_as_objects(labels)) - 1

    def to_dict(self) -> dict[str, Any]:
        if self.task == "regression":
            return {"task": "regression", "mean": self.mean, "std": self.std}
        return {"task": "class", "classes": self.classes, "positive_index": self.positive_index}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelEncoder:
        if data["task"] == "regression":
            return cls("regression", mean=float(data["mean"]), std=float(data["std"]))
        return cls("class", classes=list(data["classes"]), positive_index=data["positive_index"])
