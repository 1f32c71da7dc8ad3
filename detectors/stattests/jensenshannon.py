"""Jensen-Shannon distance (Evidently ``jensenshannon``): natural log, drift when >= 0.1.

Shares per category (or per pooled 'sturges' bin for a numerical column whose reference
has more than 20 distinct values), no smoothing; the maximum is sqrt(ln 2) ~ 0.833.
"""

from __future__ import annotations

import numpy as np

from detectors.profile import Sample
from detectors.stattests._shared import binned_shares, rel_entr
from detectors.stattests.base import ColumnType, StatTest


class JensenShannon(StatTest):
    name = "jensenshannon"
    display_name = "Jensen-Shannon distance"
    column_types = frozenset({"numerical", "categorical"})
    default_threshold = 0.1
    score_kind = "distance"
    direction = ">="

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        p, q = binned_shares(reference, current, column_type, feel_zeroes=False)
        return jensenshannon(p, q), None


def jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    """``scipy.spatial.distance.jensenshannon(p, q)`` (natural log), operation for operation,
    without importing scipy.spatial and scipy.stats."""
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2.0
    js = np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))
    return float(np.sqrt(js / 2.0))
