"""Normed Wasserstein distance (Evidently ``wasserstein``): W1 / reference sd, drift when >= 0.1.

The sd is the reference's population sd (floored at 0.001), computed once in the profile.
"""

from __future__ import annotations

from detectors.profile import Sample
from detectors.stattests._shared import wasserstein1
from detectors.stattests.base import ColumnType, StatTest


class Wasserstein(StatTest):
    name = "wasserstein"
    display_name = "Wasserstein distance (normed)"
    column_types = frozenset({"numerical"})
    default_threshold = 0.1
    score_kind = "distance"
    direction = ">="

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        norm = max(reference.std, 0.001)
        w = wasserstein1(reference.values, current.values)
        return w / norm, w
