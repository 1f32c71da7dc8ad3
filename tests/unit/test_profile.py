"""Reference profiles and window state: summaries, the file format, merge equals whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.column_window import ColumnWindow
from detectors.profile import (
    PROFILE_VERSION,
    CategoryCounts,
    NumericSample,
    ProfileError,
    ReferenceProfile,
    dtype_family,
    summarize,
)


def frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[::17] = np.nan
    x[5] = np.inf
    s = rng.choice(["a", "b", "c"], n).astype(object)
    s[::13] = None
    return pd.DataFrame(
        {
            "x": x,
            "i": rng.integers(0, 4, n),
            "big_i": rng.integers(0, 1000, n),
            "s": s,
            "b": rng.random(n) < 0.3,
            "cat": pd.Categorical(rng.choice(["lo", "hi"], n)),
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
        }
    )


def test_numeric_summary() -> None:
    p = ReferenceProfile.from_frame(frame())["x"]
    assert p.kind == "numeric" and p.dtype == "float"
    assert p.n_rows == 200 and p.n_missing == 12 and p.n_nonfinite == 1
    assert p.n == 187
    assert np.all(np.diff(p.sample.values) >= 0)
    raw = frame()["x"].to_numpy()
    clean = raw[np.isfinite(raw)]
    assert p.sample.std == float(np.std(clean))  # row order, as Evidently sums it
    assert p.missing_share == pytest.approx(12 / 200)
    assert (p.sample.min, p.sample.max) == (clean.min(), clean.max())


def test_label_summary_keeps_first_appearance_order() -> None:
    s = pd.Series(["b", None, "a", "b", np.nan, "c", "a"], dtype=object)
    p = summarize("s", s)
    assert p.kind == "label"
    assert p.sample.keys.tolist() == list(s.dropna().unique())
    assert p.sample.counts.tolist() == [2, 2, 1]
    assert (p.n_rows, p.n_missing, p.n) == (7, 2, 5)


@pytest.mark.parametrize(
    ("column", "family", "etype"),
    [
        ("x", "float", "numerical"),
        ("i", "int", "categorical"),
        ("big_i", "int", "numerical"),
        ("s", "str", "categorical"),
        ("b", "bool", "categorical"),
        ("cat", "category", "categorical"),
    ],
)
def test_families_and_evidently_types(column: str, family: str, etype: str) -> None:
    p = ReferenceProfile.from_frame(frame())[column]
    assert (p.dtype, p.evidently_type) == (family, etype)


def test_text_and_unknown_columns() -> None:
    ids = pd.Series([f"id{i}" for i in range(50)], dtype=object)
    assert summarize("ids", ids).evidently_type == "text"
    mixed = pd.Series([1, "a", 2.5], dtype=object)
    assert dtype_family(mixed) == "object"
    assert summarize("m", mixed).evidently_type == "unknown"


def test_datetime_columns_are_skipped() -> None:
    prof = ReferenceProfile.from_frame(frame())
    assert "when" not in prof and "when" in prof.skipped


def test_count_distinct_is_capped() -> None:
    s = NumericSample(np.array([1.0, 1, 2, 3, 3, 3, 4, 5, 6]), integer=True)
    assert [s.count_distinct(c) for c in (1, 3, 6, 7, 100)] == [1, 3, 6, 6, 6]
    assert s.n_unique == 6
    assert s.as_counts().keys.tolist() == [1, 2, 3, 4, 5, 6]


def test_save_load_round_trip(tmp_path: Path) -> None:
    prof = ReferenceProfile.from_frame(frame())
    path = prof.save(tmp_path / "ref.npz")
    back = ReferenceProfile.load(path)
    assert list(back) == list(prof) and back.skipped == prof.skipped
    for name in prof:
        a, b = prof[name], back[name]
        assert (a.dtype, a.n_rows, a.n_missing, a.n_nonfinite, a.kind) == (
            b.dtype,
            b.n_rows,
            b.n_missing,
            b.n_nonfinite,
            b.kind,
        )
        if a.kind == "numeric":
            np.testing.assert_array_equal(a.sample.values, b.sample.values)
            assert (a.sample.std, a.sample.integer) == (b.sample.std, b.sample.integer)
        else:
            assert a.sample.keys.tolist() == b.sample.keys.tolist()
            assert [type(k) for k in a.sample.keys] == [
                type(k) for k in b.sample.keys
            ] or name == "b"
            assert a.sample.counts.tolist() == b.sample.counts.tolist()


def test_load_never_unpickles(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, header=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(ProfileError, match="not a driftwarden reference profile"):
        ReferenceProfile.load(path)


def test_load_rejects_other_files_and_versions(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(ProfileError, match="not a driftwarden reference profile"):
        ReferenceProfile.load(junk)
    path = ReferenceProfile.from_frame(frame()).save(tmp_path / "ref.npz")
    with np.load(path) as npz:
        arrays = dict(npz)
    header = json.loads(bytes(arrays["header"]).decode())
    header["version"] = PROFILE_VERSION + 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ProfileError, match="version 2 is not supported"):
        ReferenceProfile.load(path)


values = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-5, 5).map(float)
    ),
    max_size=60,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    x=values,
    strings=st.lists(st.one_of(st.none(), st.sampled_from(["α", "b", "c d", ""])), max_size=40),
)
def test_profile_file_round_trip_property(tmp_path: Path, x: list, strings: list) -> None:
    data = {"x": np.asarray(x, dtype=float), "s": np.asarray(strings, dtype=object)}
    prof = ReferenceProfile.from_frame(data)
    back = ReferenceProfile.load(prof.save(tmp_path / "p.npz"))
    np.testing.assert_array_equal(prof["x"].sample.values, back["x"].sample.values)
    assert prof["x"].n_missing == back["x"].n_missing
    assert prof["s"].sample.keys.tolist() == back["s"].sample.keys.tolist()
    assert prof["s"].sample.counts.tolist() == back["s"].sample.counts.tolist()


@settings(max_examples=150, deadline=None)
@given(x=values, cut=st.integers(0, 60))
def test_window_merge_equals_whole_numeric(x: list, cut: int) -> None:
    arr = np.asarray(x, dtype=float)
    whole = ColumnWindow("x").update(arr).profile
    left = ColumnWindow("x").update(arr[:cut])
    right = ColumnWindow("x").update(arr[cut:])
    left += right
    merged = left.profile
    np.testing.assert_array_equal(whole.sample.values, merged.sample.values)
    assert (whole.n_rows, whole.n_missing, whole.n_nonfinite) == (
        merged.n_rows,
        merged.n_missing,
        merged.n_nonfinite,
    )


@settings(max_examples=150, deadline=None)
@given(
    s=st.lists(st.one_of(st.none(), st.sampled_from("abcde")), max_size=60), cut=st.integers(0, 60)
)
def test_window_merge_equals_whole_labels(s: list, cut: int) -> None:
    arr = np.asarray(s, dtype=object)
    whole = ColumnWindow("s").update(arr).profile
    merged = ColumnWindow("s").update(arr[:cut])
    merged += ColumnWindow("s").update(arr[cut:])
    m = merged.profile
    assert dict(zip(whole.sample.keys, whole.sample.counts, strict=True)) == dict(
        zip(m.sample.keys, m.sample.counts, strict=True)
    )
    assert (whole.n_rows, whole.n_missing) == (m.n_rows, m.n_missing)


def test_window_reset_and_type_clash() -> None:
    w = ColumnWindow("x").update(np.array([1.0, 2.0]))
    w._reset()
    assert w.n_rows == 0
    w.update(np.array([1, 2]))
    w.update(np.array([0.5]))
    assert w.profile.dtype == "float"
    with pytest.raises(ProfileError, match="numbers in one batch"):
        w.update(np.array(["a"], dtype=object))


def test_category_counts_lookup() -> None:
    c = CategoryCounts(np.array(["a", 1.0], dtype=object), np.array([3, 2]))
    assert c.counts_of(np.array(["a", 1, "z"], dtype=object)).tolist() == [3, 2, 0]
