"""Population stability index (Evidently ``psi``): sum (p - q) ln(p / q), drift when >= 0.1.

Same bins as Jensen-Shannon; empty cells get a small share first (Evidently's
``feel_zeroes``: the smallest non-zero share / 1e6, or 1e-4).
"""

from __future__ import annotations

import numpy as np

from detectors.profile import Sample
from detectors.stattests._shared import binned_shares
from detectors.stattests.base import ColumnType, StatTest


class PSI(StatTest):
    name = "psi"
    display_name = "PSI"
    column_types = frozenset({"numerical", "categorical"})
    default_threshold = 0.1
    score_kind = "distance"
    direction = ">="

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        p, q = binned_shares(reference, current, column_type, feel_zeroes=True)
        return float(np.sum((p - q) * np.log(p / q))), None
