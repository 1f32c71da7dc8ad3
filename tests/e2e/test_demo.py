"""`driftwarden demo --short`: the whole observability loop, real processes, alert delivered."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _descendants_alive(workdir: Path) -> list[str]:
    """Command lines of live processes that mention the demo's work folder."""
    out = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    return [
        line
        for line in out.splitlines()
        if str(workdir) in line and not line.lstrip().startswith("Z")
    ]


def test_demo_delivers_the_drift_alert_and_leaves_nothing_running(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftwarden",
            "demo",
            "--short",
            "--no-live",
            "--duration",
            "150",
            "--drift-after",
            "15",
            "--workdir",
            str(workdir),
            "--keep",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    match = re.search(
        r"reached\s+the\s+webhook\s+([\d.]+)s\s+after\s+the\s+first\s+drifted\s+request", output
    )
    assert match, output[-4000:]
    seconds = float(match.group(1))
    assert 0 < seconds < 150
    assert "DriftwardenDatasetDrift" in output and "driftwarden_action=retrain" in output
    # The detectors saw the drifted features, and the collector answered every request.
    detectors_log = (workdir / "logs" / "detectors.log").read_text()
    assert re.search(r"drift share 0\.[5-9]\d* \(.*age.*\)", detectors_log), detectors_log[-2000:]
    sent = re.search(r"requests sent (\d+) \(ok (\d+)\)", output)
    assert sent and int(sent.group(1)) > 0 and int(sent.group(2)) >= 0.99 * int(sent.group(1))
    assert _descendants_alive(workdir) == []
