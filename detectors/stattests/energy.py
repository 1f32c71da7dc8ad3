"""Energy distance (Evidently ``ed``): scipy's energy distance, drift when > 0.1 (strict)."""

from __future__ import annotations

import math

from detectors.profile import Sample
from detectors.stattests._shared import cdf_distance
from detectors.stattests.base import ColumnType, StatTest


class EnergyDistance(StatTest):
    name = "ed"
    display_name = "Energy-distance"
    column_types = frozenset({"numerical"})
    default_threshold = 0.1
    score_kind = "distance"
    direction = ">"

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        return math.sqrt(2) * cdf_distance(2, reference.values, current.values), None
