"""Chi-square test (Evidently ``chisquare``): p-value, drift when p < threshold (strict).

Evidently's version (the default here) is a goodness-of-fit test of the current counts
against the reference *shares* taken as exact: expected = reference count x n_cur / n_ref,
no minimum expected count. It ignores that the reference is a sample too, so on undrifted
data its statistic is about (1 + n_cur / n_ref) times too large and it flags far more than
5 % of undrifted columns (docs/statistics.md has the measured rates); a category the
reference never saw gives statistic inf, p = 0.

`min_expected` switches to the sound version: Pearson's test of homogeneity on the
2 x k table (reference, current) x categories, which accounts for both samples, with the
rarest categories pooled into one cell until every expected count is at least
`min_expected` (5 is the textbook rule). Unseen categories join the pooled cell.
"""

from __future__ import annotations

import numpy as np

from detectors.profile import Sample
from detectors.stattests._shared import aligned_counts, cramers_v
from detectors.stattests.base import ColumnType, StatTest


def evidently_chisquare(r_counts: np.ndarray, c_counts: np.ndarray) -> tuple[float, float]:
    """(p, statistic) as ``scipy.stats.chisquare(f_obs=cur, f_exp=ref * n_cur / n_ref)``."""
    from scipy import stats  # on use: scipy.stats adds about a second to start-up

    k_norm = c_counts.sum() / r_counts.sum()
    f_exp = r_counts * k_norm
    f_obs = c_counts.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = float(((f_obs - f_exp) ** 2 / f_exp).sum())
    p = float(stats.chi2.sf(stat, len(r_counts) - 1))
    return p, stat


def pooled_homogeneity(
    r_counts: np.ndarray, c_counts: np.ndarray, min_expected: float
) -> tuple[float, float]:
    """(p, statistic) of the 2 x k homogeneity test after pooling rare categories."""
    from scipy import stats

    totals = r_counts + c_counts
    n_r, n_c = float(r_counts.sum()), float(c_counts.sum())
    n = n_r + n_c
    # The smaller row has the smaller expected count in every column.
    min_exp = totals * (min(n_r, n_c) / n)
    order = np.argsort(totals, kind="stable")
    cum = np.cumsum(min_exp[order])
    # Pool the rarest categories: all those below the minimum, and then more until the
    # pooled cell itself reaches it.
    n_small = int(np.count_nonzero(min_exp < min_expected))
    if n_small:
        reach = int(np.searchsorted(cum, min_expected, side="left")) + 1
        n_pool = min(max(n_small, reach), order.shape[0])
        keep, pool = order[n_pool:], order[:n_pool]
        r = np.append(r_counts[keep], r_counts[pool].sum())
        c = np.append(c_counts[keep], c_counts[pool].sum())
    else:
        r, c = r_counts, c_counts
    if r.shape[0] < 2:
        return 1.0, 0.0  # everything pooled into one cell: nothing to compare
    table = np.vstack([r, c]).astype(np.float64)
    expected = np.outer([n_r, n_c], table.sum(axis=0)) / n
    stat = float(((table - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(stat, r.shape[0] - 1)), stat


class ChiSquare(StatTest):
    name = "chisquare"
    display_name = "chi-square p_value"
    column_types = frozenset({"categorical"})
    default_threshold = 0.05
    score_kind = "p_value"
    direction = "<"
    effect_size_measure = "cramers_v"

    def __init__(self, threshold: float | None = None, min_expected: float | None = None):
        super().__init__(threshold)
        self.min_expected = min_expected

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        _, r_counts, c_counts = aligned_counts(reference, current)
        if self.min_expected is None:
            return evidently_chisquare(r_counts, c_counts)
        return pooled_homogeneity(r_counts, c_counts, self.min_expected)

    def effect(self, reference: Sample, current: Sample, column_type: ColumnType) -> float | None:
        _, r_counts, c_counts = aligned_counts(reference, current)
        return cramers_v(r_counts, c_counts)
