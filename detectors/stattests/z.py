"""Two-proportion Z-test (Evidently ``z``): p-value, drift when p < threshold (strict).

The smallest value (in sorted order) is one class, every other value the other; the test
compares that class's share in reference and current with the pooled standard error.
"""

from __future__ import annotations

import numpy as np

from detectors.profile import Sample
from detectors.stattests._shared import aligned_counts, cramers_v
from detectors.stattests.base import ColumnType, StatTest


class ZTest(StatTest):
    name = "z"
    display_name = "Z-test p_value"
    column_types = frozenset({"categorical"})
    default_threshold = 0.05
    score_kind = "p_value"
    direction = "<"
    effect_size_measure = "cramers_v"

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        from scipy import stats  # on use: scipy.stats adds about a second to start-up

        r, c = reference.as_counts(), current.as_counts()
        if r.n_unique == 1 and c.n_unique == 1 and r.keys[0] == c.keys[0]:
            return 1.0, 0.0
        keys = sorted(set(r.keys.tolist()) | set(c.keys.tolist()))
        first = keys[0]
        n1, n2 = r.n, c.n
        # share of rows that are NOT the first key (Evidently maps first -> 0, others -> 1)
        p1 = float(n1 - int(r.counts_of(np.array([first], dtype=object))[0])) / n1
        p2 = float(n2 - int(c.counts_of(np.array([first], dtype=object))[0])) / n2
        pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
        return float(2 * (1 - stats.norm.cdf(np.abs(z)))), float(z)

    def effect(self, reference: Sample, current: Sample, column_type: ColumnType) -> float | None:
        _, r_counts, c_counts = aligned_counts(reference, current)
        return cramers_v(r_counts, c_counts)
