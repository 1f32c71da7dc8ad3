"""The trigger's webhook receiver over real HTTP, against the real API server.

Auth (token file, reload, constant-time compare, never logged), 400/413/422 for bad input,
resolved alerts, a hypothesis fuzz proving no input yields a 5xx, and ten identical alerts
delivered at once creating exactly one Job.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrain_trigger.runner import TriggerService
from tests.kits.trigger import TriggerEnv, notification, trigger_env


@pytest.fixture
def env(k8s, tmp_path: Path) -> TriggerEnv:
    return trigger_env(k8s, tmp_path, bootstrap=None)


@pytest.fixture
def service(env: TriggerEnv) -> Iterator[TriggerService]:
    with env.service(max_body_bytes=64 * 1024) as svc:
        yield svc


def post(svc: TriggerService, body: object, headers: dict[str, str] | None, **kw) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{svc.url}/v1/alertmanager", content=content, headers=headers or {}, timeout=30, **kw
    )


def test_token_is_required_checked_and_never_logged(
    env: TriggerEnv, service: TriggerService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = notification(status="resolved")
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {env.token}"},
        {"Authorization": f"Bearer {env.token}x"},
        {"Authorization": "Bearer"},
    ):
        r = post(service, body, headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert env.token not in r.text
    assert post(service, body, env.headers()).status_code == 200
    assert post(service, body, {"authorization": f"bearer {env.token}"}).status_code == 200
    assert httpx.get(f"{service.url}/v1/models/fraud/history").status_code == 401
    assert env.token not in caplog.text


def test_token_file_is_reread_when_the_secret_changes(
    env: TriggerEnv, service: TriggerService
) -> None:
    body = notification(status="resolved")
    assert post(service, body, env.headers()).status_code == 200
    # A Secret update: the kubelet writes a new file and swaps it in atomically.
    fresh = env.token_file.with_name("token.new")
    fresh.write_text("the-new-token\n")
    os.replace(fresh, env.token_file)
    assert post(service, body, env.headers()).status_code == 401
    assert post(service, body, {"Authorization": "Bearer the-new-token"}).status_code == 200
    # The file vanishing for a moment (mid-swap) keeps the last good token.
    env.token_file.unlink()
    assert post(service, body, {"Authorization": "Bearer the-new-token"}).status_code == 200


def test_bad_bodies_are_4xx_with_a_reason(env: TriggerEnv, service: TriggerService) -> None:
    h = env.headers()
    r = post(service, b"{not json", h)
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    r = post(service, b"[" * 100_000 + b"]" * 100_000, h)  # too deep for the parser, and big
    assert r.status_code in (400, 413)
    bad = notification()
    bad["alerts"][0]["status"] = "burning"
    r = post(service, bad, h)
    assert r.status_code == 422 and r.json()["field"] == "alerts[0].status"
    del bad["alerts"]
    r = post(service, bad, h)
    assert r.status_code == 422 and r.json()["field"] == "alerts"
    r = post(service, {**notification(), "version": "3"}, h)
    assert r.status_code == 422 and r.json()["field"] == "version"
    big = notification()
    big["commonAnnotations"]["pad"] = "x" * (70 * 1024)
    assert post(service, big, h).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(100):
            yield b" " * 1024

    r = httpx.post(f"{service.url}/v1/alertmanager", content=chunks(), headers=h, timeout=30)
    assert r.status_code == 413
    assert not env.jobs()


def test_resolved_and_non_retrain_alerts_create_nothing(
    env: TriggerEnv, service: TriggerService
) -> None:
    r = post(service, notification(status="resolved"), env.headers())
    assert r.status_code == 200
    assert [d["decision"] for d in r.json()["decisions"]] == ["resolved"]
    r = post(service, notification(action=None), env.headers())
    assert [d["decision"] for d in r.json()["decisions"]] == ["not_retrain"]
    r = post(service, notification(model="unknown-model"), env.headers())
    assert [d["decision"] for d in r.json()["decisions"]] == ["no_policy"]
    assert not env.jobs()
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'driftwarden_retrain_decisions_total{decision="resolved",model="fraud"} 1.0' in metrics
    assert (
        'driftwarden_alerts_received_total{alertname="DriftwardenDatasetDrift",status="resolved"} 1.0'
        in metrics
    )
    assert httpx.get(f"{service.url}/healthz").text == "ok"


def test_ten_identical_alerts_at_once_create_exactly_one_job(
    env: TriggerEnv, service: TriggerService
) -> None:
    body = json.dumps(notification()).encode()
    barrier = threading.Barrier(10)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def deliver() -> None:
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            r = client.post(f"{service.url}/v1/alertmanager", content=body, headers=env.headers())
        with lock:
            results.append(r)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status_code for r in results] == [200] * 10
    decisions = sorted(r.json()["decisions"][0]["decision"] for r in results)
    assert decisions.count("launched") == 1, decisions
    # The fake node completes a Job in ~1 s, so on a loaded machine a late duplicate can see
    # the finished Job (cooldown) rather than the running one (in_flight): neither launches.
    assert set(decisions) - {"launched"} <= {"in_flight", "cooldown"}, decisions
    jobs = env.jobs()
    assert len(jobs) == 1
    assert {r.json()["decisions"][0]["job"] for r in results} == {jobs[0].metadata.name}


JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = ["version", "groupKey", "status", "alerts", "commonLabels", "truncatedAlerts"]
ALERT_FIELDS = ["status", "labels", "startsAt", "endsAt", "fingerprint", "annotations"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    body = notification(model=draw(st.sampled_from(["fraud", "other", ""])))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        body[draw(st.sampled_from(FIELDS))] = draw(JSONS)
    elif kind == 1:
        body["alerts"][0][draw(st.sampled_from(ALERT_FIELDS))] = draw(JSONS)
    elif kind == 2:
        body["alerts"][0]["labels"][draw(st.text(max_size=10))] = draw(JSONS)
    else:
        return draw(st.binary(max_size=200))
    return json.dumps(body).encode()


def test_fuzz_no_input_yields_a_5xx(env: TriggerEnv, service: TriggerService) -> None:
    client = httpx.Client(timeout=30, headers=env.headers())

    @settings(
        max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    @given(body=mutated() | JSONS.map(lambda v: json.dumps(v).encode()))
    def check(body: bytes) -> None:
        r = client.post(f"{service.url}/v1/alertmanager", content=body)
        assert r.status_code in (200, 400, 413, 422), (r.status_code, r.text, body[:200])
        if r.status_code == 422:
            assert r.json()["field"]

    try:
        check()
    finally:
        client.close()
