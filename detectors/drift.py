"""Per-column and dataset drift, with Evidently 0.7's defaults and opt-in sounder options.

With a default `DriftConfig` the result is what Evidently 0.7's ``DataDriftPreset`` gives
on the same data (see docs/statistics.md): the same column types (inferred from the
*current* data, as Evidently does, unless the caller fixes them), the same test per column
type and reference size, the same score, threshold and verdict, and the same dataset
verdict (share of drifted columns >= `drift_share`). Every option that departs from
Evidently is off by default.

Pure: summaries in, results out. `DriftDetector` keeps one mergeable window per column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors._parallel import parallel_map
from detectors.fdr import benjamini_hochberg
from detectors.profile import ColumnProfile, ReferenceProfile, dtype_family
from detectors.stattests import STATTESTS, StatTest, TestResult, get_stattest
from detectors.stattests._shared import n_distinct_union

if TYPE_CHECKING:  # calibration.py imports this module
    from detectors.calibration import Calibration

if TYPE_CHECKING:
    import pandas as pd

    from detectors.column_window import ColumnWindow

__all__ = [
    "ColumnDrift",
    "ColumnMismatchError",
    "DatasetDrift",
    "DriftConfig",
    "DriftConfigError",
    "DriftDetector",
    "column_drift",
    "column_drifts",
    "combine_drifts",
    "compute_drift",
    "dataset_drift",
    "default_test_name",
]

COLUMN_TYPES = ("numerical", "categorical")
# Evidently 0.7 (stattests/registry.py _get_default_stattest): a reference of at most this
# many rows (after dropping missing values) gets the "small sample" tests.
SMALL_REFERENCE_ROWS = 1000


class DriftConfigError(ValueError):
    """Options that cannot work: unknown test, test not valid for the column type, ..."""


class ColumnMismatchError(ValueError):
    """Reference and current data disagree: a missing column, or a type clash."""


@dataclass(frozen=True)
class DriftConfig:
    """How drift is computed. Defaults reproduce Evidently 0.7's data-drift preset.

    Tests and thresholds (Evidently's precedence: per column > per type > all):
      numerical_test / categorical_test: registry name, or None for Evidently's choice.
      threshold: one threshold for every column (None: each test's default).
      per_column_test / per_column_threshold: overrides for single columns.
      drift_share: dataset drift when at least this share of tested columns drifted.

    Sounder options (all off by default; docs/statistics.md says when to use each):
      fdr_alpha: Benjamini-Hochberg across the p-value tests of all columns at this level;
        their verdicts then come from the adjusted p-values (reported as ``p_adjusted``).
      min_rows: a column with fewer finite values than this on either side gets no verdict
        (status ``insufficient_data``) and is left out of the dataset share.
      effect_size: report an effect size next to every p-value (KS D for numerical tests,
        Cramér's V for categorical ones).
      missing_share_drift: also flag a column whose missing-value share moved by at least
        `missing_share_min_change` with a two-proportion z-test p < `missing_share_alpha`.
      unseen_category_drift: also flag a categorical column whose share of current rows in
        categories the reference never saw is at least `unseen_share_min` and above what
        sampling explains (one-sided binomial test against the reference's Good-Turing
        unseen mass, p < `unseen_alpha`).
      chisquare_min_expected: chi-square becomes the 2 x k test of homogeneity with rare
        categories pooled until every expected count reaches this value.
      calibration: thresholds calibrated on the reference (`detectors.calibration`): a
        calibrated column uses the calibrated test and its threshold for the window's size;
        a per-column threshold still wins.
    """

    numerical_test: str | None = None
    categorical_test: str | None = None
    threshold: float | None = None
    per_column_test: Mapping[str, str] = field(default_factory=dict)
    per_column_threshold: Mapping[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    fdr_alpha: float | None = None
    min_rows: int = 0
    effect_size: bool = False
    missing_share_drift: bool = False
    missing_share_min_change: float = 0.01
    missing_share_alpha: float = 0.05
    unseen_category_drift: bool = False
    unseen_share_min: float = 0.01
    unseen_alpha: float = 0.05
    chisquare_min_expected: float | None = None
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        names = [self.numerical_test, self.categorical_test, *self.per_column_test.values()]
        for name in names:
            if name is not None and name not in STATTESTS:
                raise DriftConfigError(
                    f"unknown drift test {name!r}; known tests: {', '.join(sorted(STATTESTS))}"
                )
        for label, name, ctype in (
            ("numerical_test", self.numerical_test, "numerical"),
            ("categorical_test", self.categorical_test, "categorical"),
        ):
            if name is not None and ctype not in STATTESTS[name].column_types:
                raise DriftConfigError(f"{label}: test {name!r} does not apply to {ctype} columns")
        if not 0.0 <= self.drift_share <= 1.0:
            raise DriftConfigError("drift_share must be between 0 and 1")
        if self.fdr_alpha is not None and not 0.0 < self.fdr_alpha < 1.0:
            raise DriftConfigError("fdr_alpha must be between 0 and 1")
        if self.min_rows < 0:
            raise DriftConfigError("min_rows must be >= 0")
        if self.chisquare_min_expected is not None and self.chisquare_min_expected <= 0:
            raise DriftConfigError("chisquare_min_expected must be > 0")

    @property
    def extras(self) -> tuple[str, ...]:
        """Result keys beyond Evidently's six that the enabled options add."""
        keys: list[str] = []
        if self.min_rows:
            keys += ["status", "n_reference", "n_current"]
        if self.effect_size:
            keys += ["effect_size", "effect_size_measure"]
        if self.fdr_alpha is not None:
            keys += ["p_adjusted"]
        if self.missing_share_drift or self.unseen_category_drift:
            keys += ["distribution_drift"]
        if self.missing_share_drift:
            keys += ["missing_share_reference", "missing_share_current", "missing_share_drift"]
        if self.unseen_category_drift:
            keys += ["unseen_share", "unseen_category_drift"]
        return tuple(keys)

    def test_for(self, column: str, column_type: str) -> str | None:
        forced = self.per_column_test.get(column)
        if forced is None:
            forced = self.numerical_test if column_type == "numerical" else self.categorical_test
        return forced

    def threshold_for(self, column: str) -> float | None:
        return self.per_column_threshold.get(column, self.threshold)


@dataclass(frozen=True)
class ColumnDrift:
    """The drift result of one column. `score` is None when the column got no verdict."""

    column: str
    type: str
    test: str
    score: float | None
    threshold: float
    drift_detected: bool
    status: str = "ok"  # "ok" or "insufficient_data"
    n_reference: int = 0
    n_current: int = 0
    statistic: float | None = None
    effect_size: float | None = None
    effect_size_measure: str | None = None
    p_adjusted: float | None = None
    distribution_drift: bool = False
    missing_share_reference: float | None = None
    missing_share_current: float | None = None
    missing_share_drift: bool | None = None
    unseen_share: float | None = None
    unseen_category_drift: bool | None = None

    @property
    def tested(self) -> bool:
        return self.status == "ok"

    def to_dict(self, extras: Iterable[str] = ()) -> dict[str, Any]:
        """Evidently's six keys, then the extra keys named (see `DriftConfig.extras`)."""
        out: dict[str, Any] = {
            "column": self.column,
            "type": self.type,
            "test": self.test,
            "score": _finite_or_none(self.score),
            "threshold": self.threshold,
            "drift_detected": self.drift_detected,
        }
        for key in extras:
            value = getattr(self, key)
            out[key] = _finite_or_none(value) if isinstance(value, float) else value
        return out


@dataclass(frozen=True)
class DatasetDrift:
    """Every column's result and the dataset verdict."""

    columns: tuple[ColumnDrift, ...]
    drift_share: float  # share of tested columns that drifted
    dataset_drift: bool
    share_threshold: float
    skipped: Mapping[str, str] = field(default_factory=dict)  # column -> why not tested
    extras: tuple[str, ...] = ()

    @property
    def n_tested(self) -> int:
        return sum(1 for c in self.columns if c.tested)

    @property
    def n_drifted(self) -> int:
        return sum(1 for c in self.columns if c.tested and c.drift_detected)

    def __getitem__(self, column: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == column:
                return c
        raise KeyError(column)

    def to_dict(self) -> dict[str, Any]:
        """``{"dataset_drift", "drift_share", "columns": [...]}`` as DESIGN.md fixes it."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "columns": [c.to_dict(self.extras) for c in self.columns],
        }


def _finite_or_none(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


# --------------------------------------------------------------------------- one column


def default_test_name(column_type: str, reference: ColumnProfile, current: ColumnProfile) -> str:
    """Evidently 0.7's choice: by column type, reference size and distinct values."""
    n_values = n_distinct_union(reference.sample, current.sample, cap=6)
    if reference.n <= SMALL_REFERENCE_ROWS:
        if column_type == "numerical" and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if column_type == "numerical":
        return "wasserstein" if n_values > 5 else "jensenshannon"
    return "jensenshannon"


def _check_kinds(
    name: str, column_type: str, reference: ColumnProfile, current: ColumnProfile
) -> None:
    if column_type == "numerical":
        for side, prof in (("reference", reference), ("current", current)):
            if prof.kind != "numeric":
                raise ColumnMismatchError(
                    f"column {name!r} is numerical but the {side} data holds {prof.dtype} values"
                )
    elif reference.kind != current.kind:
        raise ColumnMismatchError(
            f"column {name!r}: the reference holds {reference.dtype} values "
            f"but the current data holds {current.dtype} values"
        )


def _two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    from scipy import stats  # on use: scipy.stats adds about a second to start-up

    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / math.sqrt(var)
    return float(2 * stats.norm.sf(abs(z)))


def _missing_drift(
    config: DriftConfig, reference: ColumnProfile, current: ColumnProfile
) -> dict[str, Any]:
    m1, m2 = reference.missing_share, current.missing_share
    drift = False
    if reference.n_rows and current.n_rows and abs(m2 - m1) >= config.missing_share_min_change:
        p = _two_proportion_p(
            reference.n_missing, reference.n_rows, current.n_missing, current.n_rows
        )
        drift = p < config.missing_share_alpha
    return {
        "missing_share_reference": m1,
        "missing_share_current": m2,
        "missing_share_drift": drift,
    }


def _unseen_drift(
    config: DriftConfig, reference: ColumnProfile, current: ColumnProfile
) -> dict[str, Any]:
    r, c = reference.sample.as_counts(), current.sample.as_counts()
    if current.n == 0 or reference.n == 0:
        return {"unseen_share": None, "unseen_category_drift": False}
    from scipy import stats

    unseen_rows = int(c.counts[~c.index.isin(r.index)].sum())
    share = unseen_rows / current.n
    drift = False
    if unseen_rows and share >= config.unseen_share_min:
        # Good-Turing: the reference's categories seen once estimate the mass it never saw.
        singletons = int(np.count_nonzero(r.counts == 1))
        p0 = (singletons + 1) / (reference.n + 1)
        p = float(stats.binom.sf(unseen_rows - 1, current.n, p0))
        drift = p < config.unseen_alpha
    return {"unseen_share": share, "unseen_category_drift": drift}


def _make_test(config: DriftConfig, name: str, threshold: float | None) -> StatTest:
    if name == "chisquare":
        return get_stattest(name, threshold, min_expected=config.chisquare_min_expected)
    return get_stattest(name, threshold)


def column_drift(
    name: str,
    column_type: str,
    reference: ColumnProfile,
    current: ColumnProfile,
    config: DriftConfig,
) -> ColumnDrift:
    """Drift of one column, before any cross-column step (FDR)."""
    if column_type not in COLUMN_TYPES:
        raise DriftConfigError(f"column {name!r}: unknown column type {column_type!r}")
    _check_kinds(name, column_type, reference, current)
    forced = config.test_for(name, column_type)
    if forced is not None and column_type not in STATTESTS[forced].column_types:
        raise DriftConfigError(
            f"column {name!r}: test {forced!r} does not apply to {column_type} columns"
        )
    cal = config.calibration.columns.get(name) if config.calibration is not None else None
    if cal is not None and name in config.per_column_threshold:
        cal = None
    if cal is not None:
        forced = forced or cal.test
        threshold: float | None = cal.threshold_at(current.n)
    else:
        threshold = config.threshold_for(name)
    common: dict[str, Any] = {
        "column": name,
        "type": column_type,
        "n_reference": reference.n,
        "n_current": current.n,
    }
    if config.missing_share_drift:
        common.update(_missing_drift(config, reference, current))
    if config.unseen_category_drift and column_type == "categorical":
        common.update(_unseen_drift(config, reference, current))

    too_small = min(reference.n, current.n) < max(config.min_rows, 1)
    if too_small:
        test_name = forced or ("wasserstein" if column_type == "numerical" else "jensenshannon")
        test = _make_test(config, test_name, threshold)
        return ColumnDrift(
            test=test_name,
            score=None,
            threshold=test.threshold,
            drift_detected=False,
            status="insufficient_data",
            **common,
        )
    test_name = forced or default_test_name(column_type, reference, current)
    test = _make_test(config, test_name, threshold)
    result: TestResult = test(
        reference.sample, current.sample, column_type, effect_size=config.effect_size
    )
    extra_drift = bool(common.get("missing_share_drift")) or bool(
        common.get("unseen_category_drift")
    )
    return ColumnDrift(
        test=result.test,
        score=result.score,
        threshold=result.threshold,
        drift_detected=result.drift_detected or extra_drift,
        distribution_drift=result.drift_detected,
        statistic=result.statistic,
        effect_size=result.effect_size,
        effect_size_measure=result.effect_size_measure,
        **common,
    )


def _apply_fdr(results: list[ColumnDrift], config: DriftConfig) -> list[ColumnDrift]:
    alpha = config.fdr_alpha
    idx = [
        i
        for i, r in enumerate(results)
        if r.tested and r.score is not None and STATTESTS[r.test].score_kind == "p_value"
    ]
    if alpha is None or not idx:
        return results
    rejected, adjusted = benjamini_hochberg(np.array([results[i].score for i in idx]), alpha)
    out = list(results)
    for i, rej, adj in zip(idx, rejected, adjusted, strict=True):
        r = results[i]
        distribution = bool(rej)
        extra = bool(r.missing_share_drift) or bool(r.unseen_category_drift)
        out[i] = replace(
            r,
            threshold=alpha,
            p_adjusted=float(adj),
            distribution_drift=distribution,
            drift_detected=distribution or extra,
        )
    return out


# --------------------------------------------------------------------------- dataset


def dataset_drift(
    reference: ReferenceProfile,
    current: Mapping[str, ColumnProfile],
    config: DriftConfig | None = None,
    *,
    column_types: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    workers: int = 1,
) -> DatasetDrift:
    """Drift of every column of `current` (or of `columns`) against `reference`, with the
    columns spread over `workers` threads.

    A column's type comes from `column_types` when given, else from the current data by
    Evidently's rules; text and unknown columns are skipped (reported in `skipped`).
    """
    config = config or DriftConfig()
    results, skipped = column_drifts(
        reference, current, config, column_types=column_types, columns=columns, workers=workers
    )
    return combine_drifts(results, skipped, config)


def column_drifts(
    reference: ReferenceProfile,
    current: Mapping[str, ColumnProfile],
    config: DriftConfig,
    *,
    column_types: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    workers: int = 1,
) -> tuple[list[ColumnDrift], dict[str, str]]:
    """The per-column half of `dataset_drift`: (results before the dataset-level false
    discovery rate, skipped columns). Columns may come in groups: `combine_drifts` of all
    the groups' results is `dataset_drift` of all the columns."""
    column_types = column_types or {}
    names = list(columns) if columns is not None else list(current)
    todo: list[tuple[str, str]] = []
    skipped: dict[str, str] = {}
    for name in names:
        if name not in current:
            raise ColumnMismatchError(f"column {name!r} is missing from the current data")
        if name not in reference:
            why = reference.skipped.get(name)
            if why:
                skipped[name] = why
                continue
            raise ColumnMismatchError(f"column {name!r} is missing from the reference data")
        cur = current[name]
        ctype = column_types.get(name) or cur.evidently_type
        if ctype not in COLUMN_TYPES:
            skipped[name] = f"{ctype} column (not drift-tested)"
            continue
        todo.append((name, ctype))
    results = parallel_map(
        lambda nt: column_drift(nt[0], nt[1], reference[nt[0]], current[nt[0]], config),
        todo,
        workers,
    )
    return list(results), skipped


def combine_drifts(
    results: Sequence[ColumnDrift], skipped: Mapping[str, str], config: DriftConfig
) -> DatasetDrift:
    """The dataset's verdict from every column's: false discovery rate across all of them
    (when configured), drift share, dataset drift."""
    results = _apply_fdr(list(results), config)
    tested = [r for r in results if r.tested]
    share = sum(r.drift_detected for r in tested) / len(tested) if tested else 0.0
    return DatasetDrift(
        columns=tuple(results),
        drift_share=share,
        dataset_drift=bool(tested) and share >= config.drift_share,
        share_threshold=config.drift_share,
        skipped=dict(skipped),
        extras=config.extras,
    )


class DriftDetector:
    """Drift of a stream of batches against a reference profile, one window at a time.

    ``update(batch)`` adds rows (a DataFrame or a mapping column -> values) and returns
    self; ``a += b`` merges the window of another detector (another partition or replica);
    `result` is the drift of the rows seen since the last `_reset`.
    """

    def __init__(
        self,
        reference: ReferenceProfile,
        config: DriftConfig | None = None,
        *,
        column_types: Mapping[str, str] | None = None,
        columns: Sequence[str] | None = None,
        workers: int = 1,
    ):
        self.reference = reference
        self.workers = workers
        self.config = config or DriftConfig()
        self.column_types = dict(column_types or {})
        self.columns = list(columns) if columns is not None else None
        self._reset()

    def _reset(self) -> None:
        self._windows: dict[str, ColumnWindow] = {}
        self._skipped: dict[str, str] = {}
        self._n_rows = 0
        self._result: DatasetDrift | None = None

    def update(self, batch: pd.DataFrame | Mapping[str, Any]) -> DriftDetector:
        # Windows load pandas; one-shot summaries (`dataset_drift` of two profiles) do not.
        from detectors.column_window import ColumnWindow

        names = self.columns if self.columns is not None else list(batch.keys())
        n_rows = None
        for name in names:
            if name not in batch:
                raise ColumnMismatchError(f"column {name!r} is missing from the current data")
            values = batch[name]
            if (
                self.columns is None
                and name not in self._windows
                and dtype_family(values) == "datetime"
            ):
                self._skipped[name] = "datetime column (not drift-tested)"
                continue
            window = self._windows.get(name)
            if window is None:
                window = self._windows[name] = ColumnWindow(name)
            window.update(values)
            n_rows = window.n_rows
        if n_rows is not None:
            self._n_rows = n_rows
        self._result = None
        return self

    def __iadd__(self, other: DriftDetector) -> DriftDetector:
        from detectors.column_window import ColumnWindow

        for name, window in other._windows.items():
            mine = self._windows.get(name)
            if mine is None:
                mine = self._windows[name] = ColumnWindow(name)
            mine += window
        self._skipped.update(other._skipped)
        self._n_rows += other._n_rows
        self._result = None
        return self

    @property
    def n_rows(self) -> int:
        return self._n_rows

    @property
    def current(self) -> dict[str, ColumnProfile]:
        """The window's column summaries."""
        windows = list(self._windows.values())
        profiles = parallel_map(lambda w: w.profile, windows, self.workers)
        return {w.name: p for w, p in zip(windows, profiles, strict=True)}

    @property
    def result(self) -> DatasetDrift:
        if self._result is None:
            res = dataset_drift(
                self.reference,
                self.current,
                self.config,
                column_types=self.column_types,
                columns=[n for n in (self.columns or self._windows) if n in self._windows],
                workers=self.workers,
            )
            if self._skipped:
                res = DatasetDrift(
                    columns=res.columns,
                    drift_share=res.drift_share,
                    dataset_drift=res.dataset_drift,
                    share_threshold=res.share_threshold,
                    skipped={**self._skipped, **res.skipped},
                    extras=res.extras,
                )
            self._result = res
        return self._result


def compute_drift(
    reference: ReferenceProfile | pd.DataFrame | Mapping[str, Any],
    current: pd.DataFrame | Mapping[str, Any],
    config: DriftConfig | None = None,
    *,
    column_types: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    workers: int = 1,
) -> DatasetDrift:
    """One-shot drift of `current` against `reference` (a profile or the raw data)."""
    if not isinstance(reference, ReferenceProfile):
        reference = ReferenceProfile.from_frame(reference, workers=workers)
    detector = DriftDetector(
        reference, config, column_types=column_types, columns=columns, workers=workers
    )
    return detector.update(current).result
