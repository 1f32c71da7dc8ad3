"""Two-sample Kolmogorov-Smirnov test (Evidently ``ks``): p-value, drift when p <= threshold."""

from __future__ import annotations

import warnings

import numpy as np

from detectors.profile import Sample
from detectors.stattests._shared import ks_statistic
from detectors.stattests.base import ColumnType, StatTest

# scipy.stats.ks_2samp's method="auto": exact when both samples are at most this size.
EXACT_MAX_N = 10_000


def ks_pvalue(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(p-value, D) of ``scipy.stats.ks_2samp(a, b)`` for sorted `a`, `b`.

    Small samples go to scipy itself (its exact path); large ones use scipy's asymptotic
    formula on a D computed from the sorted arrays, so nothing is sorted again.
    """
    from scipy import stats  # on use: scipy.stats adds about a second to start-up

    n1, n2 = a.shape[0], b.shape[0]
    if max(n1, n2) <= EXACT_MAX_N:
        with warnings.catch_warnings():
            # scipy warns when the exact computation falls back to the asymptotic one;
            # the fallback is its documented behaviour (and Evidently's).
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(a, b)
        return float(res.pvalue), float(res.statistic)
    d = ks_statistic(a, b)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    p = float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))
    return p, d


class KS(StatTest):
    name = "ks"
    display_name = "K-S p_value"
    column_types = frozenset({"numerical"})
    default_threshold = 0.05
    score_kind = "p_value"
    direction = "<="
    effect_size_measure = "ks_d"

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        return ks_pvalue(reference.values, current.values)

    def effect(self, reference: Sample, current: Sample, column_type: ColumnType) -> float | None:
        return ks_statistic(reference.values, current.values)
