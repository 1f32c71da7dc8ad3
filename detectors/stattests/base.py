"""The one shape every drift test has.

A test is a small object: its hyper-parameters (threshold, and for some tests an option)
are set in ``__init__``; calling it with the two column summaries returns a `TestResult`.
Class attributes describe it once: the Evidently registry name, the column types Evidently
lets a user force it on, the default threshold, whether the score is a p-value or a
distance, and the comparison that turns score and threshold into a verdict (Evidently's
direction for that test, strict or not).
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from detectors.profile import Sample

__all__ = ["ColumnType", "ScoreKind", "StatTest", "TestResult"]

ColumnType = Literal["numerical", "categorical"]
ScoreKind = Literal["p_value", "distance"]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class TestResult:
    """One test on one column. `statistic` is the statistic behind a p-value (KS D,
    chi-square, z, ...); `effect_size` is filled when asked for (see `StatTest.effect`)."""

    __test__ = False  # not a pytest class

    test: str
    score: float
    threshold: float
    drift_detected: bool
    statistic: float | None = None
    effect_size: float | None = None
    effect_size_measure: str | None = None


class StatTest(ABC):
    """Base of all drift tests; subclasses set the class attributes and `score`."""

    __test__ = False  # not a pytest class

    name: ClassVar[str]
    display_name: ClassVar[str]  # Evidently's display name for the same test
    column_types: ClassVar[frozenset[str]]  # types Evidently accepts when forced by name
    default_threshold: ClassVar[float] = 0.05
    score_kind: ClassVar[ScoreKind]
    direction: ClassVar[str]  # drift when `score <direction> threshold`
    effect_size_measure: ClassVar[str | None] = None

    def __init__(self, threshold: float | None = None):
        self.threshold = self.default_threshold if threshold is None else float(threshold)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold!r})"

    @abstractmethod
    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        """(score, statistic) for two non-empty samples."""

    def effect(self, reference: Sample, current: Sample, column_type: ColumnType) -> float | None:
        """An effect size to report next to a p-value; distances are their own effect size."""
        return None

    def detected(self, score: float) -> bool:
        """Evidently's verdict for this test (a NaN score never drifts)."""
        return bool(_COMPARE[self.direction](score, self.threshold))

    def __call__(
        self,
        reference: Sample,
        current: Sample,
        column_type: ColumnType,
        *,
        effect_size: bool = False,
    ) -> TestResult:
        # Extreme values (near 1e308) overflow to inf/NaN scores, as in Evidently; that is
        # the result, not something to warn about.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            score, statistic = self.score(reference, current, column_type)
            score = float(score)
            effect = self.effect(reference, current, column_type) if effect_size else None
        return TestResult(
            test=self.name,
            score=score,
            threshold=self.threshold,
            drift_detected=self.detected(score),
            statistic=None if statistic is None else float(statistic),
            effect_size=None if effect is None else float(effect),
            effect_size_measure=self.effect_size_measure if effect is not None else None,
        )
