"""Per-column drift tests, one module per test, by Evidently's registry names."""

from detectors.stattests.base import ColumnType, ScoreKind, StatTest, TestResult
from detectors.stattests.registry import STATTESTS, UnknownStatTestError, get_stattest

__all__ = [
    "STATTESTS",
    "ColumnType",
    "ScoreKind",
    "StatTest",
    "TestResult",
    "UnknownStatTestError",
    "get_stattest",
]
