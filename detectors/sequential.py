"""Sequential drift detection: CUSUM over each feature's per-window evidence.

A window test sees one window; a small shift that persists (a feature 0.1 sd off for hours)
stays under a calibrated single-window threshold window after window. A CUSUM adds the
evidence up: with ``x_k = -ln p_k`` (p_k: the window's null tail probability from the
calibration, `ColumnCalibration.tail_probability`; Exp(1) when nothing drifted)

    S_k = max(0, S_{k-1} + x_k - allowance),   alarm while S_k >= h.

`h` is set so that the in-control average run length is 1 / alpha windows (alpha: the
per-window, per-feature false-alarm budget), computed for Exp(1) increments by the
Markov-chain method of Brook and Evans (1972). The dataset detector is the same CUSUM over
the share of features whose window is unusual at the 5 % level (null: binomial).

There is no auto-reset: the alarm holds while S stays above h and clears as the evidence
decays (STYLE.md). State is a few floats per feature (`state()` / `from_state()`);
``a += b`` merges two detectors that saw different windows by keeping the larger statistic
(a CUSUM depends on window order, so this is the conservative merge, not a replay).
Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["Cusum", "SequentialDetector", "cusum_limit"]

#: Largest evidence one window adds (a window that extreme alarms on its own anyway).
MAX_EVIDENCE = 50.0
#: A feature's window counts towards the dataset share when its tail probability is below.
SHARE_LEVEL = 0.05


def _arl(h: float, allowance: float, cdf: Callable[[np.ndarray], np.ndarray], m: int) -> float:
    """In-control average run length from S = 0 (Brook-Evans chain on m cells of [0, h))."""
    w = h / m
    c = (np.arange(m) + 0.5) * w
    c[0] = 0.0  # start cell: the CUSUM at rest
    edges = np.arange(m + 1) * w  # upper edges of the cells, S' in [j w, (j+1) w)
    # P(S' < e) = P(X < e - c_i + allowance) for e > 0
    cum = cdf(edges[None, 1:] - c[:, None] + allowance)
    q = np.diff(np.concatenate((np.zeros((m, 1)), cum), axis=1), axis=1)
    ell = np.linalg.solve(np.eye(m) - q, np.ones(m))
    return float(ell[0])


def _exp_cdf(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, -np.expm1(-np.maximum(x, 0.0)), 0.0)


def _share_cdf(n_features: int) -> Callable[[np.ndarray], np.ndarray]:
    """x -> P(share < x) for a binomial(n_features, SHARE_LEVEL) count over n_features."""
    from scipy import stats

    table = stats.binom.cdf(np.arange(n_features + 1), n_features, SHARE_LEVEL)

    def cdf(x: np.ndarray) -> np.ndarray:  # P(K <= ceil(x n) - 1), by table look-up
        k = np.ceil(np.asarray(x) * n_features - 1e-9).astype(np.int64) - 1
        return np.where(k < 0, 0.0, table[np.clip(k, 0, n_features)])

    return cdf


@lru_cache(maxsize=256)
def cusum_limit(alpha: float, allowance: float, n_features: int = 0, cells: int = 200) -> float:
    """The limit h with in-control run length 1 / alpha: Exp(1) increments for a feature
    (`n_features` = 0), binomial(n_features, SHARE_LEVEL) shares for the dataset."""
    cdf = _share_cdf(n_features) if n_features else _exp_cdf
    target = 1.0 / alpha
    if n_features:
        return _limit_by_bisection(allowance, cdf, cells, target)
    log_target = math.log(target)

    def f(h: float) -> float:  # log run length is close to linear in h: few steps
        return math.log(_arl(h, allowance, cdf, cells)) - log_target

    lo, hi = 1e-3, 1.0
    f_lo, f_hi = f(lo), f(hi)
    while f_hi < 0 and hi < 1e4:
        lo, f_lo, hi = hi, f_hi, hi * 2
        f_hi = f(hi)
    # Illinois regula falsi on [lo, hi] (f(lo) < 0 <= f(hi)); each step is one linear
    # solve of `cells` unknowns, the cost that matters (it runs when a detector is made)
    side = 0
    for _ in range(60):
        if hi - lo <= 1e-9 * hi or f_hi == 0.0:
            break
        mid = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        if not lo < mid < hi:
            mid = (lo + hi) / 2
        f_mid = f(mid)
        if f_mid < 0:
            lo, f_lo = mid, f_mid
            if side == -1:
                f_hi /= 2
            side = -1
        else:
            hi, f_hi = mid, f_mid
            if side == 1:
                f_lo /= 2
            side = 1
    return hi


def _limit_by_bisection(
    allowance: float, cdf: Callable[[np.ndarray], np.ndarray], cells: int, target: float
) -> float:
    """The dataset CUSUM's limit: its increments are discrete (k / n_features), so its run
    length is a step function of h; bisection to 1e-6 relative is finer than any step."""
    lo, hi = 1e-3, 1.0
    while _arl(hi, allowance, cdf, cells) < target and hi < 1e4:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-6 * hi:
        mid = (lo + hi) / 2
        if _arl(mid, allowance, cdf, cells) < target:
            lo = mid
        else:
            hi = mid
    return hi


class Cusum:
    """One upper CUSUM: `update(x)` returns self; `statistic` and `detected` read it."""

    def __init__(self, allowance: float, limit: float) -> None:
        self.allowance = float(allowance)
        self.limit = float(limit)
        self._reset()

    def _reset(self) -> None:
        self.statistic = 0.0
        self.n = 0

    def update(self, x: float) -> Cusum:
        self.statistic = max(0.0, self.statistic + min(float(x), MAX_EVIDENCE) - self.allowance)
        self.n += 1
        return self

    @property
    def detected(self) -> bool:
        return self.statistic >= self.limit

    @property
    def score(self) -> float:
        """The statistic in units of the limit: the alarm holds while it is 1 or more."""
        return self.statistic / self.limit if self.limit > 0 else math.inf

    def __iadd__(self, other: Cusum) -> Cusum:
        self.statistic = max(self.statistic, other.statistic)
        self.n += other.n
        return self

    def state(self) -> dict[str, float]:
        return {"s": self.statistic, "n": self.n}

    def restore(self, state: Mapping[str, Any]) -> Cusum:
        self.statistic, self.n = float(state["s"]), int(state["n"])
        return self


class SequentialDetector:
    """A CUSUM per calibrated feature plus one over the dataset share (see module doc).

    `calibration` is a `detectors.calibration.Calibration`; `update(scores)` takes the
    window's ``{feature: (score, values tested)}`` and returns self.
    """

    def __init__(self, calibration: Any, allowance: float = 1.5) -> None:
        self.calibration = calibration
        self.allowance = float(allowance)
        alpha = calibration.alpha
        h = cusum_limit(alpha, self.allowance)
        self.features = {name: Cusum(self.allowance, h) for name in calibration.columns}
        m = max(len(self.features), 1)
        share_allowance = 2 * SHARE_LEVEL
        # the dataset detector has the budget of one feature
        self.dataset = Cusum(share_allowance, cusum_limit(alpha, share_allowance, m))
        self._reset()

    def _reset(self) -> None:
        for c in self.features.values():
            c._reset()
        self.dataset._reset()
        self.last_tail: dict[str, float] = {}

    def update(self, scores: Mapping[str, tuple[float | None, int]]) -> SequentialDetector:
        tails: dict[str, float] = {}
        for name, cusum in self.features.items():
            if name not in scores:
                continue
            score, n = scores[name]
            p = self.calibration.columns[name].tail_probability(score, n)
            tails[name] = p
            cusum.update(-math.log(p))
        if tails:
            share = sum(p < SHARE_LEVEL for p in tails.values()) / len(self.features)
            self.dataset.update(share)
        self.last_tail = tails
        return self

    @property
    def alarms(self) -> dict[str, bool]:
        return {name: c.detected for name, c in self.features.items()}

    @property
    def statistics(self) -> dict[str, float]:
        return {name: c.statistic for name, c in self.features.items()}

    @property
    def scores(self) -> dict[str, float]:
        """Each feature's statistic over its limit (the exported value; alarm at >= 1)."""
        return {name: c.score for name, c in self.features.items()}

    @property
    def dataset_alarm(self) -> bool:
        return self.dataset.detected

    @property
    def dataset_score(self) -> float:
        return self.dataset.score

    def __iadd__(self, other: SequentialDetector) -> SequentialDetector:
        for name, c in other.features.items():
            if name in self.features:
                self.features[name] += c
        self.dataset += other.dataset
        return self

    def state(self) -> dict[str, Any]:
        """Plain values (msgpack/JSON), for the service's checkpoint."""
        return {
            "features": {name: c.state() for name, c in self.features.items()},
            "dataset": self.dataset.state(),
        }

    def restore(self, state: Mapping[str, Any]) -> SequentialDetector:
        for name, st in state["features"].items():
            if name in self.features:
                self.features[name].restore(st)
        self.dataset.restore(state["dataset"])
        return self
