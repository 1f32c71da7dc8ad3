"""`driftwarden detectors run`: flags, DRIFTWARDEN_<FLAG> environment variables, and one
clear error line (no traceback) for a user mistake."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detectors.service import DetectorService, ServiceSettings
from driftwarden.cli import app
from driftwarden.errors import SpecError


def test_help_lists_the_flags_and_their_environment_variables() -> None:
    result = CliRunner().invoke(app, ["detectors", "run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--specs", "--bootstrap", "--metrics-port", "--group-id", "--topic-prefix",
                 "--state-dir", "--log-level", "--log-format"):  # fmt: skip
        assert flag in result.output
    assert "DRIFTWARDEN_SPECS" in result.output
    assert "DRIFTWARDEN_METRICS_PORT" in result.output


def test_bad_specs_folder_from_the_environment_is_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DRIFTWARDEN_SPECS": str(tmp_path / "missing"),
        "DRIFTWARDEN_METRICS_PORT": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "detectors.service"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path / 'missing'}: not a directory of spec files"
    )
    assert "Traceback" not in proc.stderr


def test_invalid_spec_refuses_to_start_and_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("model: m\nfeatures:\n  - {name: x, type: number}\n")
    service = DetectorService(
        ServiceSettings(specs=tmp_path, metrics_port=0, metrics_host="127.0.0.1")
    )
    with pytest.raises(SpecError, match=r"features\[0\] \(x\)\.type"):
        service.run(threading.Event())
