"""`driftwarden demo --fast`: the whole loop with real processes — drift → alert at the retrain
trigger → retraining Job (the trainer as a subprocess) → canary → promotion; and, with a model
made worse on purpose, → rollback. Every milestone is asserted from the demo's output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _alive(workdir: Path) -> list[str]:
    """Command lines of live processes that mention the demo's work folder."""
    out = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    return [
        line
        for line in out.splitlines()
        if str(workdir) in line and not line.lstrip().startswith("Z")
    ]


def _run_demo(tmp_path: Path, *flags: str) -> tuple[str, Path, Path]:
    workdir, report = tmp_path / "demo", tmp_path / "report.html"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "driftwarden", "demo", "--fast", "--no-live", "--keep"),
            *("--duration", "240", "--workdir", str(workdir), "--report", str(report)),
            *("--cache-dir", str(ROOT / ".cache" / "demo")),
            *flags,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output, workdir, report


def _seconds(output: str, what: str) -> float:
    m = re.search(rf"first drifted request → {what}: ([\d.]+)s", output)
    assert m, output[-4000:]
    return float(m.group(1))


def _accuracy(output: str, version: str) -> float:
    m = re.search(rf"accuracy on drifted traffic: {re.escape(version)} ([\d.]+)", output)
    assert m, output[-4000:]
    return float(m.group(1))


def _common_milestones(output: str) -> str:
    """Alert → trigger → Job → trained → canary; returns the new version."""
    assert "alert DriftwardenDatasetDrift delivered to the retrain trigger" in output
    job = re.search(r"trigger decision: launched; Job (retrain-credit-\w+) started", output)
    assert job, output[-4000:]
    assert re.search(r"retraining: epoch \d+/15", output)
    assert f"Job {job.group(1)} succeeded (exit 0)" in output
    version = re.search(r"canary (r\d{12}-\w{8}) step 1/2: 50% of traffic", output)
    assert version, output[-4000:]
    assert (
        0 < _seconds(output, "alert at the retrain trigger") < _seconds(output, "retrained model")
    )
    return version.group(1)


def test_demo_retrains_and_promotes_a_better_model(tmp_path: Path) -> None:
    """Over SASL_SSL with one SCRAM user per component holding only its least ACLs
    (`--secure-kafka`): the loop closing proves each principal is enough for its part."""
    output, workdir, report = _run_demo(tmp_path, "--secure-kafka")
    assert "SASL_SSL, SCRAM-SHA-512, 5 users with their least ACLs" in output
    new = _common_milestones(output)
    assert f"canary {new} step 2/2: 100% of traffic" in output
    assert f"rollout of {new} promoted" in output and "CanaryPromoted" in output
    assert _seconds(output, "retrained model") < _seconds(output, "promoted") < 240
    # The retrained model is better on drifted traffic than the one it replaced.
    before, after = _accuracy(output, "v1"), _accuracy(output, new)
    assert before < 0.5 and after > before + 0.15, (before, after)
    # The new version was served by the stable Deployment's new pod, behind the collector.
    assert re.search(rf"pod credit-{new}-\d+ ready", output)
    html = report.read_text()
    assert html.count("<svg") == 3 and "rollout_finished" in html and "job_finished" in html
    assert _alive(workdir) == []
    passwords = [p.read_text().strip() for p in (workdir / "kafka-secrets").glob("*.password")]
    logs = "".join(p.read_text(errors="replace") for p in (workdir / "logs").rglob("*.log"))
    assert len(passwords) == 5
    assert not [p for p in passwords if p in output or p in logs or p in html]


def test_demo_rolls_back_a_model_made_worse_on_purpose(tmp_path: Path) -> None:
    """`--worse-model` turns the retrained model into a constant predictor after the trainer's
    gate passed: the canary's prediction-spread check must fail it and roll it back. (An
    inverted model was tried first: on drifted traffic it was only ~0.03 less accurate than
    v1, itself poor there, and one CI run promoted it within the tolerance. Accuracy cannot
    catch the constant either: on drifted traffic it beats v1.)"""
    output, workdir, _ = _run_demo(tmp_path, "--worse-model")
    new = _common_milestones(output)
    collapsed = r"canary analysis \d+: .*prediction_spread fail \(1 > 0\.9\)"
    assert re.search(collapsed, output), output[-4000:]
    assert f"rollout of {new} rolled_back" in output and "CanaryRolledBack" in output
    assert "promoted" not in output.split("summary")[-1]
    assert _alive(workdir) == []
