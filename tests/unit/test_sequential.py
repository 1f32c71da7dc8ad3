"""Sequential detection (detectors/sequential.py): the CUSUM limit gives its in-control run
length, a stationary stream stays quiet, a small persistent shift that no single window
flags is caught, and checkpoint/restore equals an uninterrupted run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.calibration import CalibrationSettings, calibrate
from detectors.profile import ReferenceProfile, summarize
from detectors.sequential import Cusum, SequentialDetector, cusum_limit
from detectors.stattests import get_stattest


def test_limit_gives_the_run_length() -> None:
    """Exp(1) increments, target run length 100: 4,000 simulated streams of 400 windows
    alarm in 0.1 % of windows +- 20 % (the Markov chain is exact up to its grid)."""
    h = cusum_limit(0.01, 1.5)
    x = np.random.default_rng(0).exponential(size=(4000, 400))
    s = np.zeros(4000)
    first = np.full(4000, 0)
    for k in range(400):
        s = np.maximum(0.0, s + x[:, k] - 1.5)
        first[(s >= h) & (first == 0)] = k + 1
    run = np.where(first == 0, 400, first)
    # censored at 400; a geometric run length of mean 100 censored at 400 has mean ~98
    assert 80 <= run.mean() <= 115
    assert cusum_limit(1e-6, 1.5) > cusum_limit(1e-3, 1.5) > h


@pytest.fixture(scope="module")
def setup() -> tuple[ReferenceProfile, object]:
    r = np.random.default_rng(4)
    prof = ReferenceProfile.from_frame(
        pd.DataFrame({"a": r.normal(size=20_000), "b": r.gamma(2.0, size=20_000)})
    )
    cols = {"a": ("numerical", "wasserstein"), "b": ("numerical", "wasserstein")}
    cal = calibrate(prof, cols, CalibrationSettings(window_rows=1000, share=0.5))
    return prof, cal


def _scores(prof: ReferenceProfile, r: np.random.Generator, shift: float) -> dict:
    test = get_stattest("wasserstein")
    out = {}
    for name, gen in (
        ("a", lambda n: r.normal(size=n) + shift),
        ("b", lambda n: r.gamma(2.0, size=n)),
    ):
        cur = summarize(name, gen(1000))
        out[name] = (test(prof[name].sample, cur.sample, "numerical").score, cur.n)
    return out


def test_quiet_then_a_small_shift_is_caught(setup: tuple) -> None:
    prof, cal = setup
    r = np.random.default_rng(9)
    det = SequentialDetector(cal)
    for _ in range(300):  # a stationary day at 1,000 rows: no alarm
        det.update(_scores(prof, r, 0.0))
        assert not any(det.alarms.values()) and not det.dataset_alarm
    single = cal.columns["a"].threshold
    delay = None
    for k in range(1, 60):  # 0.12 sd: under the single-window threshold
        s = _scores(prof, r, 0.12)
        assert s["a"][0] < single
        det.update(s)
        if det.alarms["a"]:
            delay = k
            break
    assert delay is not None and delay <= 40
    assert not det.alarms["b"]


@settings(max_examples=10, deadline=None)
@given(cut=st.integers(1, 29), seed=st.integers(0, 10_000))
def test_checkpoint_restore_equals_uninterrupted(setup: tuple, cut: int, seed: int) -> None:
    prof, cal = setup
    r = np.random.default_rng(seed)
    stream = [_scores(prof, r, 0.1 if k > 10 else 0.0) for k in range(30)]
    whole = SequentialDetector(cal)
    for s in stream:
        whole.update(s)
    first = SequentialDetector(cal)
    for s in stream[:cut]:
        first.update(s)
    saved = json.loads(json.dumps(first.state()))  # plain values only
    resumed = SequentialDetector(cal).restore(saved)
    for s in stream[cut:]:
        resumed.update(s)
    assert resumed.state() == whole.state()
    assert resumed.alarms == whole.alarms


def test_merge_keeps_the_larger_statistic() -> None:
    a, b = Cusum(1.5, 5.0).update(4.0), Cusum(1.5, 5.0).update(9.0)
    a += b
    assert a.statistic == pytest.approx(7.5) and a.detected and a.n == 2


@pytest.mark.parametrize(
    ("alpha", "allowance", "n_features"),
    [(0.01, 1.5, 0), (1e-5, 1.5, 0), (1e-8, 1.01, 0), (1e-3, 3.0, 0), (1e-5, 0.1, 3)],
)
def test_limit_solves_for_the_run_length(alpha: float, allowance: float, n_features: int) -> None:
    """The Markov-chain run length at the returned limit is the target (continuous
    increments: to 1e-6; the dataset's discrete ones: the smallest limit reaching it)."""
    from detectors.sequential import _arl, _exp_cdf, _share_cdf

    h = cusum_limit(alpha, allowance, n_features)
    if n_features == 0:
        assert _arl(h, allowance, _exp_cdf, 200) * alpha == pytest.approx(1.0, rel=1e-6)
    else:
        cdf = _share_cdf(n_features)
        assert _arl(h, allowance, cdf, 200) * alpha >= 1.0
        assert _arl(h * (1 - 1e-5), allowance, cdf, 200) * alpha < 1.0
