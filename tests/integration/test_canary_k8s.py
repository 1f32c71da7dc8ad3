"""Whole rollouts against the real API server (controller-manager and kwok's fake node run the
pods of both Deployments) and a real Prometheus scraping synthetic canary/stable series.

The controller is killed at every point: each pass runs in a fresh controller (new client,
new analyzer, nothing carried over in memory) that dies at a different one of its writes —
before or after the write reaches the API server — and the next one resumes from the
annotations on the stable Deployment. Every controller holds only the Helm chart's canary
Role (a ServiceAccount token), so the rollouts also prove that Role is enough.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s_client
from prometheus_client import CollectorRegistry

from driftwarden.errors import ExternalError
from retrain_trigger.canary import machine as sm
from retrain_trigger.canary.controller import Controller
from retrain_trigger.canary.kube import KubeRollouts
from retrain_trigger.canary.machine import Phase
from retrain_trigger.canary.prometheus import Analyzer, PrometheusClient
from retrain_trigger.lineage import LineageLog, lineage_topic
from retrain_trigger.policy import RetrainPolicy
from tests.kits.canary import BAD, GOOD, SyntheticExporter
from tests.kits.trigger import admin

pytestmark = pytest.mark.integration

MODEL = "fraud"
IMAGE = "registry.invalid/model:1"  # kwok runs no containers


class Killed(BaseException):
    """The controller process died (not an Exception: nothing in the controller catches it)."""


class DyingKube:
    """KubeRollouts that dies at its `die_at`-th write, before it or right after it."""

    WRITES = frozenset(
        {
            "create_deployment",
            "patch_deployment",
            "scale_deployment",
            "delete_deployment",
            "emit_event",
        }
    )

    def __init__(self, kube: KubeRollouts, die_at: int | None, after: bool) -> None:
        self._kube, self._die_at, self._after, self.writes = kube, die_at, after, 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._kube, name)
        if name not in self.WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self._die_at and not self._after:
                raise Killed(f"killed before {name}")
            out = attr(*args, **kwargs)
            if self.writes == self._die_at and self._after:
                raise Killed(f"killed after {name}")
            return out

        return write


def stable_manifest(ns: str, replicas: int = 4) -> dict[str, Any]:
    artifact = f"/artifacts/{MODEL}/v1"
    return {
        "metadata": {
            "name": MODEL,
            "namespace": ns,
            "labels": {"app": MODEL, "version": "v1"},
            "annotations": {"driftwarden.io/artifact": artifact},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": MODEL}},
            "template": {
                "metadata": {
                    "labels": {"app": MODEL, "version": "v1"},
                    "annotations": {"driftwarden.io/model-version": "v1"},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "model",
                            "image": IMAGE,
                            "args": ["--artifact", artifact, "--port", "8080"],
                        }
                    ]
                },
            },
        },
    }


def policy(ns: str, **canary: Any) -> RetrainPolicy:
    return RetrainPolicy.model_validate(
        {
            "model": MODEL,
            "namespace": ns,
            "trainer": {"image": "registry.invalid/trainer:1"},
            "spec": "/specs/fraud.yaml",
            "output": "/artifacts/fraud",
            "cooldown_s": 60,
            "ttl_seconds_after_finished": 3600,
            "canary": {
                "steps": [25, 50, 100],
                "check_interval_s": 3,
                "step_deadline_s": 60,
                "thresholds": {"min_requests": 30, "min_labelled_rows": 200},
                **canary,
            },
        }
    )


def completed_job(k8s, ns: str, version: str) -> None:
    """A retrain Job as the trigger labels it, run to Complete by kwok."""
    job = {
        "metadata": {
            "name": f"retrain-{MODEL}-{version}",
            "labels": {
                "app.kubernetes.io/managed-by": "driftwarden-retrain-trigger",
                "driftwarden.io/model": MODEL,
                "driftwarden.io/version": version,
            },
            "annotations": {
                "driftwarden.io/model": MODEL,
                "driftwarden.io/artifact": f"/artifacts/{MODEL}/{version}",
            },
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "train", "image": "registry.invalid/trainer:1"}],
                }
            },
        },
    }
    with admin(k8s) as api:
        batch = k8s_client.BatchV1Api(api)
        batch.create_namespaced_job(ns, job)

        def complete() -> bool:
            status = batch.read_namespaced_job(job["metadata"]["name"], ns).status
            return any(c.type == "Complete" and c.status == "True" for c in status.conditions or [])

        k8s.wait(complete, timeout=60, what=f"Job for {version} Complete")


@pytest.fixture
def world(k8s, prometheus_factory) -> Iterator[dict[str, Any]]:
    ns = k8s.namespace("canary")
    exporter = SyntheticExporter(MODEL, {"v1": GOOD, "v2": GOOD, "v3": BAD})
    try:
        prom = prometheus_factory(scrape_targets=[exporter.target], scrape_interval="1s")
        prom.wait_for(
            'sum(increase(driftwarden_collector_requests_total{version="v2"}[3s])) > 60',
            timeout=30,
        )
        with admin(k8s) as api:
            k8s_client.AppsV1Api(api).create_namespaced_deployment(ns, stable_manifest(ns))
        yield {"ns": ns, "prom": prom, "exporter": exporter}
    finally:
        exporter.close()


def chart_role_token(k8s, ns: str) -> str:
    """A ServiceAccount token holding exactly the Helm chart's canary Role in `ns`: a verb
    the controller needs and the chart does not grant fails the rollout with 403."""
    from tests.kits.chart import by_kind, render

    docs = render({"trigger": {"namespaces": [ns]}})
    (role,) = [
        d
        for d in by_kind(docs, "Role")
        if d["metadata"]["name"].endswith("-canary") and d["metadata"]["namespace"] == ns
    ]
    name = "chart-canary"
    with admin(k8s) as api:
        rbac = k8s_client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(ns, {"metadata": {"name": name}, "rules": role["rules"]})
        rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            },
        )
    return k8s.service_account_token(ns, name)


def controller(k8s, world, p: RetrainPolicy, lineage, die_at=None, after=False):
    """A fresh controller (new client) with the chart's canary Role, as installed."""
    token = world.get("token") or chart_role_token(k8s, world["ns"])
    world["token"] = token
    kube = KubeRollouts(k8s.api_client_for_token(token), [world["ns"]])
    dying = DyingKube(kube, die_at, after)
    registry = CollectorRegistry()
    c = Controller(
        {MODEL: p},
        dying,
        Analyzer(PrometheusClient(world["prom"].url)),
        lineage,
        registry,
    )
    return c, kube, registry


