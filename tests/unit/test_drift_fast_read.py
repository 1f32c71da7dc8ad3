"""`driftwarden drift` reads files with pyarrow, without pandas or scipy, to the same summaries.

The pandas reader (`read_table`) is the meaning; the pyarrow reader (`read_columns`) must give
the same profile of every column: same family, same counts of rows, missing and infinite
values, same sorted values, same categories in the same order with the same counts.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors.profile import CategoryCounts, NumericSample, ReferenceProfile
from detectors.stattests._shared import REL_ENTR_EXACT_MAX, rel_entr
from driftwarden.errors import DataFileError
from driftwarden.tables import read_columns, read_table

ROOT = Path(__file__).resolve().parents[2]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    with_nan = rng.normal(size=n)
    with_nan[rng.random(n) < 0.2] = np.nan
    with_nan[:3] = [np.inf, -np.inf, np.nan]
    words = rng.choice(np.array(["red", "green", "blue", "teal"]), n).astype(object)
    words[rng.random(n) < 0.1] = None
    flags = (rng.random(n) < 0.3).astype(object)
    flags[rng.random(n) < 0.1] = None
    return pd.DataFrame(
        {
            "f64": rng.normal(size=n),
            "f32": rng.normal(size=n).astype(np.float32),
            "with_nan": with_nan,
            "i64": rng.poisson(3.0, n),
            "u8": rng.integers(0, 200, n).astype(np.uint8),
            "few_ints": rng.integers(0, 4, n),
            "bool": rng.random(n) < 0.4,
            "bool_with_null": flags,
            "words": words,
            "ids": np.array([f"id{i}" for i in range(n)], dtype=object),
            "all_null_text": np.array([None] * n, dtype=object),
            "category": pd.Categorical(
                rng.choice(["a", "b", "c"], n), categories=["c", "b", "a", "z"]
            ),
            "when": pd.date_range("2024-01-01", periods=n, freq="min"),
            "nullable_int": pd.array(
                [None if i % 7 == 0 else i % 5 for i in range(n)], dtype="Int64"
            ),
        }
    )


def assert_same_profiles(fast: ReferenceProfile, slow: ReferenceProfile) -> None:
    assert list(fast.columns) == list(slow.columns)
    assert dict(fast.skipped) == dict(slow.skipped)
    for name, s in slow.columns.items():
        f = fast.columns[name]
        assert (f.dtype, f.n_rows, f.n_missing, f.n_nonfinite) == (
            s.dtype,
            s.n_rows,
            s.n_missing,
            s.n_nonfinite,
        ), name
        assert f.evidently_type == s.evidently_type, name
        if isinstance(s.sample, NumericSample):
            assert isinstance(f.sample, NumericSample), name
            assert f.sample.integer == s.sample.integer, name
            np.testing.assert_array_equal(f.sample.values, s.sample.values)
            assert f.sample.std == s.sample.std or (
                math.isnan(f.sample.std) and math.isnan(s.sample.std)
            ), name
        else:
            assert isinstance(f.sample, CategoryCounts), name
            assert f.sample.keys.tolist() == s.sample.keys.tolist(), name
            assert f.sample.counts.tolist() == s.sample.counts.tolist(), name


def _profiles(path: Path) -> tuple[ReferenceProfile, ReferenceProfile]:
    fast = read_columns(path)
    assert "pandas" not in {type(v).__module__.partition(".")[0] for v in fast.values()}
    return (
        ReferenceProfile.from_frame(fast, text_columns=fast.text),
        ReferenceProfile.from_frame(read_table(path)),
    )


@pytest.mark.parametrize("row_group_size", [None, 97])
def test_parquet_columns_summarise_as_pandas_reads_them(tmp_path: Path, row_group_size) -> None:
    frame = _frame(1000, seed=1).drop(columns=["nullable_int"])
    path = tmp_path / "data.parquet"
    frame.to_parquet(path, row_group_size=row_group_size)
    fast, slow = _profiles(path)
    assert_same_profiles(fast, slow)
    # the point of the fast path: strings stay dictionary codes, never Python objects
    assert read_columns(path).text == {"words", "ids"}  # all-None objects: arrow null type
    assert fast["ids"].evidently_type == "text" and fast["category"].evidently_type == "categorical"
    assert fast.skipped == {"when": "datetime column (not drift-tested)"}


def test_parquet_with_a_pandas_only_dtype_is_read_by_pandas(tmp_path: Path) -> None:
    frame = _frame(300, seed=2)
    path = tmp_path / "nullable.parquet"
    frame.to_parquet(path)
    columns = read_columns(path)
    assert isinstance(columns["nullable_int"], pd.Series)
    assert_same_profiles(
        ReferenceProfile.from_frame(columns), ReferenceProfile.from_frame(read_table(path))
    )
    assert ReferenceProfile.from_frame(columns)["nullable_int"].dtype == "int"


def test_parquet_with_an_index_and_a_column_subset(tmp_path: Path) -> None:
    frame = _frame(200, seed=3).set_index("ids")
    path = tmp_path / "indexed.parquet"
    frame.to_parquet(path)
    columns = read_columns(path, columns=["words", "f64"])
    assert list(columns) == ["words", "f64"]
    with pytest.raises(DataFileError, match=r"missing column\(s\) 'ids'"):
        read_columns(path, columns=["ids"])  # the index is not a column, as in pandas


def test_arrow_written_parquet_with_dictionaries_and_chunks(tmp_path: Path) -> None:
    words = pa.chunked_array(
        [
            pa.array(["b", None, "a", "b"]).dictionary_encode(),
            pa.array(["c", "a", "d", None, "d"]).dictionary_encode(),
        ]
    )
    nums = pa.chunked_array(
        [pa.array([1, None, 3, 4], pa.int32()), pa.array([5, 6, 7, 8, 9], pa.int32())]
    )
    path = tmp_path / "arrow.parquet"
    pq.write_table(pa.table({"words": words, "nums": nums}), path, row_group_size=4)
    fast, slow = _profiles(path)
    assert_same_profiles(fast, slow)
    assert fast["words"].sample.keys.tolist() == ["b", "a", "c", "d"]
    assert fast["nums"].dtype == "float" and fast["nums"].n_missing == 1


def test_csv_columns_summarise_as_pandas_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        "num,int,int_na,flag,text,day,empty,mixed,none_word\n"
        " 1.5,1,1,True,x,2020-01-01,,1,None\n"
        "inf,2,,false,,2020-01-02,,True,a\n"
        "NA,3,3,TRUE,y,2020-01-03,,x,b\n"
        "-inf,4,4,False,x,2020-01-04,,2,None\n"
        "nan,5,5,true,z,2020-01-05,,3,c\n",
        encoding="utf-8",
    )
    fast, slow = _profiles(path)
    assert_same_profiles(fast, slow)
    assert fast["day"].dtype == "str"  # pandas parses no dates: neither do we
    assert fast["none_word"].n_missing == 2  # "None" is missing for pandas
    subset = read_columns(path, columns=["text", "num"])
    assert list(subset) == ["text", "num"]
    with pytest.raises(DataFileError, match=r"missing column\(s\) 'nope'"):
        read_columns(path, columns=["num", "nope"])


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataFileError, match="cannot read as parquet"):
        read_columns(bad)
    with pytest.raises(DataFileError, match="no such file"):
        read_columns(tmp_path / "absent.csv")
    with pytest.raises(DataFileError, match="unsupported file type"):
        read_columns(tmp_path / "x.txt")


def test_rel_entr_is_scipys_to_the_bit() -> None:
    from scipy.special import rel_entr as scipy_rel_entr

    rng = np.random.default_rng(0)
    p, q = rng.random(2000), rng.random(2000)
    p[::7] = 0.0
    edge_x = np.array([0.0, 0.0, 1.0, 1.0, 0.5, -1.0, np.nan, 0.2, 1e-300])
    edge_y = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 1.0, 1.0, -1.0, 1e-10])
    for x, y in ((p, q), (edge_x, edge_y)):
        np.testing.assert_array_equal(rel_entr(x, y), scipy_rel_entr(x, y))
    big = rng.random(REL_ENTR_EXACT_MAX + 1)
    np.testing.assert_allclose(rel_entr(big, big[::-1]), scipy_rel_entr(big, big[::-1]), rtol=1e-14)


def test_drift_command_loads_neither_pandas_nor_scipy(tmp_path: Path) -> None:
    frame = _frame(2000, seed=4).drop(columns=["nullable_int"])  # > 1000 rows: no scipy
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    frame.to_parquet(ref)
    frame.sample(frac=1.0, random_state=1).to_parquet(cur)
    probe = (
        "import sys\n"
        "from driftwarden.cli import main\n"
        "try:\n"
        f"    main(['drift', '-r', {str(ref)!r}, '-c', {str(cur)!r}, '-f', 'json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('pandas', 'scipy', 'numpy.ma') if m in sys.modules)\n"
        "print('LOADED', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dataset_drift"] is False and doc["columns"]
