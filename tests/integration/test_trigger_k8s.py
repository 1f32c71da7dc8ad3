"""Retraining Jobs against the real API server (kwok completes their pods), lineage in real
Kafka: a Job runs to Complete and to Failed, each outcome recorded once (metric, Event on the
Deployment, annotations, lineage), and a restarted trigger neither relaunches nor re-records.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from retrain_trigger.lineage import LineageLog, lineage_topic
from tests.kits.trigger import TriggerEnv, notification, trigger_env


@pytest.fixture
def env(k8s, kafka, tmp_path: Path) -> TriggerEnv:
    return trigger_env(k8s, tmp_path, bootstrap=kafka.bootstrap)


def post(url: str, env: TriggerEnv, body: dict) -> dict:
    r = httpx.post(f"{url}/v1/alertmanager", json=body, headers=env.headers(), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["decisions"][0]


def lineage(url: str, env: TriggerEnv) -> list[dict]:
    r = httpx.get(f"{url}/v1/models/fraud/history", headers=env.headers(), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def sample(url: str, line_prefix: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_alert_to_completed_job_with_lineage_events_and_restart(env: TriggerEnv, k8s) -> None:
    with env.service() as svc:
        decision = post(svc.url, env, notification())
        assert decision["decision"] == "launched", decision
        (job,) = env.jobs()
        meta = job.metadata
        assert meta.name == decision["job"]
        assert meta.labels["driftwarden.io/model"] == "fraud"
        assert meta.labels["driftwarden.io/alert-fingerprint"] == decision["episode"]
        version = meta.labels["driftwarden.io/version"]
        assert version.startswith("r202506151200-")
        assert (
            json.loads(meta.annotations["driftwarden.io/alert-labels"])["alertname"]
            == "DriftwardenDatasetDrift"
        )
        container = job.spec.template.spec.containers[0]
        assert container.resources.limits["nvidia.com/gpu"] == "1"
        assert "--current-artifact" in container.args and "/artifacts/fraud/v1" in container.args
        assert job.spec.ttl_seconds_after_finished == 7200
        # kwok runs the pod to Succeeded; the Job controller marks the Job Complete.
        done = k8s.wait(
            lambda: [
                j
                for j in env.jobs()
                if (j.metadata.annotations or {}).get("driftwarden.io/outcome")
            ],
            timeout=60,
            what="the Job recorded as finished",
        )
        annotations = done[0].metadata.annotations
        assert annotations["driftwarden.io/outcome"] == "succeeded"
        steps = [s["step"] for s in json.loads(annotations["driftwarden.io/lineage"])]
        assert steps == ["alert", "decision", "job_started", "job_finished", "artifact"]
        assert (
            sample(svc.url, 'driftwarden_retrain_jobs_total{model="fraud",outcome="succeeded"}')
            == 1.0
        )
        reasons = k8s.wait(
            lambda: {e.reason for e in env.events()} >= {"RetrainLaunched", "RetrainSucceeded"},
            timeout=10,
            what="Events on the Deployment",
        )
        assert reasons
        # The same alert again: the model is in its cooldown now.
        assert post(svc.url, env, notification())["decision"] == "cooldown"
        history = k8s.wait(
            lambda: (
                (h := lineage(svc.url, env)) and [e["step"] for e in h].count("artifact") == 1 and h
            ),
            timeout=20,
            what="lineage in Kafka",
        )
        assert [e["step"] for e in history][:3] == ["alert", "decision", "job_started"]
        assert {e["ref"] for e in history if e["step"] == "artifact"} == {version}
    # A restarted trigger: same alert → no new Job; the finished Job is not recorded again.
    with env.service() as svc:
        assert post(svc.url, env, notification())["decision"] == "cooldown"
        assert len(env.jobs()) == 1
        assert (
            sample(svc.url, 'driftwarden_retrain_jobs_total{model="fraud",outcome="succeeded"}')
            == 0.0
        )
    log = LineageLog(env.bootstrap or "", lineage_topic(env.prefix))
    finished = [e for e in log.history("fraud") if e.step == "job_finished"]
    assert len(finished) == 1 and finished[0].detail["outcome"] == "succeeded"


def test_failed_job_is_counted_as_failed(env: TriggerEnv, k8s) -> None:
    # No node matches the selector: the pod stays Pending until activeDeadlineSeconds fails the Job.
    env.write_policy(
        "fraud",
        active_deadline_seconds=2,
        backoff_limit=0,
        trainer={
            "image": "registry.local/trainer:1",
            "node_selector": {"driftwarden.io/no-such-node": "x"},
        },
    )
    with env.service() as svc:
        assert post(svc.url, env, notification())["decision"] == "launched"
        done = k8s.wait(
            lambda: [
                j
                for j in env.jobs()
                if (j.metadata.annotations or {}).get("driftwarden.io/outcome")
            ],
            timeout=60,
            what="the Job recorded as failed",
        )
        assert done[0].metadata.annotations["driftwarden.io/outcome"] == "failed"
        assert (
            sample(svc.url, 'driftwarden_retrain_jobs_total{model="fraud",outcome="failed"}') == 1.0
        )
        warning = k8s.wait(
            lambda: [e for e in env.events() if e.reason == "RetrainFailed"],
            timeout=10,
            what="a RetrainFailed Event",
        )
        assert warning[0].type == "Warning" and "DeadlineExceeded" in warning[0].message
    history = LineageLog(env.bootstrap or "", lineage_topic(env.prefix)).history("fraud")
    finished = [e for e in history if e.step == "job_finished"]
    assert finished and finished[0].detail["outcome"] == "failed"
    assert "DeadlineExceeded" in finished[0].detail["reason"]


def test_global_cap_and_in_flight_across_models(k8s, tmp_path: Path) -> None:
    env = trigger_env(k8s, tmp_path, bootstrap=None, models=("fraud", "churn"))
    # Pods stay Pending (no node matches), so the first Job keeps running.
    for model in ("fraud", "churn"):
        env.write_policy(
            model, trainer={"image": "img", "node_selector": {"driftwarden.io/no-such-node": "x"}}
        )
    with env.service(max_in_flight=1) as svc:
        assert post(svc.url, env, notification("fraud"))["decision"] == "launched"
        assert (
            post(svc.url, env, notification("fraud", alertname="DriftwardenPerformanceDrop"))[
                "decision"
            ]
            == "in_flight"
        )
        assert post(svc.url, env, notification("churn"))["decision"] == "over_capacity"
        assert sample(svc.url, 'driftwarden_retrain_jobs_running{model="fraud"}') == 1.0
    assert len(env.jobs()) == 1