def deployment(k8s, ns: str, name: str) -> k8s_client.V1Deployment | None:
    with admin(k8s) as api:
        try:
            return k8s_client.AppsV1Api(api).read_namespaced_deployment(name, ns)
        except k8s_client.ApiException as e:
            if e.status == 404:
                return None
            raise


def running_pods(k8s, ns: str, version: str) -> list[Any]:
    with admin(k8s) as api:
        pods = k8s_client.CoreV1Api(api).list_namespaced_pod(
            ns, label_selector=f"app={MODEL},version={version}"
        )
    return [
        p for p in pods.items if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    ]


def event_reasons(k8s, ns: str) -> list[str]:
    with admin(k8s) as api:
        events = k8s_client.CoreV1Api(api).list_namespaced_event(
            ns, field_selector=f"involvedObject.kind=Deployment,involvedObject.name={MODEL}"
        )
    return sorted(e.reason for e in events.items if e.reason.startswith("Canary"))


def stored_state(k8s, ns: str) -> sm.RolloutState | None:
    d = deployment(k8s, ns, MODEL)
    return sm.from_annotations(d.metadata.annotations)


def test_rollout_promoted_with_a_kill_at_every_write(k8s, world, kafka) -> None:
    ns = world["ns"]
    p = policy(ns)
    prefix = f"canary-{secrets.token_hex(3)}"
    lineage = LineageLog(kafka.bootstrap, lineage_topic(prefix), partitions=1)
    lineage.ensure_topic()
    k8s.wait(
        lambda: len(running_pods(k8s, ns, "v1")) == 4, timeout=60, what="4 stable pods Running"
    )
    completed_job(k8s, ns, "v2")

    phases: list[tuple[str, int]] = []
    kills = 0
    saw_canary_running = False
    deadline = time.monotonic() + 240
    for i in itertools.count():
        assert time.monotonic() < deadline, f"rollout did not finish; phases {phases}"
        c, kube, _ = controller(k8s, world, p, lineage, die_at=1 + i % 4, after=i % 2 == 1)
        try:
            state = c.reconcile(MODEL)
        except Killed:
            kills += 1
            state = stored_state(k8s, ns)
        except ExternalError:  # e.g. a 409 from a write racing the Deployment controller
            state = stored_state(k8s, ns)
        finally:
            kube.close()
        if state is not None and (not phases or phases[-1] != (state.phase.value, state.step)):
            phases.append((state.phase.value, state.step))
        if state is not None and state.phase is Phase.PROGRESSING and not saw_canary_running:
            want = deployment(k8s, ns, f"{MODEL}-canary").spec.replicas
            k8s.wait(
                lambda w=want: len(running_pods(k8s, ns, "v2")) == w,
                timeout=60,
                what="canary pods Running",
            )
            saw_canary_running = True
        if state is not None and state.phase is Phase.PROMOTED and state.announced:
            break
        time.sleep(0.3)

    assert kills >= 5 and saw_canary_running
    # every step in order; nothing skipped, nothing repeated out of order
    progress = [s for ph, s in phases if ph == "progressing"]
    assert progress == sorted(progress) and set(progress) == {0, 1, 2}
    assert phases[-1] == ("promoted", 2) and ("promoting", 2) in phases

    stable = deployment(k8s, ns, MODEL)
    tpl = stable.spec.template
    assert tpl.metadata.labels["version"] == "v2"
    assert tpl.metadata.annotations["driftwarden.io/model-version"] == "v2"
    assert tpl.spec.containers[0].args == ["--artifact", "/artifacts/fraud/v2", "--port", "8080"]
    assert stable.metadata.annotations["driftwarden.io/artifact"] == "/artifacts/fraud/v2"
    assert stable.spec.replicas == 4 and deployment(k8s, ns, f"{MODEL}-canary") is None
    k8s.wait(lambda: len(running_pods(k8s, ns, "v2")) == 4, timeout=60, what="4 v2 pods Running")
    status = json.loads(stable.metadata.annotations[sm.ANN_STATUS])
    assert status["analyses"] >= 3 and status["announced"] is True
    assert {c["verdict"] for c in status["checks"]} == {"pass"}
    assert [h["weight"] for h in status["history"] if h["verdict"] == "pass"] == [25, 50, 100]

    # each Event exactly once, although controllers died around every write
    reasons = event_reasons(k8s, ns)
    assert reasons == sorted(
        [
            "CanaryStarted",
            "CanaryStepAdvanced",
            "CanaryStepAdvanced",
            "CanaryStepAdvanced",
            "CanaryPromoting",
            "CanaryPromoted",
        ]
    )
    assert lineage.flush(10) == 0
    steps = lineage.history(MODEL)
    finished = [e for e in steps if e.step == "rollout_finished"]
    # at least once: a kill between the lineage append and the "announced" write repeats it
    assert {(e.ref, e.detail["outcome"]) for e in finished} == {("v2", "promoted")}
    assert {e.detail.get("weight") for e in steps if e.step == "rollout_step"} >= {25, 50, 100}

    # a new controller finds nothing to do: the Job's version is the stable's now
    c, kube, registry = controller(k8s, world, p, lineage)
    try:
        again = c.reconcile(MODEL)
    finally:
        kube.close()
    assert again.phase is Phase.PROMOTED and again.version == "v2"
    assert registry.get_sample_value("driftwarden_canary_weight", {"model": MODEL}) == 0.0
    lineage.close()


