"""Calibrated thresholds through the real pipeline (issue 16): the detectors service
(`python -m detectors.service`, a child process) fed through a real Kafka broker with one
window of rows gives, per feature, the same test, score, threshold and verdict as
`driftwarden drift --spec ... --format json` (another child process) on the same rows.
With `drift.sequential.enabled` the service also exports the CUSUM statistics the
`DriftwardenSequentialDrift` alert reads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from driftwarden import metrics_catalogue as mc
from driftwarden.services import KafkaBroker
from driftwarden.services.ports import free_port
from tests.kits.detectors import ServiceProcess, SyntheticModel, produce, read_results

pytestmark = pytest.mark.integration

ROWS = 1200
DRIFTED = "num_1"


def _drift_results(bootstrap: str, topic: str, timeout: float) -> list:
    """The committed drift results in `topic`, once there is one (the service creates the
    topic when it commits its first window)."""
    deadline = time.monotonic() + timeout
    while True:
        got = [r for r in read_results(bootstrap, topic, timeout=2) if r.kind == "drift"]
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_service_and_cli_agree_with_calibrated_thresholds(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    specs = tmp_path / "specs"
    model = SyntheticModel("calib", n_numerical=3, n_categorical=2, seed=5)
    extra = {
        "drift": {
            "thresholds": "calibrated",
            "calibration": {"replicates": 60, "seed": 3},
            "sequential": {"enabled": True},
        }
    }
    spec_path = model.write(specs, reference_rows=4000, window_rows=ROWS, extra=extra)
    # Every row of the one window is drifted in DRIFTED only.
    stream = model.stream(ROWS, drift_from=0, drifted={DRIFTED}, seed=13)

    prefix = f"cal{uuid.uuid4().hex[:8]}"
    for suffix in ("predictions", "feedback"):
        kafka.create_topic(f"{prefix}.{suffix}", partitions=1)
    proc = ServiceProcess(
        specs=specs,
        bootstrap=kafka.bootstrap,
        metrics_port=free_port(),
        group_id=f"{prefix}-g",
        topic_prefix=prefix,
        log_path=tmp_path / "detectors.log",
        extra_args=["--checkpoint-interval", "0.3", "--metrics-host", "127.0.0.1"],
    ).start()
    try:
        proc.wait_healthy(60)
        produce(kafka.bootstrap, f"{prefix}.predictions", stream.records())
        results = _drift_results(kafka.bootstrap, f"{prefix}.windows", timeout=60)
        with urllib.request.urlopen(f"{proc.url}/metrics", timeout=5) as r:
            metrics = r.read().decode()
    finally:
        assert proc.stop() == 0, (tmp_path / "detectors.log").read_text()[-3000:]

    assert len(results) == 1, results
    (window,) = results
    assert window.rows == ROWS
    service = {f.name: f for f in window.features}

    # the batch command on the same rows, as a user runs it
    current = tmp_path / "current.parquet"
    stream.frame.to_parquet(current, index=False)
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftwarden",
            "drift",
            "--spec",
            str(spec_path),
            "--current",
            str(current),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    batch = {c["column"]: c for c in json.loads(cli.stdout)["columns"]}

    assert sorted(service) == sorted(model.features)
    assert set(batch) >= set(service)
    for name, f in service.items():
        b = batch[name]
        assert f.skipped is None, name
        assert (f.type, f.test) == (b["type"], b["test"]), name
        assert f.score == pytest.approx(b["score"], rel=1e-9, abs=1e-12), name
        assert f.threshold == pytest.approx(b["threshold"], rel=1e-12), name
        assert f.threshold not in (0.05, 0.1), name  # calibrated, not a test's default
        assert f.drift_detected == b["drift_detected"], name
    # the verdicts themselves: the drifted feature only
    assert {n for n, f in service.items() if f.drift_detected} == {DRIFTED}
    # the prediction column, calibrated on both sides too
    assert window.prediction is not None
    pred = batch["prediction"]
    assert window.prediction.test == pred["test"]
    assert window.prediction.score == pytest.approx(pred["score"], rel=1e-9, abs=1e-12)
    assert window.prediction.threshold == pytest.approx(pred["threshold"], rel=1e-12)
    assert window.prediction.threshold not in (0.05, 0.1)
    assert window.prediction.drift_detected == pred["drift_detected"]

    # the sequential statistics the alert reads, one per feature and one per model version
    sel = 'model="calib",version="v1"'
    feature_lines = [
        line
        for line in metrics.splitlines()
        if line.startswith(f"{mc.FEATURE_DRIFT_SEQUENTIAL.name}{{") and sel in line
    ]
    assert len(feature_lines) == len(model.features), metrics
    dataset_lines = [
        line
        for line in metrics.splitlines()
        if line.startswith(f"{mc.DATASET_DRIFT_SEQUENTIAL.name}{{") and sel in line
    ]
    assert len(dataset_lines) == 1, metrics
    drifted = next(line for line in feature_lines if f'feature="{DRIFTED}"' in line)
    others = [line for line in feature_lines if f'feature="{DRIFTED}"' not in line]
    assert float(drifted.rsplit(" ", 1)[1]) > max(float(o.rsplit(" ", 1)[1]) for o in others)
