"""Computations several tests share: category alignment, binning, ECDF merges, effect sizes.

Everything works on summaries: sorted finite values (`NumericSample`) or value counts
(`CategoryCounts`). Where Evidently's result depends on an order (its category keys are a
Python ``set`` iterated in hash order; its bins are numpy's 'sturges' edges of the pooled
data) the same order and the same edges are reproduced, so sums run in the same order.
"""

from __future__ import annotations

import math

import numpy as np

from detectors.profile import CategoryCounts, NumericSample, Sample

# --------------------------------------------------------------------------- categories


def aligned_counts(reference: Sample, current: Sample) -> tuple[list, np.ndarray, np.ndarray]:
    """Keys in Evidently's order (``list(set(ref) | set(cur))``) with each side's counts."""
    r: CategoryCounts = reference.as_counts()
    c: CategoryCounts = current.as_counts()
    keys = list(set(r.keys.tolist()) | set(c.keys.tolist()))
    # A dict with the set's own equality (1 == 1.0 == True), so every key finds its slot.
    slot = {k: i for i, k in enumerate(keys)}
    r_pos = np.fromiter(map(slot.__getitem__, r.keys.tolist()), np.intp, r.keys.shape[0])
    c_pos = np.fromiter(map(slot.__getitem__, c.keys.tolist()), np.intp, c.keys.shape[0])
    r_counts = np.zeros(len(keys), dtype=np.int64)
    c_counts = np.zeros(len(keys), dtype=np.int64)
    np.add.at(r_counts, r_pos, r.counts)
    np.add.at(c_counts, c_pos, c.counts)
    return keys, r_counts, c_counts


def n_distinct_union(reference: Sample, current: Sample, cap: int) -> int:
    """``pd.concat([ref, cur]).nunique()``, exact up to `cap` (larger counts return `cap`)."""
    if isinstance(reference, NumericSample) and reference.count_distinct(cap) >= cap:
        return cap
    if isinstance(current, NumericSample) and current.count_distinct(cap) >= cap:
        return cap
    if reference.n_unique >= cap or current.n_unique >= cap:
        return cap
    if isinstance(reference, NumericSample) and isinstance(current, NumericSample):
        # at most 2 * cap values: a set, not np.union1d (whose np.unique loads numpy.ma)
        return min(cap, len(set(reference.uniques.tolist()) | set(current.uniques.tolist())))
    r, c = reference.as_counts(), current.as_counts()
    return min(cap, len(set(r.keys.tolist()) | set(c.keys.tolist())))


def cramers_v(r_counts: np.ndarray, c_counts: np.ndarray) -> float:
    """Cramér's V of the 2 x k table (reference, current) x categories; 0 = same shares."""
    table = np.vstack([r_counts, c_counts]).astype(np.float64)
    n = table.sum()
    col = table.sum(axis=0)
    keep = col > 0
    table, col = table[:, keep], col[keep]
    if table.shape[1] < 2:
        return 0.0
    expected = np.outer(table.sum(axis=1), col) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / n)


def _rel_entr1(x: float, y: float) -> float:
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x > 0 and y > 0:
        ratio = x / y
        if 0.5 < ratio < 2:
            return x * math.log1p((x - y) / y)
        return x * math.log(ratio)
    if x == 0 and y >= 0:
        return 0.0
    return math.inf


# Up to this many cells (categories or bins) `rel_entr` uses the C library's log, as scipy
# does, so results match scipy's to the bit; beyond, numpy's vectorised log (its last bit
# may round differently) keeps the cost linear at C speed.
REL_ENTR_EXACT_MAX = 65_536


def rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``scipy.special.rel_entr(x, y)``, branch for branch as scipy's kernel computes it
    (``x log1p((x - y) / y)`` when x / y is in (0.5, 2), else ``x log(x / y)``; 0 where
    x == 0 <= y; inf elsewhere; NaN in, NaN out), without importing scipy.special (a fifth
    of a second at start-up)."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    if x.size <= REL_ENTR_EXACT_MAX:
        flat = [
            _rel_entr1(a, b) for a, b in zip(x.ravel().tolist(), y.ravel().tolist(), strict=True)
        ]
        return np.array(flat, dtype=np.float64).reshape(x.shape)
    out = np.full(x.shape, np.inf)
    out[(x == 0) & (y >= 0)] = 0.0
    pos = (x > 0) & (y > 0)
    xp, yp = x[pos], y[pos]
    ratio = xp / yp
    near = (ratio > 0.5) & (ratio < 2)
    vals = np.empty(xp.shape[0])
    vals[near] = xp[near] * np.log1p((xp[near] - yp[near]) / yp[near])
    far = ~near
    vals[far] = xp[far] * np.log(ratio[far])
    out[pos] = vals
    out[np.isnan(x) | np.isnan(y)] = np.nan
    return out


# --------------------------------------------------------------------------- histograms