def test_bad_canary_rolled_back_and_stable_untouched(k8s, world, kafka) -> None:
    ns = world["ns"]
    p = policy(ns)
    before = deployment(k8s, ns, MODEL)
    lineage = LineageLog(
        kafka.bootstrap, lineage_topic(f"canary-{secrets.token_hex(3)}"), partitions=1
    )
    lineage.ensure_topic()
    c, kube, registry = controller(k8s, world, p, lineage)
    try:
        state = c.start(MODEL, version="v3", artifact="/artifacts/fraud/v3")
        assert state.phase is Phase.PENDING
        deadline = time.monotonic() + 60
        while not state.phase.terminal:
            assert time.monotonic() < deadline, state
            state = c.reconcile(MODEL)
            if state.phase is Phase.PROGRESSING:
                canary = deployment(k8s, ns, f"{MODEL}-canary")
                assert canary.spec.replicas == 1 and canary.spec.selector.match_labels == {
                    "app": MODEL,
                    "version": "v3",
                }
                assert (
                    registry.get_sample_value("driftwarden_canary_weight", {"model": MODEL}) == 0.25
                )
                assert deployment(k8s, ns, MODEL).spec.replicas == 3
            time.sleep(0.5)
    finally:
        kube.close()
    assert state.phase is Phase.ROLLED_BACK and state.step == 0
    assert "error_rate" in state.reason and "latency_p99" in state.reason
    after = deployment(k8s, ns, MODEL)
    assert after.spec.template == before.spec.template  # untouched
    assert after.spec.replicas == 4 and deployment(k8s, ns, f"{MODEL}-canary") is None
    assert (
        registry.get_sample_value(
            "driftwarden_rollouts_total", {"model": MODEL, "outcome": "rolled_back"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "driftwarden_canary_check", {"model": MODEL, "check": "error_rate"}
        )
        is None
    )
    assert "CanaryRolledBack" in event_reasons(k8s, ns)
    assert lineage.flush(10) == 0
    finished = [e for e in lineage.history(MODEL) if e.step == "rollout_finished"]
    assert len(finished) == 1 and finished[0].detail["outcome"] == "rolled_back"
    assert finished[0].detail["checks"]["error_rate"] == "fail"
    lineage.close()
