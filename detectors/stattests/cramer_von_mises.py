"""Two-sample Cramér-von Mises test (Evidently ``cramer_von_mises``): drift when p <= 0.1.

Evidently ships its own copy of the test (ranks with midranks for ties; exact p-value when
both samples have at most 20 values, else the asymptotic distribution); this module
reproduces it. Midranks come from the two sorted samples by binary search, so the pooled
sample is never sorted.
"""

from __future__ import annotations

import numpy as np

from detectors.profile import Sample
from detectors.stattests._shared import ks_statistic
from detectors.stattests.base import ColumnType, StatTest

EXACT_MAX_N = 20


def _midranks(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Average rank in the pooled sample (a + b) of each value of sorted `x` (x is a or b)."""
    below = a.searchsorted(x, "left") + b.searchsorted(x, "left")
    upto = a.searchsorted(x, "right") + b.searchsorted(x, "right")
    return 0.5 * (below + upto + 1)


def _cdf_cvm_inf(x: float) -> float:
    """CDF of the one-sample Cramér-von Mises statistic for infinite samples (Csörgő and
    Faraway 1996, eq. 1.2), summed until a term is below 1e-7, as Evidently does."""
    from scipy.special import gammaln, kv  # on use: a fifth of a second at start-up

    tot, k = 0.0, 0
    while True:
        u = np.exp(gammaln(k + 0.5) - gammaln(k + 1)) / (np.pi**1.5 * np.sqrt(x))
        y = 4 * k + 1
        q = y**2 / (16 * x)
        z = u * np.sqrt(y) * np.exp(-q) * kv(0.25, q)
        tot += z
        if abs(z) < 1e-7:
            return float(tot)
        k += 1


def cvm_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(p-value, T) of the two-sample test for sorted samples of at least 2 values each."""
    nx, ny = a.shape[0], b.shape[0]
    rx = _midranks(a, a, b)
    ry = _midranks(b, a, b)
    u = nx * np.sum((rx - np.arange(1, nx + 1)) ** 2)
    u += ny * np.sum((ry - np.arange(1, ny + 1)) ** 2)
    k, n = nx * ny, nx + ny
    t = u / (k * n) - (4 * k - 1) / (6 * n)
    if max(nx, ny) <= EXACT_MAX_N:
        from scipy import stats  # on use: scipy.stats adds about a second to start-up

        return float(stats.cramervonmises_2samp(a, b, method="exact").pvalue), float(t)
    et = (1 + 1 / n) / 6
    vt = (n + 1.0) * (4 * k * n - 3 * (nx**2 + ny**2) - 2 * k)
    vt = vt / (45 * n**2 * 4 * k)
    tn = 1 / 6 + (t - et) / np.sqrt(45 * vt)
    p = 1.0 if tn < 0.003 else max(0.0, 1.0 - _cdf_cvm_inf(tn))
    return float(p), float(t)


class CramerVonMises(StatTest):
    name = "cramer_von_mises"
    display_name = "Cramer-von Mises"
    column_types = frozenset({"numerical"})
    default_threshold = 0.1
    score_kind = "p_value"
    direction = "<="
    effect_size_measure = "ks_d"

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        if reference.n < 2 or current.n < 2:
            return float("nan"), None  # Evidently raises: the test needs 2 values per side
        return cvm_2samp(reference.values, current.values)

    def effect(self, reference: Sample, current: Sample, column_type: ColumnType) -> float | None:
        return ks_statistic(reference.values, current.values)
