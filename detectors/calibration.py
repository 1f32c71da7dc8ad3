"""Calibrated drift thresholds: each feature's threshold from its own reference.

Evidently's thresholds (normed Wasserstein >= 0.1, Jensen-Shannon >= 0.1, p < 0.05) are the
same for every column, window size and number of features, so a quiet day can be a day full
of red. Calibration asks the reference instead: how large does this test's score get between
a window-sized sample of the reference and the rest of it, when nothing drifted?

For one column and its test:

1. **Null scores by leave-chunk-out.** The column's reference values are shuffled and cut into
   chunks of `m = min(window, N // 2)` values; each chunk is compared with the rest of the
   reference (N - m values) by the very test the window will use, so the chunk is never
   compared with itself. `replicates` chunks in all (several shuffles when one gives too few).
   Label columns draw the chunk's counts from the multivariate hypergeometric law, which is
   the same thing without materialising rows.
2. **A size-free scale and a tail model.** Scores go to a scale `s` on which their null
   law does not depend on the sizes compared and whose tail is close to exponential:
   ``-ln p`` for p-values (exactly Exp(1) for a valid test), ``d^2 n_eff`` for distances
   (normed Wasserstein, Jensen-Shannon, Hellinger, energy), ``d n_eff`` for divergences (PSI,
   KL), with ``n_eff = n N / (n + N)``. Above the 80th percentile `u` of the null `s`, the
   excesses are fitted by a generalised Pareto law (peaks over threshold; moments, shape
   clipped to [0, 0.5], so light tails are exponential: ``u + sigma ln(0.2 / a)``), and its
   ``1 - a`` quantile is taken, never below the largest null score seen.
3. **The reference's own error.** A stream compares every window with one fixed reference,
   which is itself a sample: its deviation from the population is the same in every window,
   so a threshold right "on average over references" is wrong for a given one (measured: 6x
   the target rate at 1e-3 for an unlucky 20,000-row reference). The tests are distances (or
   monotone in one), so by the triangle inequality score(window, reference) <=
   score(window, population) + score(reference, population). The threshold is the window's
   part at ``1 - alpha`` plus the reference's part at ``1 - REFERENCE_LEVEL`` (0.99):
   on the root scale ``y = sqrt(s)``, ``y_alpha sqrt(n_eff / n) + y_ref sqrt(n_eff / N)``.
   This holds for any window size `n`, so one calibration serves windows of every size.
4. **The budget.** ``alpha = false_alarm_rate / (windows_per_day * n_features)`` (halved when
   sequential detection shares the budget): with at most `false_alarm_rate` of model-days
   having any false feature flag, the dataset verdict (which needs flags) is bounded too.

The scores of the default tests (and PSI and Evidently's chi-square) are computed for all
chunks at once by array kernels that equal the registered tests on the same (rest, chunk)
pair to rounding (a conformance test checks it); any other test runs the registered test on
each chunk. Pure: a profile in, a `Calibration` (plain JSON-able) out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy.special import rel_entr

from detectors._parallel import parallel_map
from detectors.profile import CategoryCounts, ColumnProfile, NumericSample, ReferenceProfile
from detectors.stattests import STATTESTS, get_stattest
from detectors.stattests._shared import sturges_edges

__all__ = [
    "CALIBRATION_VERSION",
    "Calibration",
    "CalibrationError",
    "CalibrationSettings",
    "ColumnCalibration",
    "calibrate",
    "null_scores",
    "score_scale",
]

CALIBRATION_VERSION = 1
#: Share of the null scores above the tail's start `u` (peaks over threshold).
TAIL_SHARE = 0.2
#: The reference's own sampling error is bounded at this quantile (the margin holds for
#: 99 % of references).
REFERENCE_LEVEL = 0.01
#: Largest generalised-Pareto shape fitted (0.5: tails as heavy as a t with 2 degrees of
#: freedom; more would let 40 excesses move a 1e-6 quantile by orders of magnitude).
MAX_SHAPE = 0.5
#: Smallest p-value kept on the -ln p scale (scipy returns 0.0 below ~1e-308).
_P_FLOOR = 1e-300
#: Divergences (t = d); every other distance has t = d^2, p-values t = -ln p.
_DIVERGENCES = frozenset({"psi", "kl_div"})


class CalibrationError(ValueError):
    """Settings that cannot work (rate outside (0, 1), too few replicates, ...)."""


@dataclass(frozen=True)
class CalibrationSettings:
    """What a calibration is for. Every field has a unit, a default and a reason.

    window_rows: rows per window (the spec's `window.rows`); the thresholds are for windows
      of this size and are rescaled for others.
    false_alarm_rate: share of model-days allowed any false feature flag (0.01: one day in
      a hundred, about three a year).
    windows_per_day: windows a model closes per day (288: one every 5 minutes).
    n_features: the family the budget is shared by (default: the columns calibrated).
    share: part of the budget the per-window thresholds get (0.5 when sequential
      detection takes the other half).
    replicates: null scores per column (200: 40 in the fitted tail; a few seconds for a
      100k-row, 30-column reference).
    seed: shuffles are seeded, so a calibration is reproducible.
    """

    window_rows: int
    false_alarm_rate: float = 0.01
    windows_per_day: float = 288.0
    n_features: int | None = None
    share: float = 1.0
    replicates: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window_rows < 1:
            raise CalibrationError("window_rows must be >= 1")
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise CalibrationError("false_alarm_rate must be between 0 and 1 (exclusive)")
        if self.windows_per_day <= 0:
            raise CalibrationError("windows_per_day must be > 0")
        if self.n_features is not None and self.n_features < 1:
            raise CalibrationError("n_features must be >= 1")
        if not 0.0 < self.share <= 1.0:
            raise CalibrationError("share must be in (0, 1]")
        if self.replicates < 20:
            raise CalibrationError("replicates must be >= 20")

    def alpha(self, n_columns: int) -> float:
        """Per-window, per-feature false-flag probability the thresholds are set at."""
        m = self.n_features or max(n_columns, 1)
        return self.false_alarm_rate * self.share / (self.windows_per_day * m)

    @property
    def key(self) -> str:
        """Identity of these settings (with the column tests: the profile's cache key)."""
        return json.dumps(asdict(self), sort_keys=True)


def score_scale(test: str) -> str:
    """How a test's score maps to the tail scale `t`: "p_value", "distance" or "divergence"."""
    if STATTESTS[test].score_kind == "p_value":
        return "p_value"
    return "divergence" if test in _DIVERGENCES else "distance"


def _to_s(test: str, scores: np.ndarray, n_eff: float) -> np.ndarray:
    """Scores on the size-free scale `s` (see the module docstring)."""
    kind = score_scale(test)
    x = np.asarray(scores, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if kind == "p_value":
            return -np.log(np.clip(x, _P_FLOOR, 1.0))
        if kind == "divergence":
            return np.maximum(x, 0.0) * n_eff
        return np.square(x) * n_eff


def _from_s(test: str, s: float, n_eff: float) -> float:
    kind = score_scale(test)
    if kind == "p_value":
        return float(math.exp(-s))
    if kind == "divergence":
        return float(s / n_eff)
    return float(math.sqrt(max(s, 0.0) / n_eff))


def _n_eff(n: float, big_n: float) -> float:
    return n * big_n / (n + big_n) if n > 0 and big_n > 0 else 0.0


@dataclass(frozen=True)
class ColumnCalibration:
    """One column's calibrated threshold, and its null law for the sequential detector.

    `null_s` are the sorted null scores on the size-free scale `s`; `u`, `sigma`, `xi` the
    fitted tail; `y_alpha` = sqrt of its 1 - alpha quantile (the window's share of the threshold),
    `y_ref` = sqrt of its 1 - REFERENCE_LEVEL quantile (the margin for the reference's own
    sampling error). `threshold` is in the test's own units for a window of `n_window`
    values against the `n_reference` reference values.
    """

    column: str
    type: str
    test: str
    alpha: float
    threshold: float
    y_alpha: float
    y_ref: float
    u: float
    sigma: float
    xi: float
    n_window: int
    n_chunk: int
    n_rest: int
    n_reference: int
    null_s: tuple[float, ...] = field(repr=False, default=())

    def _parts(self, n_current: int) -> tuple[float, float, float]:
        """(n_eff, window factor, reference margin) for a window of `n_current` values."""
        n = max(int(n_current), 1)
        n_eff = _n_eff(n, self.n_reference)
        return n_eff, math.sqrt(n_eff / n), self.y_ref * math.sqrt(n_eff / self.n_reference)

    def threshold_at(self, n_current: int) -> float:
        """The threshold for a window of `n_current` values: the window's deviation at its
        1 - alpha quantile plus the reference's at its 1 - REFERENCE_LEVEL quantile (both
        are distances to the population, so the triangle inequality bounds the score)."""
        n_eff, w, margin = self._parts(n_current)
        y = self.y_alpha * w + margin
        return _from_s(self.test, y * y, n_eff)

    def tail_probability(self, score: float | None, n_current: int) -> float:
        """P(the window's share of `score` is at least this large when nothing drifted):
        the reference margin is taken off, then the empirical null law in the body and the
        fitted exponential tail above `u`. No score: 1."""
        if score is None or math.isnan(score):
            return 1.0
        n_eff, w, margin = self._parts(n_current)
        s_obs = float(_to_s(self.test, np.array([score]), n_eff)[0])
        if not math.isfinite(s_obs):
            return _P_FLOOR if s_obs > 0 else 1.0
        y_w = (math.sqrt(max(s_obs, 0.0)) - margin) / w
        if y_w <= 0:
            return 1.0
        s = y_w * y_w
        null = np.asarray(self.null_s)
        b = null.shape[0]
        if b == 0:
            return 1.0
        if s <= self.u:
            exceed = b - int(np.searchsorted(null, s, side="left"))
            return (1 + exceed) / (b + 1)
        if self.sigma <= 0:
            return 0.5 / (b + 1) if s > null[-1] else 1 / (b + 1)
        return max(_tail_survival(self.u, self.sigma, self.xi, s), _P_FLOOR)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["null_s"] = list(self.null_s)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnCalibration:
        return cls(**{**d, "null_s": tuple(float(x) for x in d.get("null_s", ()))})


@dataclass(frozen=True)
class Calibration:
    """Every calibrated column of one reference, for one `CalibrationSettings`."""

    settings: CalibrationSettings
    alpha: float
    columns: Mapping[str, ColumnCalibration]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CALIBRATION_VERSION,
            "settings": asdict(self.settings),
            "alpha": self.alpha,
            "columns": {k: c.to_dict() for k, c in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        if d.get("version") != CALIBRATION_VERSION:
            raise CalibrationError(f"calibration format version {d.get('version')!r}")
        return cls(
            settings=CalibrationSettings(**d["settings"]),
            alpha=float(d["alpha"]),
            columns={k: ColumnCalibration.from_dict(c) for k, c in d["columns"].items()},
        )


# --------------------------------------------------------------------------- null scores


def _chunk_positions(n: int, m: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, m) sorted positions in 0..n-1: chunks of shuffles of the positions."""
    per = max(n // m, 1)
    rows: list[np.ndarray] = []
    while sum(r.shape[0] for r in rows) < replicates:
        perm = rng.permutation(n)[: per * m].reshape(per, m)
        rows.append(perm)
    pos = np.concatenate(rows)[:replicates]
    pos.sort(axis=1)
    return pos


def _numeric_w1(values: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W1(rest, chunk) and the rest's population sd for every row of chunk positions.

    Both samples are reference values, so both CDFs step only at reference values:
    W1 = sum_i |C_i / m - (i + 1 - C_i) / (N - m)| (v[i+1] - v[i]), C_i = chunk positions
    <= i. C is constant between chunk positions, where the integrand is linear in i with a
    known sign change, so prefix sums of the gaps give each chunk's W1 in O(m)."""
    big_n = values.shape[0]
    b, m = pos.shape
    nr = big_n - m
    gaps = np.diff(values)
    q0 = np.concatenate(([0.0], np.cumsum(gaps)))  # q0[k] = sum_{i<k} gaps[i]
    q1 = np.concatenate(([0.0], np.cumsum(gaps * np.arange(1, big_n))))  # sum (i+1) gaps[i]
    a, c = 1.0 / m, 1.0 / nr
    # segment j (j = 0..m): i in [lo_j, hi_j] with C_i = j; gaps run to index N-2
    lo = np.concatenate((np.zeros((b, 1), dtype=np.int64), pos), axis=1)
    hi = np.concatenate((pos - 1, np.full((b, 1), big_n - 2, dtype=np.int64)), axis=1)
    hi = np.minimum(hi, big_n - 2)
    j = np.arange(m + 1, dtype=np.float64)
    # g(i) = (a + c) j - c (i + 1) >= 0 while i + 1 <= j N / m
    cut = np.floor(j * big_n / m).astype(np.int64) - 1  # last i with g >= 0

    def seg(lo_: np.ndarray, hi_: np.ndarray) -> np.ndarray:
        ok = hi_ >= lo_
        lo_c = np.clip(lo_, 0, big_n - 1)
        hi_c = np.clip(hi_ + 1, 0, big_n - 1)
        s0 = np.where(ok, q0[hi_c] - q0[lo_c], 0.0)
        s1 = np.where(ok, q1[hi_c] - q1[lo_c], 0.0)
        return (a + c) * j * s0 - c * s1

    pos_part = seg(lo, np.minimum(hi, cut))
    neg_part = seg(np.maximum(lo, cut + 1), hi)
    w1 = (pos_part - neg_part).sum(axis=1)
    mu = values.mean()
    y = values - mu
    s1_all, s2_all = y.sum(), np.square(y).sum()
    yc = y[pos]
    s1r = s1_all - yc.sum(axis=1)
    s2r = s2_all - np.square(yc).sum(axis=1)
    var = np.maximum(s2r / nr - np.square(s1r / nr), 0.0)
    return np.maximum(w1, 0.0), np.sqrt(var)


def _bin_counts_numeric(values: np.ndarray, integer: bool, pos: np.ndarray) -> np.ndarray:
    """(replicates, 2, bins) counts of rest and chunk on the pooled 'sturges' edges."""
    edges = sturges_edges(values.shape[0], values[0], values[-1], integer)
    k = edges.shape[0] - 1
    bins = np.minimum(np.searchsorted(edges, values, side="right") - 1, k - 1)
    total = np.bincount(bins, minlength=k)
    b = pos.shape[0]
    flat = (np.arange(b)[:, None] * k + bins[pos]).ravel()
    chunk = np.bincount(flat, minlength=b * k).reshape(b, k)
    return np.stack((total[None, :] - chunk, chunk), axis=1)


def _js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    mid = (p + q) / 2.0
    js = rel_entr(p, mid).sum(axis=1) + rel_entr(q, mid).sum(axis=1)
    return np.sqrt(js / 2.0)


def _feel_zeroes_rows(shares: np.ndarray) -> np.ndarray:
    s = shares.copy()
    masked = np.where(s != 0, s, np.inf)
    nonzero_min = masked.min(axis=1, keepdims=True)
    fill = np.where(nonzero_min <= 0.0001, nonzero_min / 10**6, 0.0001)
    return np.where(s == 0, fill, s)


def _psi_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p, q = _feel_zeroes_rows(p), _feel_zeroes_rows(q)
    return ((p - q) * np.log(p / q)).sum(axis=1)


def _chisquare_rows(rest: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    from scipy import stats

    present = (rest > 0) | (chunk > 0)
    k_norm = chunk.sum(axis=1, keepdims=True) / rest.sum(axis=1, keepdims=True)
    f_exp = rest * k_norm
    with np.errstate(divide="ignore", invalid="ignore"):
        cell = np.where(present, np.square(chunk - f_exp) / f_exp, 0.0)
    stat = cell.sum(axis=1)
    return stats.chi2.sf(stat, present.sum(axis=1) - 1)


def _binned_kind(col: ColumnProfile, column_type: str) -> bool:
    """The binned tests' branch: 'sturges' bins for a numerical column with > 20 values."""
    s = col.sample
    return column_type == "numerical" and isinstance(s, NumericSample) and s.count_distinct(21) > 20


def _loop_scores(
    test_name: str, col: ColumnProfile, column_type: str, pos: np.ndarray | None, counts: Any
) -> np.ndarray:
    """The registered test on each (rest, chunk) pair: the reference implementation."""
    test = get_stattest(test_name)
    out = np.empty(pos.shape[0] if pos is not None else counts[1].shape[0])
    s = col.sample
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if pos is not None:
            assert isinstance(s, NumericSample)
            for r in range(pos.shape[0]):
                mask = np.ones(s.n, dtype=bool)
                mask[pos[r]] = False
                rest = NumericSample(s.values[mask], integer=s.integer)
                chunk = NumericSample(s.values[pos[r]], integer=s.integer)
                out[r] = test.score(rest, chunk, column_type)[0]  # type: ignore[arg-type]
        else:
            keys, rest_c, chunk_c = counts
            for r in range(rest_c.shape[0]):
                a, c = rest_c[r] > 0, chunk_c[r] > 0
                rest = CategoryCounts(keys[a], rest_c[r][a])
                chunk = CategoryCounts(keys[c], chunk_c[r][c])
                out[r] = test.score(rest, chunk, column_type)[0]  # type: ignore[arg-type]
    return out


def null_scores(
    col: ColumnProfile,
    column_type: str,
    test_name: str,
    m: int,
    replicates: int,
    rng: np.random.Generator,
    *,
    vectorised: bool = True,
) -> np.ndarray:
    """The test's scores between `replicates` chunks of `m` reference values and the rest.

    `vectorised=False` runs the registered test on every pair (the conformance tests compare
    both ways on the same draws)."""
    s = col.sample
    as_positions = isinstance(s, NumericSample) and (
        test_name not in ("jensenshannon", "psi", "chisquare", "z")
        or _binned_kind(col, column_type)
    )
    if as_positions:
        assert isinstance(s, NumericSample)
        pos = _chunk_positions(s.n, m, replicates, rng)
        if not vectorised:
            return _loop_scores(test_name, col, column_type, pos, None)
        if test_name == "wasserstein":
            w1, sd = _numeric_w1(s.values, pos)
            return w1 / np.maximum(sd, 0.001)
        if test_name in ("jensenshannon", "psi"):
            counts = _bin_counts_numeric(s.values, s.integer, pos)
            rest = counts[:, 0, :] / (s.n - m)
            chunk = counts[:, 1, :] / m
            return _js_rows(rest, chunk) if test_name == "jensenshannon" else _psi_rows(rest, chunk)
        return _loop_scores(test_name, col, column_type, pos, None)
    table = s.as_counts()
    ref_counts = table.counts.astype(np.int64)
    chunk_c = rng.multivariate_hypergeometric(ref_counts, m, size=replicates)
    rest_c = ref_counts[None, :] - chunk_c
    if not vectorised or test_name not in ("jensenshannon", "psi", "chisquare"):
        return _loop_scores(test_name, col, column_type, None, (table.keys, rest_c, chunk_c))
    if test_name == "chisquare":
        return _chisquare_rows(rest_c.astype(np.float64), chunk_c.astype(np.float64))
    rest = rest_c / rest_c.sum(axis=1, keepdims=True)
    chunk = chunk_c / m
    return _js_rows(rest, chunk) if test_name == "jensenshannon" else _psi_rows(rest, chunk)


# --------------------------------------------------------------------------- calibration


def _fit_tail(s: np.ndarray) -> tuple[float, float, float]:
    """(u, sigma, xi): the tail's start (the 1 - TAIL_SHARE quantile) and a generalised
    Pareto fit of the excesses by moments, its shape clipped to [0, MAX_SHAPE]: light tails
    keep the exponential (xi = 0, sigma = mean excess), heavy ones (a feature with
    infinite variance) get a power-law tail."""
    u = float(np.quantile(s, 1.0 - TAIL_SHARE))
    excess = s[s > u] - u
    if excess.shape[0] < 2:
        return u, float(excess.mean()) if excess.shape[0] else 0.0, 0.0
    m1, var = float(excess.mean()), float(excess.var(ddof=1))
    xi = 0.5 * (1.0 - m1 * m1 / var) if var > 0 else 0.0
    xi = min(max(xi, 0.0), MAX_SHAPE)
    return u, m1 * (1.0 - xi), xi


def _tail_quantile(u: float, sigma: float, xi: float, level: float) -> float:
    """The 1 - level quantile of the fitted tail (level below TAIL_SHARE)."""
    r = TAIL_SHARE / level
    if xi <= 1e-9:
        return u + sigma * math.log(r)
    return u + sigma / xi * (r**xi - 1.0)


def _tail_survival(u: float, sigma: float, xi: float, s: float) -> float:
    if xi <= 1e-9:
        return TAIL_SHARE * math.exp(-(s - u) / sigma)
    return TAIL_SHARE * (1.0 + xi * (s - u) / sigma) ** (-1.0 / xi)


def calibrate_column(
    name: str,
    column_type: str,
    col: ColumnProfile,
    test_name: str,
    settings: CalibrationSettings,
    alpha: float,
    rng: np.random.Generator,
) -> ColumnCalibration | None:
    """One column's calibration; None when the column has fewer than 4 values."""
    big_n = col.n
    if big_n < 4:
        return None
    # expected finite values in a window: window rows less the reference's missing share
    n_window = max(1, round(settings.window_rows * (col.n / col.n_rows if col.n_rows else 1.0)))
    m = max(1, min(n_window, big_n // 2))
    scores = null_scores(col, column_type, test_name, m, settings.replicates, rng)
    s = _to_s(test_name, scores, _n_eff(m, big_n - m))
    s = np.sort(s[np.isfinite(s)]) if np.isfinite(s).any() else np.zeros(1)
    u, sigma, xi = _fit_tail(s)
    top = float(s[-1])

    def quantile(level: float) -> float:
        q = _tail_quantile(u, sigma, xi, level)
        return q if q > top else top * (1 + 1e-9) + 1e-12  # never below the null's largest

    cal = ColumnCalibration(
        column=name,
        type=column_type,
        test=test_name,
        alpha=alpha,
        threshold=0.0,
        y_alpha=math.sqrt(quantile(alpha)),
        y_ref=math.sqrt(quantile(REFERENCE_LEVEL)),
        u=u,
        sigma=sigma,
        xi=xi,
        n_window=n_window,
        n_chunk=m,
        n_rest=big_n - m,
        n_reference=big_n,
        null_s=tuple(float(x) for x in s),
    )
    return replace(cal, threshold=cal.threshold_at(n_window))


def calibrate(
    profile: ReferenceProfile,
    columns: Mapping[str, tuple[str, str]],
    settings: CalibrationSettings,
    *,
    workers: int = 1,
) -> Calibration:
    """Calibrate every column of `columns` (name -> (column type, test name)).

    Each column gets its own seeded stream (from `settings.seed` and the column name), so a
    column's thresholds do not depend on which other columns are calibrated or on threads.
    """
    alpha = settings.alpha(len(columns))

    def one(item: tuple[str, tuple[str, str]]) -> ColumnCalibration | None:
        name, (ctype, test) = item
        digest = hashlib.sha256(f"{settings.seed}:{name}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return calibrate_column(name, ctype, profile[name], test, settings, alpha, rng)

    items = [(n, ct) for n, ct in columns.items() if n in profile]
    done = parallel_map(one, items, workers)
    return Calibration(
        settings=settings,
        alpha=alpha,
        columns={c.column: c for c in done if c is not None},
    )


def cached_calibration(
    profile: ReferenceProfile,
    columns: Mapping[str, tuple[str, str]],
    settings: CalibrationSettings,
    *,
    workers: int = 1,
) -> Calibration:
    """`calibrate`, computed once per profile and settings: kept in the profile (and saved
    with it by `ReferenceProfile.save`)."""
    key = hashlib.sha256(json.dumps([settings.key, sorted(columns.items())]).encode()).hexdigest()[
        :24
    ]
    compute: Callable[[], dict[str, Any]] = lambda: calibrate(  # noqa: E731
        profile, columns, settings, workers=workers
    ).to_dict()
    return Calibration.from_dict(profile.cached_calibration(key, compute))
