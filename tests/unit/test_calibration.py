"""Calibrated thresholds (detectors/calibration.py): the array kernels equal the registered
tests, a stationary stream stays under its false-flag target, a shift is caught, the
calibration is cached with the profile and survives save/load, and a spec with
`thresholds: calibrated` uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.calibration import (
    Calibration,
    CalibrationError,
    CalibrationSettings,
    cached_calibration,
    calibrate,
    null_scores,
)
from detectors.drift import DriftConfig, compute_drift
from detectors.profile import ReferenceProfile, summarize
from detectors.spec_options import drift_config
from detectors.stattests import get_stattest
from driftwarden.spec import parse_spec

RNG = np.random.default_rng(20)
N_REF = 20_000
SHAPES = {
    "normal": lambda r, n: r.normal(10, 2, n),
    "skewed": lambda r, n: r.lognormal(0, 0.8, n),
    "heavy": lambda r, n: r.standard_t(3, n),
    "counts": lambda r, n: r.poisson(4, n).astype(np.int64),
    "category": lambda r, n: r.choice(
        np.array(list("abcdefgh")), p=[0.4, 0.2, 0.15, 0.1, 0.08, 0.04, 0.02, 0.01], size=n
    ),
}
TYPES = {k: "categorical" if k in ("category", "counts") else "numerical" for k in SHAPES}


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return ReferenceProfile.from_frame(pd.DataFrame({k: g(RNG, N_REF) for k, g in SHAPES.items()}))


@pytest.mark.parametrize(
    ("column", "test"),
    [
        ("normal", "wasserstein"),
        ("normal", "jensenshannon"),
        ("normal", "psi"),
        ("skewed", "wasserstein"),
        ("counts", "jensenshannon"),
        ("counts", "chisquare"),
        ("category", "jensenshannon"),
        ("category", "psi"),
        ("category", "chisquare"),
    ],
)
def test_kernels_equal_the_registered_tests(
    profile: ReferenceProfile, column: str, test: str
) -> None:
    col = profile[column]
    fast = null_scores(col, TYPES[column], test, 700, 25, np.random.default_rng(1))
    slow = null_scores(
        col, TYPES[column], test, 700, 25, np.random.default_rng(1), vectorised=False
    )
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-14)
    assert np.ptp(fast) > 0  # the draws differ: the comparison is not vacuous


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(50, 3000),
    m=st.integers(5, 400),
    ties=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_wasserstein_kernel_property(n: int, m: int, ties: bool, seed: int) -> None:
    r = np.random.default_rng(seed)
    values = r.integers(0, 7, n).astype(float) if ties else r.standard_cauchy(n)
    col = summarize("x", values)
    m = min(m, n // 2)
    fast = null_scores(col, "numerical", "wasserstein", m, 20, np.random.default_rng(seed))
    slow = null_scores(
        col, "numerical", "wasserstein", m, 20, np.random.default_rng(seed), vectorised=False
    )
    np.testing.assert_allclose(fast, slow, rtol=1e-7, atol=1e-12)


def test_stationary_stream_stays_under_target(profile: ReferenceProfile) -> None:
    """Per-window false-flag target 1e-2 (budget 0.01 per 'day' of one window, one feature):
    1,500 undrifted windows of 500 rows per shape flag at most 1.5 % (a binomial 99.9 %
    bound of the target is 1.9 %); the reference margin keeps most shapes well under it."""
    cfg = CalibrationSettings(window_rows=500, windows_per_day=1, n_features=1)
    columns = {
        k: (t, "wasserstein" if t == "numerical" else "jensenshannon") for k, t in TYPES.items()
    }
    cal = calibrate(profile, columns, cfg)
    assert cal.alpha == pytest.approx(0.01)
    r = np.random.default_rng(7)
    for name, (ctype, test_name) in columns.items():
        c = cal.columns[name]
        test = get_stattest(test_name, c.threshold)
        flags = sum(
            test(
                profile[name].sample, summarize(name, SHAPES[name](r, 500)).sample, ctype
            ).drift_detected
            for _ in range(1500)
        )
        assert flags / 1500 <= 0.015, (name, flags)


def test_half_sd_shift_is_caught_in_one_window(profile: ReferenceProfile) -> None:
    cfg = CalibrationSettings(window_rows=2000)  # 1 % per day, 288 windows, 5 features
    cal = calibrate(profile, {"normal": ("numerical", "wasserstein")}, cfg)
    config = DriftConfig(calibration=cal)
    r = np.random.default_rng(3)
    caught = 0
    for _ in range(20):
        shifted = pd.DataFrame({"normal": SHAPES["normal"](r, 2000) + 0.5 * 2})
        res = compute_drift(profile, shifted, config, columns=["normal"])
        caught += res["normal"].drift_detected
        assert res["normal"].threshold == pytest.approx(cal.columns["normal"].threshold)
    assert caught == 20


def test_threshold_scales_with_window_size(profile: ReferenceProfile) -> None:
    cal = calibrate(
        profile, {"normal": ("numerical", "wasserstein")}, CalibrationSettings(window_rows=2000)
    )
    c = cal.columns["normal"]
    assert c.threshold_at(2000) == pytest.approx(c.threshold)
    assert c.threshold_at(500) > c.threshold > c.threshold_at(10_000)
    # a tail probability at the threshold is about alpha, and 1 for a zero distance
    assert c.tail_probability(c.threshold, 2000) == pytest.approx(cal.alpha, rel=0.05)
    assert c.tail_probability(0.0, 2000) == 1.0


def test_cached_with_the_profile_and_saved(profile: ReferenceProfile, tmp_path: Path) -> None:
    cols = {"category": ("categorical", "jensenshannon")}
    cfg = CalibrationSettings(window_rows=1000, replicates=40)
    first = cached_calibration(profile, cols, cfg)
    assert len(profile.calibrations) >= 1
    again = cached_calibration(profile, cols, cfg)
    assert again == first
    loaded = ReferenceProfile.load(profile.save(tmp_path / "p.npz"))
    assert loaded.calibrations == profile.calibrations
    assert Calibration.from_dict(first.to_dict()) == first


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(CalibrationError, match="false_alarm_rate"):
        CalibrationSettings(window_rows=10, false_alarm_rate=1.5)
    with pytest.raises(CalibrationError, match="replicates"):
        CalibrationSettings(window_rows=10, replicates=3)


def test_spec_calibrated_mode(profile: ReferenceProfile) -> None:
    spec = parse_spec(
        {
            "model": "m",
            "features": [
                {"name": "normal", "type": "numerical"},
                {"name": "category", "type": "categorical"},
                {"name": "skewed", "type": "numerical", "threshold": 0.3},
            ],
            "window": {"rows": 1000},
            "drift": {"thresholds": "calibrated", "calibration": {"replicates": 50}},
        }
    )
    config = drift_config(spec, profile)
    assert config.calibration is not None
    assert set(config.calibration.columns) == {"normal", "category"}  # skewed: its own
    assert config.calibration.alpha == pytest.approx(0.01 / (288 * 3))
    plain = drift_config(spec)  # no reference: the tests' defaults
    assert plain.calibration is None
    cur = pd.DataFrame({k: SHAPES[k](RNG, 1000) for k in ("normal", "category", "skewed")})
    res = compute_drift(profile, cur, config, column_types={"category": "categorical"})
    assert res["skewed"].threshold == 0.3
    assert res["normal"].test == "wasserstein" and res["normal"].threshold > 0.1