def sturges_edges(n: int, lo: float, hi: float, integer: bool) -> np.ndarray:
    """``np.histogram_bin_edges(data, bins="sturges")`` for data of size `n` in [lo, hi]."""
    first, last = lo, hi
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = (hi - lo) / (np.log2(n) + 1.0)
    if width:
        if integer and width < 1:
            width = 1
        n_bins = int(np.ceil((last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True, dtype=np.float64)


def histogram_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` from already sorted values (numpy's own method)."""
    cum = np.concatenate(
        (
            sorted_values.searchsorted(edges[:-1], "left"),
            sorted_values.searchsorted(edges[-1:], "right"),
        )
    )
    return np.diff(cum)


def _feel_zeroes(shares: np.ndarray) -> np.ndarray:
    nonzero_min = shares[shares != 0].min()
    fill = nonzero_min / 10**6 if nonzero_min <= 0.0001 else 0.0001
    np.place(shares, shares == 0, fill)
    return shares


def binned_shares(
    reference: Sample, current: Sample, column_type: str, *, feel_zeroes: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data``: shares per pooled 'sturges' bin for a numerical
    column whose reference has more than 20 distinct values, else shares per value.
    With `feel_zeroes`, empty cells get a small share (PSI and KL need it)."""
    if (
        column_type == "numerical"
        and isinstance(reference, NumericSample)
        and isinstance(current, NumericSample)
        and reference.count_distinct(21) > 20
    ):
        edges = sturges_edges(
            reference.n + current.n,
            min(reference.min, current.min),
            max(reference.max, current.max),
            reference.integer and current.integer,
        )
        p = histogram_counts(reference.values, edges) / reference.n
        q = histogram_counts(current.values, edges) / current.n
    else:
        _, r_counts, c_counts = aligned_counts(reference, current)
        p = r_counts / reference.n
        q = c_counts / current.n
    if feel_zeroes:
        p, q = _feel_zeroes(p), _feel_zeroes(q)
    return p, q


# --------------------------------------------------------------------------- ECDFs


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided KS D of two sorted samples, computed as ``scipy.stats.ks_2samp`` does."""
    data_all = np.concatenate([a, b])
    cddiffs = np.searchsorted(a, data_all, side="right") / a.shape[0]
    cddiffs -= np.searchsorted(b, data_all, side="right") / b.shape[0]
    min_s = np.clip(-cddiffs.min(), 0, 1)
    max_s = cddiffs.max()
    return float(min_s if min_s > max_s else max_s)


def cdf_distance(p: int, u: np.ndarray, v: np.ndarray) -> float:
    """scipy's ``_cdf_distance`` (p=1 Wasserstein, p=2 energy base) on sorted samples: the
    sorted pooled sample is a merge of two sorted runs, which a stable sort does in O(n)."""
    all_values = np.concatenate((u, v))
    all_values.sort(kind="stable")
    deltas = np.diff(all_values)
    u_cdf = u.searchsorted(all_values[:-1], "right") / u.shape[0]
    v_cdf = v.searchsorted(all_values[:-1], "right") / v.shape[0]
    if p == 1:
        return float(np.vecdot(np.abs(u_cdf - v_cdf), deltas))
    return float(np.sqrt(np.vecdot(np.square(u_cdf - v_cdf), deltas)))


def wasserstein1(u: np.ndarray, v: np.ndarray) -> float:
    """W1 between the empirical distributions of two sorted samples, without a pooled sort.

    W1 is the integral over t in [0, 1] of |Qu(t) - Qv(t)| for the quantile functions. Both
    are step functions with steps at i/n and j/m, so the integral is a sum over the merged
    steps, and the merge of two arithmetic sequences is known in closed form: the j-th step
    of v comes after floor(j n / m) steps of u. Integer step positions (scaled by n*m) keep
    the widths exact. Cost O(n + m), against O((n + m) log(n + m)) for scipy's pooled sort.
    """
    n, m = u.shape[0], v.shape[0]
    if n == m:
        return float(np.abs(u - v).mean())
    j = np.arange(1, m + 1, dtype=np.int64)
    pos_v = (j * n) // m + (j - 1)  # index of v's j-th step in the merged order
    is_v = np.zeros(n + m, dtype=bool)
    is_v[pos_v] = True
    steps = np.empty(n + m, dtype=np.int64)
    steps[pos_v] = j * n
    steps[~is_v] = np.arange(1, n + 1, dtype=np.int64) * m
    widths = np.diff(steps, prepend=0)
    # On the interval ending at merged step k, each quantile function sits at the index
    # "steps of that sample strictly before k" (ties put u first and give width 0).
    iv = np.cumsum(is_v) - is_v
    iu = np.arange(n + m) - iv
    np.minimum(iu, n - 1, out=iu)
    np.minimum(iv, m - 1, out=iv)
    return float(np.vecdot(np.abs(u[iu] - v[iv]), widths.astype(np.float64)) / (float(n) * m))
