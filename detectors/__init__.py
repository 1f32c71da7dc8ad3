"""Drift, data-quality and performance detectors: pure statistics and the streaming service.

The statistics core (no I/O besides a reference profile's save/load):

* `ReferenceProfile` / `ColumnProfile`: per-column summaries built once from reference data.
* `ColumnWindow`: mergeable window state of one column.
* `DriftConfig`, `DriftDetector`, `compute_drift`, `dataset_drift`, `column_drift`: drift
  with Evidently 0.7's defaults and opt-in sounder options.
* `get_stattest` / `STATTESTS`: the drift tests by Evidently registry name.
* `benjamini_hochberg`: false-discovery-rate control across features.
"""

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
from detectors.stattests import STATTESTS, StatTest, TestResult, UnknownStatTestError, get_stattest
from detectors.window import ColumnWindow

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
