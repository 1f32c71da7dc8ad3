"""Drift, data-quality and performance detectors: pure statistics and the streaming service.

The statistics core (no I/O besides a reference profile's save/load):

* `ReferenceProfile` / `ColumnProfile`: per-column summaries built once from reference data.
* `ColumnWindow`: mergeable window state of one column.
* `DriftConfig`, `DriftDetector`, `compute_drift`, `dataset_drift`, `column_drift`: drift
  with Evidently 0.7's defaults and opt-in sounder options.
* `get_stattest` / `STATTESTS`: the drift tests by Evidently registry name.
* `benjamini_hochberg`: false-discovery-rate control across features.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detectors.column_window import ColumnWindow
    from detectors.drift import (
        ColumnDrift,
        ColumnMismatchError,
        DatasetDrift,
        DriftConfig,
        DriftConfigError,
        DriftDetector,
        column_drift,
        compute_drift,
        dataset_drift,
        default_test_name,
    )
    from detectors.fdr import benjamini_hochberg
    from detectors.profile import (
        CategoryCounts,
        ColumnProfile,
        NumericSample,
        ProfileError,
        ReferenceProfile,
        summarize,
    )
    from detectors.stattests import (
        STATTESTS,
        StatTest,
        TestResult,
        UnknownStatTestError,
        get_stattest,
    )

# Public names are imported on first use (PEP 562), so that importing a light submodule
# (`detectors.service.settings`, `detectors.spec_options`) does not load numpy/scipy/pandas.
_LAZY: dict[str, str] = {
    "ColumnDrift": "detectors.drift",
    "ColumnMismatchError": "detectors.drift",
    "DatasetDrift": "detectors.drift",
    "DriftConfig": "detectors.drift",
    "DriftConfigError": "detectors.drift",
    "DriftDetector": "detectors.drift",
    "column_drift": "detectors.drift",
    "compute_drift": "detectors.drift",
    "dataset_drift": "detectors.drift",
    "default_test_name": "detectors.drift",
    "benjamini_hochberg": "detectors.fdr",
    "CategoryCounts": "detectors.profile",
    "ColumnProfile": "detectors.profile",
    "NumericSample": "detectors.profile",
    "ProfileError": "detectors.profile",
    "ReferenceProfile": "detectors.profile",
    "summarize": "detectors.profile",
    "STATTESTS": "detectors.stattests",
    "StatTest": "detectors.stattests",
    "TestResult": "detectors.stattests",
    "UnknownStatTestError": "detectors.stattests",
    "get_stattest": "detectors.stattests",
    "ColumnWindow": "detectors.column_window",
}

__all__ = [
    "STATTESTS",
    "CategoryCounts",
    "ColumnDrift",
    "ColumnMismatchError",
    "ColumnProfile",
    "ColumnWindow",
    "DatasetDrift",
    "DriftConfig",
    "DriftConfigError",
    "DriftDetector",
    "NumericSample",
    "ProfileError",
    "ReferenceProfile",
    "StatTest",
    "TestResult",
    "UnknownStatTestError",
    "benjamini_hochberg",
    "column_drift",
    "compute_drift",
    "dataset_drift",
    "default_test_name",
    "get_stattest",
    "summarize",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
