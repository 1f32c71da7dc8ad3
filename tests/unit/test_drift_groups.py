"""`driftwarden drift` on wide parquet files reads and tests the columns in groups (memory
bounded by `GROUP_BYTES`, not by the number of columns) with the result of reading them all
at once: the same columns in the same order, the same verdicts, the same skipped columns,
the false discovery rate and the dataset verdict across every column, the same errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import driftwarden.cli.drift as drift_cli
from driftwarden.cli import main

N_BLOCKS = 6


def _frame(n: int, rng: np.random.Generator, drifted: bool) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    for b in range(N_BLOCKS):
        shift = 0.3 * b if drifted and b % 2 else 0.0
        cols[f"b{b}_normal"] = rng.normal(shift, 1.0, n)
        cols[f"b{b}_counts"] = rng.poisson(2.0 + shift, n)
        with_nan = rng.normal(0.0, 1.0, n)
        with_nan[rng.random(n) < 0.1] = np.nan
        cols[f"b{b}_missing"] = with_nan
        cols[f"b{b}_colour"] = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
        cols[f"b{b}_flag"] = rng.random(n) < (0.3 + 0.1 * shift)
    cols["when"] = pd.date_range("2024-01-01", periods=n, freq="min")  # skipped
    return pd.DataFrame(cols)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("groups")
    rng = np.random.default_rng(7)
    ref, cur = _frame(3000, rng, False), _frame(2500, rng, True)
    paths = {"ref": d / "ref.parquet", "cur": d / "cur.parquet"}
    ref.to_parquet(paths["ref"], index=False)
    cur.to_parquet(paths["cur"], index=False)
    cur.drop(columns=["b3_flag"]).to_parquet(d / "cur-missing.parquet", index=False)
    cur.assign(extra=1.0).to_parquet(d / "cur-extra.parquet", index=False)
    features = [c for c in ref.columns if c != "when"]
    for name, drift in (
        (
            "fdr",
            {
                "fdr_alpha": 0.05,
                "numerical_test": "ks",
                "effect_size": True,
                "missing_share_drift": True,
            },
        ),
        ("calibrated", {"thresholds": "calibrated"}),
    ):
        spec = {
            "model": "wide",
            "features": [
                {
                    "name": c,
                    "type": "numerical" if ref[c].dtype.kind in "fi" else "categorical",
                }
                for c in features
            ],
            "reference": {"path": str(paths["ref"])},
            "drift": drift,
        }
        paths[name] = d / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(spec))
    paths["missing"] = d / "cur-missing.parquet"
    paths["extra"] = d / "cur-extra.parquet"
    return paths


def _run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    group_bytes: int,
    *args: str,
) -> tuple[int, str, str]:
    monkeypatch.setattr(drift_cli, "GROUP_BYTES", group_bytes)
    with pytest.raises(SystemExit) as exc:
        main(["drift", *args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


WHOLE = 10**12
#: 5 columns of 5,500 rows per group
SMALL = drift_cli.BYTES_PER_VALUE * 5500 * 5


def _assert_same(whole: dict[str, Any], grouped: dict[str, Any]) -> None:
    assert {k: v for k, v in whole.items() if k != "columns"} == {
        k: v for k, v in grouped.items() if k != "columns"
    }
    assert [c["column"] for c in whole["columns"]] == [c["column"] for c in grouped["columns"]]
    for a, b in zip(whole["columns"], grouped["columns"], strict=True):
        assert {k: v for k, v in a.items() if k != "score"} == {
            k: v for k, v in b.items() if k != "score"
        }, a["column"]
        # summation order of threads varies run to run already: not a bit-identity
        assert b["score"] == pytest.approx(a["score"], rel=1e-9, abs=1e-15), a["column"]


@pytest.mark.parametrize("spec", [None, "fdr", "calibrated"])
def test_groups_give_the_result_of_reading_every_column_at_once(
    files: dict[str, Path], capsys: Any, monkeypatch: Any, spec: str | None
) -> None:
    args = ["-r", str(files["ref"]), "-c", str(files["cur"]), "--format", "json"]
    if spec is not None:
        args += ["--spec", str(files[spec])]
    assert drift_cli.column_groups(files["ref"], files["cur"], None) is None  # fits at once
    monkeypatch.setattr(drift_cli, "GROUP_BYTES", SMALL)
    groups = drift_cli.column_groups(files["ref"], files["cur"], None)
    assert groups is not None and len(groups) == 7 and len(groups[0][0]) == 5
    assert groups[-1] == (["when"], ["when"])  # the datetime column, skipped later
    code, out, err = _run(capsys, monkeypatch, WHOLE, *args)
    assert code == 0, err
    whole = json.loads(out)
    code, out, err = _run(capsys, monkeypatch, SMALL, *args)
    assert code == 0, err
    grouped = json.loads(out)
    _assert_same(whole, grouped)
    assert any(c["drift_detected"] for c in grouped["columns"])
    assert not all(c["drift_detected"] for c in grouped["columns"])
    if spec == "fdr":  # adjusted across all 30 columns (_assert_same), not within a group
        assert sum(c["test"] == "ks" for c in grouped["columns"]) == 3 * N_BLOCKS
        assert all("p_adjusted" in c for c in grouped["columns"] if c["test"] == "ks")


@pytest.mark.parametrize(
    ("current", "spec"),
    [("missing", "fdr"), ("missing", "calibrated"), ("extra", None)],
)
def test_groups_fail_with_the_same_line(
    files: dict[str, Path], capsys: Any, monkeypatch: Any, current: str, spec: str | None
) -> None:
    args = ["-r", str(files["ref"]), "-c", str(files[current]), "--format", "json"]
    if spec is not None:
        args += ["--spec", str(files[spec])]
    whole = _run(capsys, monkeypatch, WHOLE, *args)
    grouped = _run(capsys, monkeypatch, SMALL, *args)
    assert whole[0] == grouped[0] == 2
    assert whole[2] == grouped[2] and whole[2].startswith("error:"), whole[2]


def test_html_and_saved_profiles_read_every_column_at_once(
    files: dict[str, Path], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """The HTML report and `--save-profile` need every column's profile at the end."""
    args = ["-r", str(files["ref"]), "-c", str(files["cur"])]
    code, out, err = _run(capsys, monkeypatch, SMALL, *args, "--format", "html")
    assert code == 0 and out.count("<svg") > 0, err
    saved = tmp_path / "ref.npz"
    code, _, err = _run(capsys, monkeypatch, SMALL, *args, "--save-profile", str(saved))
    assert code == 0 and saved.stat().st_size > 0, err


def test_csv_is_read_at_once(files: dict[str, Path], tmp_path: Path, monkeypatch: Any) -> None:
    csv = tmp_path / "cur.csv"
    pd.read_csv  # noqa: B018 (pandas writes the CSV the user would have)
    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(csv, index=False)
    monkeypatch.setattr(drift_cli, "GROUP_BYTES", 1)
    assert drift_cli.column_groups(files["ref"], csv, None) is None
