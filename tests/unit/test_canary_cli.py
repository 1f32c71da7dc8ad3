"""`driftwarden canary plan|templates` as a user runs them (a subprocess, exit codes and
one-line errors)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from retrain_trigger.canary.queries import QueryContext, build_queries
from retrain_trigger.policy import load_policy


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwarden", "canary", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def policy_file(tmp_path: Path, **canary: object) -> Path:
    path = tmp_path / "fraud.yaml"
    doc = {
        "model": "fraud",
        "namespace": "ml",
        "trainer": {"image": "t:1"},
        "spec": "/specs/fraud.yaml",
        "output": "/artifacts/fraud",
        "canary": {"steps": [10, 50, 100], "check_interval_s": 60, **canary},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_plan_prints_steps_and_the_controllers_queries(tmp_path: Path) -> None:
    path = policy_file(tmp_path)
    out = run("plan", "--policy", str(path), "--version", "v2", "--stable-version", "v1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "model fraud: roll out v2 over v1 in ml/fraud (router replicas)"
    assert "step 3/3: scale fraud-canary to 4 and fraud to 0 replicas" in out.stdout
    q = build_queries(
        QueryContext.for_policy("fraud", "v2", "v1", load_policy(path).canary),
        load_policy(path).canary.thresholds,
    )
    assert f"  judged: {q['performance'].judged}" in lines


def test_templates_render_argo_and_reject_unknown_formats(tmp_path: Path) -> None:
    path = policy_file(tmp_path)
    out = run("templates", "--policy", str(path), "--format", "argo")
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert doc["kind"] == "AnalysisTemplate"
    assert [m["name"] for m in doc["spec"]["metrics"]] == [
        "error_rate",
        "latency_p99",
        "performance",
        "prediction",
        "prediction_spread",
        "data_quality",
    ]
    bad = run("templates", "--policy", str(path), "--format", "istio")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: --format: 'istio' is not one of argo, flagger"


def test_bad_policy_router_is_one_line(tmp_path: Path) -> None:
    path = policy_file(tmp_path, router="istio")
    out = run("plan", "--policy", str(path), "--version", "v2", "--stable-version", "v1")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "canary.router" in out.stderr
