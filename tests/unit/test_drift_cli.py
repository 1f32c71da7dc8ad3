"""`driftwarden drift`: JSON shape, table, HTML, profiles, spec options and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from driftwarden.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("drift")
    rng = np.random.default_rng(0)

    def frame(n: int, shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "age": rng.normal(40 + 10 * shift, 10, n),
                "income": rng.lognormal(10, 1, n),
                "country": rng.choice(
                    ["DE", "US", "FR"], n, p=[0.5 - shift / 3, 0.3, 0.2 + shift / 3]
                ),
                "clicks": rng.poisson(2, n),
                "prediction": rng.random(n),
                "target": rng.integers(0, 2, n),
            }
        )

    ref, cur = frame(1500, 0.0), frame(1200, 0.6)
    paths = {
        "ref": d / "ref.parquet",
        "cur": d / "cur.csv",
        "spec": d / "spec.yaml",
        "bad": d / "bad.parquet",
        "clash": d / "clash.csv",
        "missing": d / "missing.csv",
        "extra": d / "extra.csv",
    }
    ref.to_parquet(paths["ref"])
    cur.to_csv(paths["cur"], index=False)
    paths["bad"].write_text("this is not parquet")
    cur.assign(age="forty").to_csv(paths["clash"], index=False)
    cur.drop(columns=["country"]).to_csv(paths["missing"], index=False)
    cur.assign(extra=1.0).to_csv(paths["extra"], index=False)
    spec = {
        "model": "m",
        "features": [
            {"name": "age", "type": "numerical", "test": "ks", "threshold": 0.01},
            {"name": "country", "type": "categorical"},
            {"name": "clicks", "type": "numerical"},
        ],
        "prediction": {"column": "prediction", "type": "probability"},
        "target": {"column": "target", "type": "class"},
        "reference": {"path": str(paths["ref"])},
        "drift": {"effect_size": True, "fdr_alpha": 0.1},
    }
    paths["spec"].write_text(yaml.safe_dump(spec))
    return paths


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["drift", *args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_json_is_exactly_the_designed_shape(files, capsys) -> None:
    code, out, _ = run(capsys, "-r", str(files["ref"]), "-c", str(files["cur"]), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == ["dataset_drift", "drift_share", "columns"]
    assert [c["column"] for c in doc["columns"]] == [
        "age",
        "income",
        "country",
        "clicks",
        "prediction",
        "target",
    ]
    for c in doc["columns"]:
        assert list(c) == ["column", "type", "test", "score", "threshold", "drift_detected"]
    by = {c["column"]: c for c in doc["columns"]}
    assert by["age"]["test"] == "wasserstein" and by["age"]["drift_detected"] is True
    assert by["clicks"]["type"] == "categorical"  # int with <= 10 values, as Evidently types it
    assert doc["drift_share"] == sum(c["drift_detected"] for c in doc["columns"]) / 6


def test_table_is_the_default(files, capsys) -> None:
    code, out, _ = run(capsys, "-r", str(files["ref"]), "-c", str(files["cur"]))
    assert code == 0
    assert "wasserstein" in out and re.search(r"Dataset drift (DETECTED|not detected)", out)
    assert "\x1b[" not in out  # no colour codes when not on a terminal


def test_html_report_is_self_contained(files, capsys, tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    code, out, _ = run(
        capsys, "-r", str(files["ref"]), "-c", str(files["cur"]), "-f", "html", "-o", str(report)
    )
    assert code == 0 and out == ""
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("<svg") == 6
    assert not re.search(r"(src|href)=['\"]?https?:", text)
    assert "<script" not in text


def test_saved_profile_gives_the_same_verdicts(files, capsys, tmp_path: Path) -> None:
    prof = tmp_path / "ref.npz"
    _, built, _ = run(
        capsys,
        "-r",
        str(files["ref"]),
        "-c",
        str(files["cur"]),
        "-f",
        "json",
        "--save-profile",
        str(prof),
    )
    code, loaded, _ = run(capsys, "-r", str(prof), "-c", str(files["cur"]), "-f", "json")
    assert code == 0
    a, b = json.loads(built), json.loads(loaded)
    assert [(c["test"], c["drift_detected"]) for c in a["columns"]] == [
        (c["test"], c["drift_detected"]) for c in b["columns"]
    ]
    for x, y in zip(a["columns"], b["columns"], strict=True):
        assert x["score"] == pytest.approx(y["score"], rel=1e-12)


def test_spec_picks_columns_types_tests_and_options(files, capsys) -> None:
    code, out, _ = run(capsys, "--spec", str(files["spec"]), "-c", str(files["cur"]), "-f", "json")
    assert code == 0
    cols = {c["column"]: c for c in json.loads(out)["columns"]}
    assert list(cols) == ["age", "country", "clicks", "prediction", "target"]
    assert cols["age"]["test"] == "ks" and cols["clicks"]["type"] == "numerical"
    assert cols["age"]["effect_size_measure"] == "ks_d" and "p_adjusted" in cols["age"]
    assert cols["age"]["threshold"] == 0.1  # the FDR level replaces p-value thresholds


def test_fail_on_drift_exit_status(files, capsys) -> None:
    _, out, _ = run(capsys, "-r", str(files["ref"]), "-c", str(files["cur"]), "-f", "json")
    drifted = json.loads(out)["dataset_drift"]
    code, _, _ = run(
        capsys, "-r", str(files["ref"]), "-c", str(files["cur"]), "-f", "json", "--fail-on-drift"
    )
    assert code == (1 if drifted else 0)
    code, _, _ = run(
        capsys, "-r", str(files["ref"]), "-c", str(files["ref"]), "-f", "json", "--fail-on-drift"
    )
    assert code == 0


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("bad", r"bad\.parquet: cannot read as parquet"),
        ("nofile", r"nope\.csv: no such file"),
        ("clash", r"column 'age' is numerical but the current data holds str values"),
        ("missing", r"missing\.csv: missing column\(s\) 'country'"),
        ("extra", r"column 'extra' is missing from the reference data"),
    ],
)
def test_user_errors_are_one_line(files, capsys, which: str, message: str) -> None:
    current = {"nofile": files["ref"].parent / "nope.csv"}.get(which, files.get(which))
    args = ["-r", str(files["ref"]), "-c", str(current)]
    if which in ("clash", "missing"):
        args += ["--spec", str(files["spec"])]
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err), err


def test_unknown_test_in_spec_is_one_line(files, capsys, tmp_path: Path) -> None:
    spec = yaml.safe_load(files["spec"].read_text())
    spec["drift"] = {"numerical_test": "nope"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, _, err = run(capsys, "--spec", str(path), "-c", str(files["cur"]))
    assert code == 2 and err.count("\n") == 1 and "unknown drift test 'nope'" in err


def test_real_process_type_clash_without_traceback(files) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftwarden",
            "drift",
            "-r",
            str(files["ref"]),
            "-c",
            str(files["clash"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Without a spec the current file decides the type (as in Evidently): "age" is text there
    # and numbers in the reference.
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
