"""driftwarden against Evidently 0.7.23 itself, on the same data.

Per column: the same test name, the same threshold, a score equal to a relative 1e-9 and
the same verdict; per data set: the same share of drifted columns. Evidently runs here as
a test-only dependency (``evidently==0.7.23`` in the dev extra); its warnings (divide by
zero on unseen categories, scipy deprecations) are silenced around its calls only.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _compat_data import mixed_frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.drift import DriftConfig, compute_drift
from detectors.profile import summarize
from detectors.stattests import STATTESTS, get_stattest

evidently = pytest.importorskip("evidently")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:evidently")

REL = 1e-9


@pytest.fixture(scope="module")
def ev() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import Report
        from evidently.legacy.calculations.stattests import registry
        from evidently.legacy.core import ColumnType
        from evidently.presets import DataDriftPreset

    class Ev:
        pass

    e = Ev()
    e.Report, e.DataDriftPreset, e.registry, e.ColumnType = (
        Report,
        DataDriftPreset,
        registry,
        ColumnType,
    )
    e.display = {
        t.display_name: name
        for name, d in registry._registered_stat_tests.items()
        for t in d.values()
    }
    return e


def run_evidently(
    ev: Any, ref: pd.DataFrame, cur: pd.DataFrame, **preset: Any
) -> tuple[dict, float]:
    """{column: (test name, score, threshold, drifted)} and the drifted share, from a Report."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = ev.Report([ev.DataDriftPreset(**preset)], include_tests=True).run(cur, ref)
        d = snap.dict()
    out: dict[str, list] = {}
    share = math.nan
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            name = ev.display.get(cfg["method"], cfg["method"])
            out[cfg["column"]] = [name, float(np.asarray(m["value"]).item()), cfg["threshold"]]
        elif cfg["type"].endswith("DriftedColumnsCount"):
            share = m["value"]["share"]
    for t in d["tests"]:
        if t["id"] == "drift":
            out[t["metric_config"]["params"]["column"]].append(t["status"] == "FAIL")
    return {k: tuple(v) for k, v in out.items()}, share


def close(ours: float | None, theirs: float) -> bool:
    if ours is None:
        return math.isnan(theirs)
    if math.isnan(theirs) or theirs == 0:
        return ours == theirs or (math.isnan(theirs) and math.isnan(ours))
    return abs(ours - theirs) <= REL * abs(theirs)


def assert_same(ours, theirs: dict, share: float) -> None:
    got = {c.column: c for c in ours.columns}
    assert set(got) == set(theirs), set(got) ^ set(theirs)
    bad = []
    for name, (test, score, threshold, drifted) in theirs.items():
        c = got[name]
        if (c.test, c.threshold, c.drift_detected) != (test, threshold, drifted) or not close(
            c.score, score
        ):
            bad.append(
                (
                    name,
                    (c.test, c.score, c.threshold, c.drift_detected),
                    (test, score, threshold, drifted),
                )
            )
    assert not bad, bad
    assert ours.drift_share == pytest.approx(share, rel=1e-12, abs=0)
    assert ours.dataset_drift == (share >= 0.5)


# Sizes straddle the 1,000-row switch (it applies to the reference size after dropping
# missing values), KS's exact/asymptotic switch (10,000 current rows) and undrifted data.
@pytest.mark.parametrize(
    ("n_ref", "n_cur", "seed", "drift"),
    [
        (500, 500, 0, 0.3),
        (1000, 700, 1, 0.3),
        (1001, 1500, 2, 0.3),
        (1150, 900, 3, 0.0),
        (800, 12_000, 4, 0.2),
        (5000, 5000, 5, 0.3),
    ],
)
def test_default_preset_matches(ev: Any, n_ref: int, n_cur: int, seed: int, drift: float) -> None:
    ref, cur = mixed_frames(n_ref, n_cur, seed, drift)
    theirs, share = run_evidently(ev, ref, cur)
    assert_same(compute_drift(ref, cur), theirs, share)


NUMERIC_TESTS = [n for n, cls in STATTESTS.items() if "numerical" in cls.column_types]
CATEGORICAL_TESTS = [n for n, cls in STATTESTS.items() if "categorical" in cls.column_types]


