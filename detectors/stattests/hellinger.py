"""Hellinger distance (Evidently ``hellinger``), in [0, 1], drift when >= 0.1.

Categorical: sqrt(1 - sum sqrt(p q)) over categories. Numerical: the same over densities
of 'sturges' bins whose count comes from the number of *distinct* values of both samples
(Evidently bins the union of unique values, not the data), times the bin width.
"""

from __future__ import annotations

import math

import numpy as np

from detectors.profile import NumericSample, Sample
from detectors.stattests._shared import aligned_counts, histogram_counts, sturges_edges
from detectors.stattests.base import ColumnType, StatTest


def _sequential_sum(terms: np.ndarray) -> float:
    # Evidently adds the terms one by one in a Python loop; a cumulative sum adds in the
    # same order, so a nearly-1 sum (and so sqrt(1 - sum)) comes out the same.
    return float(np.cumsum(terms)[-1]) if terms.shape[0] else 0.0


def _distinct_union(reference: NumericSample, current: NumericSample) -> tuple[int, bool]:
    """Size of ``set(ref.unique()) | set(cur.unique())`` and whether numpy sees it as ints."""
    ru, cu = reference.uniques, current.uniques
    new = cu[~np.isin(cu, ru, assume_unique=True)]
    # The set keeps the reference's object for a value both sides hold, so the keys are all
    # integers when the reference is integer and every current-only value is too.
    integer = reference.integer and (current.integer or new.shape[0] == 0)
    return ru.shape[0] + new.shape[0], integer


class Hellinger(StatTest):
    name = "hellinger"
    display_name = "Hellinger distance"
    column_types = frozenset({"numerical", "categorical"})
    default_threshold = 0.1
    score_kind = "distance"
    direction = ">="

    def score(
        self, reference: Sample, current: Sample, column_type: ColumnType
    ) -> tuple[float, float | None]:
        if column_type == "categorical" or not isinstance(reference, NumericSample):
            _, r_counts, c_counts = aligned_counts(reference, current)
            p = r_counts / reference.n
            q = c_counts / current.n
            total = _sequential_sum(np.sqrt(p * q))
        else:
            n_keys, integer = _distinct_union(reference, current)
            lo = min(reference.min, current.min)
            hi = max(reference.max, current.max)
            bins = sturges_edges(n_keys, lo, hi, integer)
            db = np.array(np.diff(bins), float)
            r = histogram_counts(reference.values, bins)
            c = histogram_counts(current.values, bins)
            h1 = r / db / r.sum()
            h2 = c / db / c.sum()
            bin_width = (bins.max() - bins.min()) / (len(bins) - 1)
            total = _sequential_sum(np.sqrt(h1 * h2) * bin_width)
        total = float(np.clip(total, 0, 1))
        return math.sqrt(1 - total), None
