"""Dataset drift: default test selection, thresholds, the opt-in options, errors, the
detector's window (update, merge, reset) and the JSON shape."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.drift import (
    ColumnMismatchError,
    DriftConfig,
    DriftConfigError,
    DriftDetector,
    compute_drift,
    default_test_name,
)
from detectors.fdr import benjamini_hochberg
from detectors.profile import ReferenceProfile, summarize

EVIDENTLY_KEYS = ["column", "type", "test", "score", "threshold", "drift_detected"]


def col(values, name: str = "x"):
    return summarize(name, values)


@pytest.mark.parametrize(
    ("n_ref", "values", "ctype", "expected"),
    [
        (1000, 10, "numerical", "ks"),
        (1000, 5, "numerical", "chisquare"),
        (1000, 3, "numerical", "chisquare"),
        (1000, 2, "numerical", "z"),
        (1000, 3, "categorical", "chisquare"),
        (1000, 2, "categorical", "z"),
        (1001, 6, "numerical", "wasserstein"),
        (1001, 5, "numerical", "jensenshannon"),
        (1001, 2, "categorical", "jensenshannon"),
        (5000, 50, "categorical", "jensenshannon"),
    ],
)
def test_default_test_table(n_ref: int, values: int, ctype: str, expected: str) -> None:
    ref = col(np.arange(n_ref) % values * 1.0)
    cur = col(np.arange(50) % values * 1.0)
    assert default_test_name(ctype, ref, cur) == expected


def test_only_cleaned_reference_size_counts() -> None:
    x = np.arange(1100, dtype=float)
    x[:150] = np.nan  # 950 values left: the small-sample branch
    assert default_test_name("numerical", col(x), col(np.arange(5000.0))) == "ks"


def test_distinct_values_of_both_sides_count() -> None:
    ref = col(np.array([0.0, 1.0] * 600))
    assert default_test_name("numerical", ref, col(np.array([0.0, 1.0]))) == "jensenshannon"
    assert default_test_name("numerical", ref, col(np.arange(4.0))) == "jensenshannon"
    assert default_test_name("numerical", ref, col(np.arange(6.0))) == "wasserstein"


def frames(n: int = 2000, seed: int = 0, shift: float = 0.0):
    rng = np.random.default_rng(seed)

    def one(s: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "num": rng.normal(s, 1, n),
                "num2": rng.normal(0, 1, n),
                "cat": rng.choice(["a", "b", "c"], n, p=[0.5 - s / 4, 0.3, 0.2 + s / 4]).astype(
                    object
                ),
                "small_int": rng.integers(0, 3, n),
            }
        )

    return one(0.0), one(shift)


def test_threshold_precedence() -> None:
    ref, cur = frames()
    config = DriftConfig(threshold=0.3, per_column_threshold={"num": 0.01})
    res = compute_drift(ref, cur, config)
    assert res["num"].threshold == 0.01 and res["num2"].threshold == 0.3


def test_forced_tests_and_type_checks() -> None:
    ref, cur = frames()
    res = compute_drift(ref, cur, DriftConfig(numerical_test="ks", categorical_test="chisquare"))
    assert [c.test for c in res.columns] == ["ks", "ks", "chisquare", "chisquare"]
    with pytest.raises(DriftConfigError, match="does not apply to categorical"):
        DriftConfig(categorical_test="ks")
    with pytest.raises(DriftConfigError, match="unknown drift test 't'"):
        DriftConfig(per_column_test={"num": "t"})
    with pytest.raises(DriftConfigError, match="column 'cat': test 'wasserstein' does not apply"):
        compute_drift(ref, cur, DriftConfig(per_column_test={"cat": "wasserstein"}))


def test_column_types_given_by_caller() -> None:
    ref, cur = frames()
    res = compute_drift(ref, cur, column_types={"small_int": "numerical"}, columns=["small_int"])
    assert res["small_int"].type == "numerical" and res["small_int"].test == "jensenshannon"


def test_missing_column_and_type_clash() -> None:
    ref, cur = frames()
    with pytest.raises(ColumnMismatchError, match="'num' is missing from the current data"):
        compute_drift(ref, cur.drop(columns=["num"]), columns=["num"])
    with pytest.raises(ColumnMismatchError, match="'extra' is missing from the reference data"):
        compute_drift(ref, cur.assign(extra=1.0))
    with pytest.raises(
        ColumnMismatchError, match="'num' is numerical but the current data holds str"
    ):
        compute_drift(ref, cur.assign(num="x"), column_types={"num": "numerical"})
    with pytest.raises(
        ColumnMismatchError,
        match="'cat': the reference holds str values but the current data holds float",
    ):
        compute_drift(ref, cur.assign(cat=1.5), column_types={"cat": "categorical"})


def test_text_and_datetime_columns_are_skipped() -> None:
    ref, cur = frames(300)
    ref["id"] = [f"r{i}" for i in range(300)]
    cur["id"] = [f"c{i}" for i in range(300)]
    ref["ts"] = cur["ts"] = pd.date_range("2024-01-01", periods=300, freq="min")
    res = compute_drift(ref, cur)
    assert "id" in res.skipped and "ts" in res.skipped
    assert [c.column for c in res.columns] == ["num", "num2", "cat", "small_int"]


def test_json_shape_is_exactly_designs_by_default() -> None:
    ref, cur = frames(shift=0.5)
    out = compute_drift(ref, cur).to_dict()
    assert list(out) == ["dataset_drift", "drift_share", "columns"]
    assert all(list(c) == EVIDENTLY_KEYS for c in out["columns"])
    json.dumps(out, allow_nan=False)
    assert out["drift_share"] == sum(c["drift_detected"] for c in out["columns"]) / 4
    assert out["dataset_drift"] == (out["drift_share"] >= 0.5)


def test_empty_side_gets_no_verdict_and_leaves_the_share() -> None:
    ref, cur = frames()
    cur["num"] = np.nan
    res = compute_drift(ref, cur)
    assert res["num"].score is None and not res["num"].drift_detected and not res["num"].tested
    assert res.n_tested == 3
    assert res.to_dict()["columns"][0]["score"] is None


def test_min_rows_guard() -> None:
    ref, cur = frames()
    res = compute_drift(ref, cur.iloc[:40], DriftConfig(min_rows=50))
    assert all(c.status == "insufficient_data" for c in res.columns)
    assert res.drift_share == 0.0 and not res.dataset_drift
    row = res.to_dict()["columns"][0]
    assert row["status"] == "insufficient_data" and row["n_current"] == 40
    ok = compute_drift(ref, cur, DriftConfig(min_rows=50))
    assert all(c.status == "ok" for c in ok.columns)


def test_effect_size_option() -> None:
    ref, cur = frames(800, shift=0.3)
    res = compute_drift(ref, cur, DriftConfig(effect_size=True))
    row = res.to_dict()["columns"]
    assert {r["test"]: r["effect_size_measure"] for r in row} == {
        "ks": "ks_d",
        "chisquare": "cramers_v",
    }
    assert all(0 <= r["effect_size"] <= 1 for r in row)


def test_fdr_option_adjusts_p_value_verdicts() -> None:
    ref, cur = frames(800, seed=3)
    plain = compute_drift(ref, cur, DriftConfig())
    res = compute_drift(ref, cur, DriftConfig(fdr_alpha=0.05))
    pvals = np.array([c.score for c in plain.columns])
    rejected, adjusted = benjamini_hochberg(pvals, 0.05)
    for c, rej, adj in zip(res.columns, rejected, adjusted, strict=True):
        assert (
            c.threshold == 0.05 and c.p_adjusted == pytest.approx(adj) and c.drift_detected == rej
        )
    assert "p_adjusted" in res.to_dict()["columns"][0]


def test_fdr_leaves_distance_tests_alone() -> None:
    ref, cur = frames(3000, shift=0.4)
    res = compute_drift(ref, cur, DriftConfig(fdr_alpha=0.05))
    assert all(c.p_adjusted is None and c.threshold == 0.1 for c in res.columns)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.floats(0.001, 0.5))
def test_benjamini_hochberg_matches_scipy(p: list, alpha: float) -> None:
    from scipy import stats

    rejected, adjusted = benjamini_hochberg(np.array(p), alpha)
    np.testing.assert_allclose(adjusted, stats.false_discovery_control(p), rtol=1e-12)
    # step-up rule: reject the k smallest, k = max{i : p_(i) <= i alpha / m}
    ps = np.sort(p)
    # i * alpha / m is itself rounded, so a p-value exactly on the line may go either way;
    # the count must lie between the oracle's strict and loose readings of the line.
    line = np.arange(1, len(p) + 1) * alpha / len(p)

    def step_up(bound: np.ndarray) -> int:
        ok = np.flatnonzero(ps <= bound)
        return int(ok[-1] + 1) if ok.size else 0

    assert step_up(line * (1 - 1e-12)) <= rejected.sum() <= step_up(line * (1 + 1e-12))
    # and the rejected hypotheses are the smallest p-values
    assert np.array_equal(np.sort(np.asarray(p)[rejected]), ps[: rejected.sum()])


def test_missing_share_option() -> None:
    ref, cur = frames(5000)
    cur.loc[cur.index[:500], "num"] = np.nan  # 0% -> 10% missing, values themselves unchanged
    assert not compute_drift(ref, cur)["num"].drift_detected
    res = compute_drift(ref, cur, DriftConfig(missing_share_drift=True))
    num = res["num"]
    assert num.missing_share_drift and num.drift_detected and not num.distribution_drift
    assert (num.missing_share_reference, num.missing_share_current) == (0.0, 0.1)
    assert not res["num2"].missing_share_drift


def test_unseen_category_option() -> None:
    ref, cur = frames(5000)
    cur.loc[cur.index[:300], "cat"] = "brand_new"  # 6% of rows in a category never seen
    res = compute_drift(ref, cur, DriftConfig(unseen_category_drift=True))
    assert res["cat"].unseen_share == pytest.approx(0.06)
    assert res["cat"].unseen_category_drift and res["cat"].drift_detected
    assert res["num"].unseen_share is None
    # a few rare unseen values are what sampling explains: no flag
    ref2, cur2 = frames(5000, seed=1)
    cur2.loc[cur2.index[:3], "cat"] = ["n1", "n2", "n3"]
    assert not compute_drift(ref2, cur2, DriftConfig(unseen_category_drift=True))[
        "cat"
    ].unseen_category_drift


def test_chisquare_min_expected_pools_sparse_cells() -> None:
    rng = np.random.default_rng(0)
    p = np.array([0.4, 0.3, 0.2] + [0.1 / 20] * 20)
    keys = np.array([f"k{i}" for i in range(23)], dtype=object)
    ref = pd.DataFrame({"c": rng.choice(keys, 600, p=p)})
    cur = pd.DataFrame({"c": rng.choice(keys, 600, p=p)})
    sound = compute_drift(ref, cur, DriftConfig(chisquare_min_expected=5.0))["c"]
    assert sound.test == "chisquare" and 0.0 <= sound.score <= 1.0
    cur.loc[:5, "c"] = "unseen"
    with_unseen = compute_drift(ref, cur, DriftConfig(chisquare_min_expected=5.0))["c"]
    assert with_unseen.score > 0.0  # Evidently's gives p = 0 for any unseen category
    assert compute_drift(ref, cur)["c"].score == 0.0


def test_detector_update_merge_and_reset_equal_one_shot() -> None:
    ref, cur = frames(3000, shift=0.2)
    profile = ReferenceProfile.from_frame(ref)
    whole = compute_drift(profile, cur)
    a = DriftDetector(profile).update(cur.iloc[:1000]).update(cur.iloc[1000:1700])
    b = DriftDetector(profile).update(cur.iloc[1700:])
    a += b
    assert a.n_rows == 3000
    assert a.result.to_dict() == whole.to_dict()
    a._reset()
    assert a.n_rows == 0
    assert a.update(cur).result.to_dict() == whole.to_dict()


def test_workers_give_the_same_result() -> None:
    ref, cur = frames(3000, shift=0.2)
    assert compute_drift(ref, cur, workers=3).to_dict() == compute_drift(ref, cur).to_dict()
