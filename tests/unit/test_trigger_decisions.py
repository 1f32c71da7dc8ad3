"""The decision table (pure, injected clock) and the Job manifest builder."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from retrain_trigger.decisions import Decision, JobView, decide
from retrain_trigger.manifest import build_job, job_name, label_value, new_version, render_args
from retrain_trigger.policy import RetrainPolicy
from retrain_trigger.webhook import PayloadError, parse_notification, retrain_requests

T0 = 1_750_000_000.0
POLICY = RetrainPolicy.model_validate(
    {
        "model": "fraud",
        "namespace": "ml",
        "trainer": {"image": "img"},
        "spec": "/s.yaml",
        "output": "/artifacts/fraud",
        "cooldown_s": 3600,
        "ttl_seconds_after_finished": 7200,
    }
)
POLICIES = {"fraud": POLICY}


def alert(
    name: str = "DriftwardenDatasetDrift",
    status: str = "firing",
    model: str | None = "fraud",
    action: str | None = "retrain",
    starts: str = "2025-06-15T12:00:00Z",
    fp: str = "",
) -> dict:
    labels = {"alertname": name}
    if model is not None:
        labels["model"] = model
    if action is not None:
        labels["driftwarden_action"] = action
    return {
        "status": status,
        "labels": labels,
        "annotations": {},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fp,
    }


def notification(*alerts: dict, status: str = "firing") -> object:
    return parse_notification(
        {
            "version": "4",
            "groupKey": '{}/{driftwarden_action="retrain"}:{model="fraud"}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "driftwarden-retrain",
            "groupLabels": {"model": "fraud"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://am",
            "alerts": list(alerts),
        }
    )


def job(
    name: str,
    *,
    fp: str = "f" * 16,
    model: str = "fraud",
    started: float = T0 - 100,
    finished: float | None = None,
    outcome: str = "running",
) -> JobView:
    return JobView(name, "ml", model, fp, "v", started, finished, outcome)  # type: ignore[arg-type]


def only(n: object, jobs: list[JobView], now: float = T0, cap: int = 4):
    decisions, launches = decide(n, POLICIES, jobs, now, cap)  # type: ignore[arg-type]
    assert len(decisions) == len(n.alerts)  # type: ignore[attr-defined]
    return decisions, launches


def test_every_row_of_the_table() -> None:
    n = notification(alert())
    fp = retrain_requests(n)[0].fingerprint  # type: ignore[arg-type]
    rows = [
        # (alerts, jobs in the cluster, now, cap) -> expected decision
        ((alert(status="resolved"),), [], T0, 4, Decision.RESOLVED),
        ((alert(action=None),), [], T0, 4, Decision.NOT_RETRAIN),
        ((alert(model=None),), [], T0, 4, Decision.NOT_RETRAIN),
        ((alert(model="churn"),), [], T0, 4, Decision.NO_POLICY),
        ((alert(),), [job("j1", fp=fp)], T0, 4, Decision.IN_FLIGHT),
        ((alert(),), [job("other")], T0, 4, Decision.IN_FLIGHT),
        ((alert(),), [job("old", finished=T0 - 60, outcome="failed")], T0, 4, Decision.COOLDOWN),
        (
            (alert(),),
            [job("old", finished=T0 - 3601, outcome="succeeded")],
            T0,
            4,
            Decision.LAUNCHED,
        ),
        ((alert(),), [job("x", model="churn")], T0, 1, Decision.OVER_CAPACITY),
        ((alert(),), [], T0, 4, Decision.LAUNCHED),
    ]
    for alerts, jobs, now, cap, expected in rows:
        decisions, launches = only(notification(*alerts), jobs, now, cap)
        assert decisions[0].decision is expected, (alerts, jobs, decisions[0])
        assert decisions[0].reason
        assert (len(launches) == 1) == (expected is Decision.LAUNCHED)


def test_cooldown_ends_exactly_at_its_deadline() -> None:
    finished = job("old", finished=T0, outcome="succeeded")
    assert (
        only(notification(alert()), [finished], now=T0 + 3599.9)[0][0].decision is Decision.COOLDOWN
    )
    assert "lasts until" in only(notification(alert()), [finished], now=T0 + 1)[0][0].reason
    assert (
        only(notification(alert()), [finished], now=T0 + 3600)[0][0].decision is Decision.LAUNCHED
    )


def test_one_request_per_model_one_launch_the_rest_in_flight() -> None:
    n = notification(
        alert("DriftwardenDatasetDrift"),
        alert("DriftwardenPerformanceDrop"),
        alert("Other", action=None),
        alert("Gone", status="resolved"),
    )
    decisions, launches = only(n, [])
    assert [d.decision for d in decisions] == [
        Decision.LAUNCHED,
        Decision.IN_FLIGHT,
        Decision.NOT_RETRAIN,
        Decision.RESOLVED,
    ]
    assert len(launches) == 1 and decisions[1].job == launches[0].job
    assert "covered by Job" in decisions[1].reason


def test_same_episode_same_job_name_new_episode_new_name() -> None:
    a = only(notification(alert()), [])[1][0].job
    again = only(notification(alert()), [])[1][0].job
    later = only(notification(alert(starts="2025-07-01T00:00:00Z")), [])[1][0].job
    assert a == again and a != later


def test_episode_retried_after_cooldown_takes_next_attempt() -> None:
    n = notification(alert())
    first = only(n, [])[1][0]
    done = job(first.job, fp=first.request.fingerprint, finished=T0 - 4000, outcome="failed")
    retry = only(n, [done])[1][0]
    assert retry.attempt == 1 and retry.job == first.job + "-a1"


def test_payload_errors_name_the_field() -> None:
    with pytest.raises(PayloadError, match=r"^alerts\[0\]\.status"):
        parse_notification(
            {
                "version": "4",
                "groupKey": "g",
                "status": "firing",
                "alerts": [{**alert(), "status": "burning"}],
            }
        )
    with pytest.raises(PayloadError, match=r"^version"):
        parse_notification({"version": "3", "groupKey": "g", "status": "firing", "alerts": []})
    with pytest.raises(PayloadError, match=r"top level"):
        parse_notification([1, 2])


DNS = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@pytest.mark.parametrize("model", ["fraud", "Fraud:Model.v2", "a" * 128, "___", "x-"])
def test_job_names_are_dns_labels(model: str) -> None:
    for attempt in (0, 7):
        name = job_name(model, "0123456789abcdef", attempt)
        assert DNS.match(name) and len(name) <= 63
    assert label_value(model) == "" or re.match(
        r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", label_value(model)
    )


def test_render_args_drops_flags_whose_value_is_empty() -> None:
    args = ["--data", "{data}", "--current-artifact", "{current_artifact}", "--out", "{artifact}"]
    assert render_args(args, {"data": "d", "current_artifact": "", "artifact": "a"}) == [
        "--data",
        "d",
        "--out",
        "a",
    ]


def test_job_manifest_carries_policy_labels_and_annotations() -> None:
    policy = RetrainPolicy.model_validate(
        {
            **POLICY.model_dump(),
            "epochs": 5,
            "trainer": {
                "image": "img",
                "node_selector": {"gpu": "a100"},
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                ],
                "priority_class": "batch",
                "service_account": "trainer",
                "resources": {"gpu": 2, "cpu": 4, "memory": "16Gi"},
            },
        }
    )
    started = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
    version = new_version(started, "0123456789abcdef")
    assert version == "r202506151200-01234567"
    manifest = build_job(
        policy,
        name="retrain-fraud-0123456789",
        fingerprint="0123456789abcdef",
        version=version,
        attempt=0,
        alert_labels={"model": "fraud"},
        alertnames=["A"],
        group_key="g",
        alert_started_at=started,
        now=T0,
        current_artifact="/artifacts/fraud/v1",
        job_env={"DRIFTWARDEN_BOOTSTRAP": "kafka:9092", "DRIFTWARDEN_TOPIC_PREFIX": "dw"},
    )
    meta, spec = manifest["metadata"], manifest["spec"]
    env = {e["name"]: e["value"] for e in spec["template"]["spec"]["containers"][0]["env"]}
    # the trainer exports `kafka:21600s` from the trigger's own Kafka
    assert env["DRIFTWARDEN_BOOTSTRAP"] == "kafka:9092" and env["DRIFTWARDEN_TOPIC_PREFIX"] == "dw"
    assert env["DRIFTWARDEN_MODEL_VERSION"] == version
    assert meta["labels"]["driftwarden.io/model"] == "fraud"
    assert meta["labels"]["driftwarden.io/alert-fingerprint"] == "0123456789abcdef"
    assert meta["labels"]["driftwarden.io/version"] == version
    assert meta["annotations"]["driftwarden.io/alert-labels"] == '{"model": "fraud"}'
    assert meta["annotations"]["driftwarden.io/started-at"] == "2025-06-15T15:06:40Z"
    assert (
        spec["backoffLimit"],
        spec["activeDeadlineSeconds"],
        spec["ttlSecondsAfterFinished"],
    ) == (1, 14400, 7200)
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["args"] == [
        "--data",
        "kafka:21600s",
        "--spec",
        "/s.yaml",
        "--out",
        f"/artifacts/fraud/{version}",
        "--current-artifact",
        "/artifacts/fraud/v1",
        "--epochs",
        "5",
    ]
    assert pod["nodeSelector"] == {"gpu": "a100"} and pod["priorityClassName"] == "batch"
    assert pod["serviceAccountName"] == "trainer" and pod["restartPolicy"] == "Never"
    assert pod["tolerations"] == [
        {"operator": "Exists", "key": "nvidia.com/gpu", "effect": "NoSchedule"}
    ]
