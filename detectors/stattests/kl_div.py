"""Kullback-Leibler divergence KL(reference || current) (Evidently ``kl_div``), drift when >= 0.1.

Same bins and zero filling as PSI; ``scipy.stats.entropy`` renormalises the shares.
"""

from __future__ import annotations

import numpy as np

from detectors.profile import Sample
from detectors.stattests._shared import binned_shares, rel_entr
from detectors.stattests.base import ColumnType, StatTest


class KLDiv(StatTest):
    name = "kl_div"
    display_name = "Kullback-Leibler divergence"
    column_types = frozenset({"numerical", "categorical"})
    default_threshold = 0.1
    score_kind = "distance"
    direction = ">="

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        p, q = binned_shares(reference, current, column_type, feel_zeroes=True)
        # scipy.stats.entropy(p, q), operation for operation (renormalised shares)
        q = q / np.sum(q)
        p = p / np.sum(p)
        return float(np.sum(rel_entr(p, q))), None
