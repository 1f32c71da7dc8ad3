"""k-sample Anderson-Darling test (Evidently ``anderson``): p-value, drift when p < 0.1.

scipy's ``anderson_ksamp`` with midranks, as Evidently calls it. Its p-value is
interpolated from a table and so clipped to [0.001, 0.25]. This test pools and sorts both
samples on every call (O(N log N)); prefer ``ks`` or ``cramer_von_mises`` on big windows.
"""

from __future__ import annotations

import warnings

from detectors.profile import Sample
from detectors.stattests._shared import ks_statistic
from detectors.stattests.base import ColumnType, StatTest


class AndersonDarling(StatTest):
    name = "anderson"
    display_name = "Anderson-Darling"
    column_types = frozenset({"numerical"})
    default_threshold = 0.1
    score_kind = "p_value"
    direction = "<"
    effect_size_measure = "ks_d"

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        if reference.min == reference.max == current.min == current.max:
            return 1.0, None  # one value on both sides: identical (scipy and Evidently raise)
        from scipy import stats  # on use: scipy.stats adds about a second to start-up

        with warnings.catch_warnings():
            # "p-value capped/floored": the table's documented limits, already in the result
            warnings.simplefilter("ignore", UserWarning)
            res = stats.anderson_ksamp([reference.values, current.values], variant="midrank")
        return float(res.pvalue), float(res.statistic)

    def effect(self, reference: Sample, current: Sample, column_type: ColumnType) -> float | None:
        return ks_statistic(reference.values, current.values)
