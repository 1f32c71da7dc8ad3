"""One conformance suite for every registered drift test, plus properties of the shared
numerics (ECDF merges, binning) checked against numpy and scipy."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors.profile import CategoryCounts, NumericSample, summarize
from detectors.stattests import STATTESTS, StatTest, UnknownStatTestError, get_stattest
from detectors.stattests._shared import (
    cdf_distance,
    histogram_counts,
    ks_statistic,
    sturges_edges,
    wasserstein1,
)
from detectors.stattests.cramer_von_mises import _midranks

ALL = sorted(STATTESTS)
NUMERIC = [n for n in ALL if "numerical" in STATTESTS[n].column_types]
CATEGORICAL = [n for n in ALL if "categorical" in STATTESTS[n].column_types]

# Evidently 0.7.23's registry: default threshold and the comparison that means drift.
EVIDENTLY_DEFAULTS = {
    "ks": (0.05, "<="),
    "wasserstein": (0.1, ">="),
    "psi": (0.1, ">="),
    "chisquare": (0.05, "<"),
    "z": (0.05, "<"),
    "jensenshannon": (0.1, ">="),
    "hellinger": (0.1, ">="),
    "kl_div": (0.1, ">="),
    "anderson": (0.1, "<"),
    "cramer_von_mises": (0.1, "<="),
    "ed": (0.1, ">"),
}


def numeric(values) -> NumericSample:
    return summarize("x", np.asarray(values, dtype=float)).sample


def labels(values) -> CategoryCounts:
    return summarize("x", np.asarray(values, dtype=object)).sample


def samples(name: str, seed: int, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    ctype = "numerical" if name in NUMERIC else "categorical"
    if ctype == "numerical":
        return numeric(rng.normal(0, 1, 400)), numeric(rng.normal(shift, 1, 300)), ctype
    p_ref = [0.5, 0.3, 0.2]
    p_cur = [0.5 - shift / 2, 0.3, 0.2 + shift / 2] if shift else p_ref
    return (
        labels(rng.choice(list("abc"), 400, p=p_ref)),
        labels(rng.choice(list("abc"), 300, p=p_cur)),
        ctype,
    )


def test_registry_has_exactly_evidentlys_names() -> None:
    assert set(STATTESTS) == set(EVIDENTLY_DEFAULTS)


@pytest.mark.parametrize("name", ALL)
def test_defaults_and_direction_are_evidentlys(name: str) -> None:
    test = get_stattest(name)
    threshold, direction = EVIDENTLY_DEFAULTS[name]
    assert (test.threshold, test.direction) == (threshold, direction)
    assert test.name == name
    # the comparison at the threshold itself: only the non-strict directions flag it
    assert test.detected(threshold) == (direction in ("<=", ">="))
    assert not test.detected(math.nan)


def test_unknown_name_is_rejected_with_the_known_names() -> None:
    with pytest.raises(UnknownStatTestError, match="known tests: anderson, chisquare"):
        get_stattest("t_test")


@pytest.mark.parametrize("name", ALL)
def test_threshold_override(name: str) -> None:
    assert get_stattest(name, 0.2).threshold == 0.2


@pytest.mark.parametrize("name", ALL)
def test_deterministic_and_picklable(name: str) -> None:
    ref, cur, ctype = samples(name, 1, shift=0.3)
    test = get_stattest(name)
    first = test(ref, cur, ctype)
    again = pickle.loads(pickle.dumps(test))(pickle.loads(pickle.dumps(ref)), cur, ctype)
    assert first == again


@pytest.mark.parametrize("name", ALL)
def test_identical_samples_do_not_drift(name: str) -> None:
    ref, _, ctype = samples(name, 2)
    result = get_stattest(name)(ref, ref, ctype)
    assert not result.drift_detected
    if STATTESTS[name].score_kind == "distance":
        assert result.score == pytest.approx(0.0, abs=1e-12)
    else:
        assert result.score >= 0.25  # anderson's p-value is capped at 0.25


@pytest.mark.parametrize("name", ALL)
def test_a_large_shift_drifts(name: str) -> None:
    ref, cur, ctype = samples(name, 3, shift=0.6 if name in CATEGORICAL else 1.5)
    assert get_stattest(name)(ref, cur, ctype).drift_detected


@pytest.mark.parametrize("name", ["jensenshannon", "hellinger", "ks", "ed", "cramer_von_mises"])
def test_symmetric_tests(name: str) -> None:
    a, b, ctype = samples(name, 4, shift=0.4)
    test = get_stattest(name)
    assert test(a, b, ctype).score == pytest.approx(test(b, a, ctype).score, rel=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_effect_size_next_to_every_p_value(name: str) -> None:
    ref, cur, ctype = samples(name, 5, shift=0.3)
    result = get_stattest(name)(ref, cur, ctype, effect_size=True)
    if STATTESTS[name].score_kind == "p_value":
        assert result.effect_size is not None and 0.0 <= result.effect_size <= 1.0
        assert result.effect_size_measure in ("ks_d", "cramers_v")
    else:
        assert result.effect_size is None


def test_every_test_is_a_stattest_subclass() -> None:
    for cls in STATTESTS.values():
        assert issubclass(cls, StatTest)
        assert cls.score_kind in ("p_value", "distance")
        assert cls.column_types <= {"numerical", "categorical"}


# --------------------------------------------------------------------------- numerics

sorted_floats = st.lists(
    st.one_of(
        st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
        st.integers(-3, 3).map(float),
    ),
    min_size=1,
    max_size=80,
).map(lambda xs: np.sort(np.asarray(xs, dtype=float)))


@settings(max_examples=200, deadline=None)
@given(u=sorted_floats, v=sorted_floats)
def test_wasserstein_without_pooled_sort_equals_scipy(u: np.ndarray, v: np.ndarray) -> None:
    expected = stats.wasserstein_distance(u, v)
    assert wasserstein1(u, v) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert cdf_distance(1, u, v) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(u=sorted_floats, v=sorted_floats)
def test_energy_and_ks_equal_scipy(u: np.ndarray, v: np.ndarray) -> None:
    assert math.sqrt(2) * cdf_distance(2, u, v) == pytest.approx(
        stats.energy_distance(u, v), rel=1e-12, abs=1e-12
    )
    with np.errstate(divide="ignore"):  # scipy's asymptotic p-value for 1-value samples
        assert ks_statistic(u, v) == stats.ks_2samp(u, v, method="asymp").statistic


@settings(max_examples=150, deadline=None)
@given(u=sorted_floats, v=sorted_floats, integer=st.booleans())
def test_binning_equals_numpy(u: np.ndarray, v: np.ndarray, integer: bool) -> None:
    if integer:
        u, v = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
    pooled = np.concatenate([u, v])
    edges = sturges_edges(pooled.shape[0], pooled.min(), pooled.max(), integer)
    np.testing.assert_array_equal(edges, np.histogram_bin_edges(pooled, bins="sturges"))
    np.testing.assert_array_equal(
        histogram_counts(np.sort(u).astype(float), edges), np.histogram(u, edges)[0]
    )


@settings(max_examples=100, deadline=None)
@given(u=sorted_floats, v=sorted_floats)
def test_midranks_equal_rankdata(u: np.ndarray, v: np.ndarray) -> None:
    ranks = stats.rankdata(np.concatenate([u, v]), method="average")
    np.testing.assert_array_equal(_midranks(u, u, v), ranks[: u.shape[0]])
    np.testing.assert_array_equal(_midranks(v, u, v), ranks[u.shape[0] :])


def test_wasserstein_large_unequal_samples() -> None:
    rng = np.random.default_rng(0)
    u, v = np.sort(rng.normal(size=30_001)), np.sort(rng.normal(0.2, 1.1, size=47_777))
    assert wasserstein1(u, v) == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-12)
