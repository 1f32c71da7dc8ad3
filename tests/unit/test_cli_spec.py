"""The CLI as a user runs it: a real process, one clear line for every mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from driftwarden import __version__
from driftwarden.tables import read_table


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwarden", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    n = 300
    path = tmp_path / "reference.parquet"
    pd.DataFrame(
        {
            "age": rng.normal(size=n),
            "country": rng.choice(["DE", "US"], n),
            "prediction": rng.random(n),
            "target": rng.integers(0, 2, n),
        }
    ).to_parquet(path)
    return path


def test_help_and_version() -> None:
    out = run("--help")
    assert out.returncode == 0 and "spec" in out.stdout
    assert run("--version").stdout.strip() == f"driftwarden {__version__}"
    for sub in (["spec", "--help"], ["spec", "infer", "--help"], ["spec", "validate", "--help"]):
        assert run(*sub).returncode == 0


def test_infer_writes_a_spec_that_validates(tmp_path: Path, data: Path) -> None:
    out_file = tmp_path / "specs" / "credit.yaml"
    out_file.parent.mkdir()
    result = run("spec", "infer", str(data), "--model", "credit", "-o", str(out_file))
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(out_file.read_text())
    assert doc["model"] == "credit"
    assert doc["reference"]["path"] == "../reference.parquet"
    assert {f["name"]: f["type"] for f in doc["features"]} == {
        "age": "numerical",
        "country": "categorical",
    }
    check = run("spec", "validate", str(out_file))
    assert check.returncode == 0 and "ok (model credit, 2 features)" in check.stdout
    again = run("spec", "infer", str(data), "-o", str(out_file))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_infer_from_csv_to_stdout(tmp_path: Path, data: Path) -> None:
    csv = tmp_path / "ref.csv"
    read_table(data).to_csv(csv, index=False)
    result = run("spec", "infer", str(csv))
    assert result.returncode == 0
    assert yaml.safe_load(result.stdout)["model"] == "ref"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["spec", "infer", "missing.parquet"], "missing.parquet: no such file"),
        (["spec", "infer", "notes.txt"], "unsupported file type '.txt'"),
        (["spec", "validate", "missing.yaml"], "missing.yaml: no such spec file"),
    ],
)
def test_user_mistakes_are_one_line_without_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_corrupt_parquet_and_bad_reference(tmp_path: Path, data: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    result = run("spec", "infer", str(bad))
    assert result.returncode == 2 and "cannot read as parquet" in result.stderr
    assert "Traceback" not in result.stderr
    spec = tmp_path / "s.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "model": "m",
                "features": [
                    {"name": "age", "type": "numerical"},
                    {"name": "zip", "type": "categorical"},
                ],
                "reference": {"path": data.name},
            }
        )
    )
    result = run("spec", "validate", str(spec))
    assert result.returncode == 2 and "missing column(s) 'zip'" in result.stderr