def forced_frames(
    n_ref: int, n_cur: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """One copy of each base column per test name, so one Report checks every test."""
    ref, cur = mixed_frames(n_ref, n_cur, seed, 0.25)
    num_base = ["f_nan_inf", "i_hi", "f_few"]  # NaN/inf, integers, <= 20 distinct values
    cat_base = ["s_unseen", "b_flag", "i_lo", "c_dtype"]  # unseen keys, bool, int, category
    methods: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    r, c = {}, {}
    for base in num_base:
        for test in NUMERIC_TESTS:
            name = f"{base}__{test}"
            r[name], c[name] = ref[base], cur[base]
            methods[name] = test
    for base in cat_base:
        for test in CATEGORICAL_TESTS:
            name = f"{base}__{test}"
            r[name], c[name] = ref[base], cur[base]
            methods[name] = test
    # per-column thresholds: a p-value test and a distance test
    thresholds["f_nan_inf__ks"] = 0.01
    thresholds["s_unseen__jensenshannon"] = 0.02
    return pd.DataFrame(r), pd.DataFrame(c), methods, thresholds


def test_every_test_forced_by_name_matches(ev: Any) -> None:
    ref, cur, methods, thresholds = forced_frames(1200, 900, 11)
    theirs, share = run_evidently(
        ev, ref, cur, per_column_method=methods, per_column_threshold=thresholds
    )
    config = DriftConfig(per_column_test=methods, per_column_threshold=thresholds)
    ours = compute_drift(ref, cur, config)
    assert {c.test for c in ours.columns} == set(STATTESTS)
    assert_same(ours, theirs, share)


def test_per_type_methods_and_global_threshold_match(ev: Any) -> None:
    ref, cur = mixed_frames(900, 1100, 12, 0.2)
    ref, cur = (
        ref.drop(columns=["f_const", "f_const_moves"]),
        cur.drop(columns=["f_const", "f_const_moves"]),
    )
    theirs, share = run_evidently(
        ev, ref, cur, num_method="anderson", cat_method="psi", threshold=0.2
    )
    ours = compute_drift(
        ref, cur, DriftConfig(numerical_test="anderson", categorical_test="psi", threshold=0.2)
    )
    assert_same(ours, theirs, share)


def test_inf_without_nan_follows_evidentlys_per_column_rows(ev: Any) -> None:
    """Known difference (docs/statistics.md): Evidently's per-column rows drop +-inf, but
    its drifted-columns count re-tests a column with inf and no NaN without dropping them,
    gets a NaN score and counts it as not drifted. driftwarden's share follows the rows."""
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    cur = pd.DataFrame({"a": rng.normal(0.3, 1, 3000), "b": rng.normal(size=3000)})
    cur.loc[:5, "a"] = np.inf
    theirs, share = run_evidently(ev, ref, cur)
    ours = compute_drift(ref, cur)
    rows_share = sum(v[3] for v in theirs.values()) / len(theirs)
    assert share == 0.0 and rows_share == 0.5
    assert ours.drift_share == rows_share
    assert all(
        close(ours[k].score, v[1]) and ours[k].drift_detected == v[3] for k, v in theirs.items()
    )


# ---------------------------------------------------------------- direct calls, edge paths


def evidently_stattest(
    ev: Any, name: str, ref: pd.Series, cur: pd.Series, ctype: str
) -> tuple[float, bool]:
    column_type = ev.ColumnType.Numerical if ctype == "numerical" else ev.ColumnType.Categorical
    instance = next(iter(ev.registry._registered_stat_tests[name].values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = instance(ref.copy(), cur.copy(), column_type, None)
    return float(np.asarray(res.drift_score).item()), bool(res.drifted)


def ours_stattest(name: str, ref: pd.Series, cur: pd.Series, ctype: str) -> tuple[float, bool]:
    result = get_stattest(name)(summarize("x", ref).sample, summarize("x", cur).sample, ctype)
    return result.score, result.drift_detected


def scipy_cvm_exact(ref: pd.Series, cur: pd.Series) -> float:
    from scipy import stats

    return float(stats.cramervonmises_2samp(ref, cur, method="exact").pvalue)


@pytest.mark.parametrize(("n1", "n2"), [(3, 5), (7, 7), (20, 13), (15, 4)])
def test_cramer_von_mises_exact_path_is_scipys(ev: Any, n1: int, n2: int) -> None:
    """Both samples <= 20 values: Evidently 0.7.23's own exact p-value is broken under
    numpy 2 (its frequency table gets dtype ``np.min_scalar_type(float)`` = float16, or an
    unsigned int that overflows), so it raises or is off by ~1e-5. Ours is scipy's exact
    p-value of the same statistic; docs/statistics.md lists this as a known difference."""
    rng = np.random.default_rng(n1 * 100 + n2)
    ref = pd.Series(rng.normal(size=n1))
    cur = pd.Series(np.round(rng.normal(0.4, 1.0, size=n2), 1))
    ours = ours_stattest("cramer_von_mises", ref, cur, "numerical")
    assert close(ours[0], scipy_cvm_exact(ref, cur))
    try:
        theirs = evidently_stattest(ev, "cramer_von_mises", ref, cur, "numerical")
    except TypeError:
        return
    assert theirs[0] == pytest.approx(ours[0], rel=1e-3)


@pytest.mark.parametrize(("n1", "n2"), [(21, 20), (40, 45), (500, 30)])
def test_cramer_von_mises_asymptotic(ev: Any, n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 100 + n2)
    ref = pd.Series(rng.normal(size=n1))
    cur = pd.Series(np.round(rng.normal(0.4, 1.0, size=n2), 1))  # ties across samples
    theirs = evidently_stattest(ev, "cramer_von_mises", ref, cur, "numerical")
    ours = ours_stattest("cramer_von_mises", ref, cur, "numerical")
    assert close(ours[0], theirs[0]) and ours[1] == theirs[1]


@pytest.mark.parametrize(("n1", "n2"), [(300, 10_000), (300, 10_001), (1000, 25_000), (50, 60)])
def test_ks_exact_and_asymptotic(ev: Any, n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 + n2)
    ref = pd.Series(rng.normal(size=n1))
    cur = pd.Series(rng.normal(0.1, 1.0, size=n2))
    theirs = evidently_stattest(ev, "ks", ref, cur, "numerical")
    ours = ours_stattest("ks", ref, cur, "numerical")
    assert close(ours[0], theirs[0]) and ours[1] == theirs[1]


@pytest.mark.parametrize("name", ["hellinger", "jensenshannon", "psi", "kl_div"])
@pytest.mark.parametrize("case", ["ints", "ints_vs_floats", "floats_few", "identical", "wide_ints"])
def test_binned_tests_on_numbers(ev: Any, name: str, case: str) -> None:
    rng = np.random.default_rng(7)
    if case == "ints":
        ref, cur = pd.Series(rng.integers(0, 30, 400)), pd.Series(rng.integers(0, 34, 300))
    elif case == "ints_vs_floats":
        ref, cur = (
            pd.Series(rng.integers(0, 30, 400)),
            pd.Series(rng.integers(0, 30, 300).astype(float)),
        )
    elif case == "floats_few":
        ref, cur = (
            pd.Series(rng.choice([0.1, 0.2, 0.7], 500)),
            pd.Series(rng.choice([0.1, 0.2, 0.9], 500)),
        )
    elif case == "identical":
        ref = pd.Series(rng.normal(size=300))
        cur = ref.copy()
    else:
        ref, cur = pd.Series(rng.integers(0, 10_000, 400)), pd.Series(rng.integers(0, 12_000, 2000))
    theirs = evidently_stattest(ev, name, ref, cur, "numerical")
    ours = ours_stattest(name, ref, cur, "numerical")
    assert close(ours[0], theirs[0]) and ours[1] == theirs[1]


@pytest.mark.parametrize("name", ["chisquare", "z", "jensenshannon", "psi", "kl_div", "hellinger"])
@pytest.mark.parametrize("case", ["unseen", "one_value_same", "one_value_moves", "bools"])
def test_categorical_edge_cases(ev: Any, name: str, case: str) -> None:
    if case == "unseen":
        ref, cur = pd.Series(list("aabbbc") * 20), pd.Series(list("aabbcdde") * 15)
    elif case == "one_value_same":
        ref, cur = pd.Series(["k"] * 50), pd.Series(["k"] * 70)
    elif case == "one_value_moves":
        ref, cur = pd.Series(["k"] * 50), pd.Series(["j"] * 70)
    else:
        ref, cur = pd.Series([True, False, False] * 30), pd.Series([True, True, False] * 25)
    theirs = evidently_stattest(ev, name, ref, cur, "categorical")
    ours = ours_stattest(name, ref, cur, "categorical")
    assert close(ours[0], theirs[0]) and ours[1] == theirs[1], (ours, theirs)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(NUMERIC_TESTS)),
    ref=st.lists(st.one_of(finite, st.integers(-5, 5).map(float)), min_size=2, max_size=60),
    cur=st.lists(st.one_of(finite, st.integers(-5, 5).map(float)), min_size=2, max_size=60),
)
def test_numeric_tests_match_on_arbitrary_samples(ev: Any, name: str, ref: list, cur: list) -> None:
    r, c = pd.Series(ref), pd.Series(cur)
    ours = ours_stattest(name, r, c, "numerical")
    if name == "cramer_von_mises" and max(len(ref), len(cur)) <= 20:
        # see test_cramer_von_mises_exact_path_is_scipys
        assert (
            close(ours[0], scipy_cvm_exact(r, c)) or abs(ours[0] - scipy_cvm_exact(r, c)) <= 1e-12
        )
        return
    try:
        theirs = evidently_stattest(ev, name, r, c, "numerical")
    except ValueError:
        return  # Evidently rejects the sample (e.g. anderson on one distinct value)
    assert close(ours[0], theirs[0]) or abs(ours[0] - theirs[0]) <= 1e-12, (ours, theirs)
    assert ours[1] == theirs[1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(CATEGORICAL_TESTS)),
    ref=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=80),
    cur=st.lists(st.sampled_from("abcdefgxy"), min_size=1, max_size=80),
)
def test_categorical_tests_match_on_arbitrary_samples(
    ev: Any, name: str, ref: list, cur: list
) -> None:
    r, c = pd.Series(ref, dtype=object), pd.Series(cur, dtype=object)
    theirs = evidently_stattest(ev, name, r, c, "categorical")
    ours = ours_stattest(name, r, c, "categorical")
    assert close(ours[0], theirs[0]), (ours, theirs)
    assert ours[1] == theirs[1]
