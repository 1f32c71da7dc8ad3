"""The injector against the real kube-apiserver: a MutatingWebhookConfiguration pointing at
`driftwarden injector run` on https://127.0.0.1:PORT (caBundle from `injector certs`'s
code). Annotated pods come back with the sidecar and the swapped port, unannotated ones
untouched, namespace opt-in works, a Service's named targetPort resolves to the sidecar,
and with the injector stopped pods are still admitted (and the reconciler reports them)."""

from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from collector.injector import InjectorConfig, InjectorStats, webhook_configuration
from collector.injector.certs import make_certs, write_certs
from collector.injector.reconciler import EVENT_REASON, Reconciler
from driftwarden.services.ports import free_port
from tests.kits.injector import model_pod
from tests.kits.kubernetes import annotate

pytestmark = pytest.mark.integration
IMAGE = "registry.local/driftwarden:test"
TEST_LABEL = "driftwarden-test-injector"


@contextlib.contextmanager
def injector_process(
    folder: Path, *extra: str
) -> Iterator[tuple[str, bytes, subprocess.Popen[bytes]]]:
    """`driftwarden injector run` on 127.0.0.1 with fresh certificates: (url, CA PEM, process)."""
    write_certs(make_certs(["localhost"], ["127.0.0.1"]), folder)
    port = free_port()
    log = (folder / "injector.log").open("wb")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "driftwarden", "injector", "run", "--host", "127.0.0.1"),
            *("--port", str(port), "--image", IMAGE, "--bootstrap", "kafka.dw:9092"),
            *("--cert-file", str(folder / "tls.crt"), "--key-file", str(folder / "tls.key")),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ctx = ssl.create_default_context(cafile=str(folder / "ca.crt"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2)
                conn.request("GET", "/healthz")
                ok = conn.getresponse().read() == b"ok\n"
                conn.close()
                if ok:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"injector did not start: {(folder / 'injector.log').read_text()[-2000:]}",
                    pytrace=False,
                )
            time.sleep(0.2)
        yield f"https://127.0.0.1:{port}", (folder / "ca.crt").read_bytes(), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@contextlib.contextmanager
def webhook_config(k8s: Any, url: str, ca: bytes, tag: str) -> Iterator[str]:
    """The injector's MutatingWebhookConfiguration, narrowed to namespaces labelled with
    this test's tag (the cluster is shared with other tests); deleted afterwards."""
    doc = webhook_configuration(
        ca_bundle=ca,
        namespace="driftwarden",
        url=url,
        timeout_s=3,
        namespace_labels={TEST_LABEL: tag},
    )
    doc["metadata"]["name"] = f"driftwarden-injector-{tag}"
    with k8s.api_client() as api:
        adm = k8s_client.AdmissionregistrationV1Api(api)
        adm.create_mutating_webhook_configuration(doc)
        try:
            yield doc["metadata"]["name"]
        finally:
            adm.delete_mutating_webhook_configuration(doc["metadata"]["name"])


def _pod_body(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    pod = model_pod(annotations, name=name)
    c = pod["spec"]["containers"][0]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": pod["metadata"]["labels"],
            "annotations": annotations,
        },
        "spec": {
            "containers": [
                {
                    "name": "model",
                    "image": c["image"],
                    "ports": c["ports"],
                    "readinessProbe": c["readinessProbe"],
                    "livenessProbe": c["livenessProbe"],
                }
            ]
        },
    }


def _create(
    core: k8s_client.CoreV1Api, ns: str, body: dict[str, Any], dry_run: bool = False
) -> dict:
    kwargs = {"dry_run": "All"} if dry_run else {}
    raw = core.create_namespaced_pod(ns, body, _preload_content=False, **kwargs)

    return json.loads(raw.data)


def _sidecar(pod: dict[str, Any]) -> dict[str, Any] | None:
    for c in pod["spec"].get("initContainers") or []:
        if c["name"] == "driftwarden-collector":
            return c
    return None


def _wait_until_active(k8s: Any, core: k8s_client.CoreV1Api, ns: str) -> None:
    """The API server picks a new webhook configuration up within a moment: probe with
    dry-run creates (the webhook has no side effects) until the sidecar appears."""
    probe = _pod_body("probe", {"driftwarden.io/inject": "true"})
    k8s.wait(
        lambda: _sidecar(_create(core, ns, probe, dry_run=True)) is not None,
        timeout=30,
        what="the webhook configuration to take effect",
        interval=0.2,
    )


@pytest.fixture(scope="module")
def injector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    with injector_process(tmp_path_factory.mktemp("injector")) as (url, ca, _):
        yield url, ca


def test_annotated_pod_gets_the_sidecar_and_the_port(k8s: Any, injector: tuple[str, bytes]) -> None:
    url, ca = injector
    tag = secrets.token_hex(3)
    ns = k8s.namespace("inj", labels={TEST_LABEL: tag})
    with webhook_config(k8s, url, ca, tag), k8s.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        _wait_until_active(k8s, core, ns)
        annotations = {"driftwarden.io/inject": "true", "driftwarden.io/model": "credit"}
        pod = _create(core, ns, _pod_body("credit", annotations))
        side = _sidecar(pod)
        assert side is not None, pod["spec"]
        assert side["image"] == IMAGE and side["restartPolicy"] == "Always"
        assert side["ports"][0]["name"] == "http" and side["ports"][0]["containerPort"] == 8480
        env = {e["name"]: e.get("value") for e in side["env"]}
        assert env["DRIFTWARDEN_MODEL"] == "credit" and env["DRIFTWARDEN_MODEL_PORT"] == "8080"
        assert env["DRIFTWARDEN_BOOTSTRAP"] == "kafka.dw:9092"
        model = pod["spec"]["containers"][0]
        assert (
            model["ports"][0]["name"] == "dw-model" and model["ports"][0]["containerPort"] == 8080
        )
        assert model["readinessProbe"]["httpGet"]["port"] == "dw-model"
        assert model["livenessProbe"]["tcpSocket"]["port"] == "dw-model"
        assert pod["metadata"]["annotations"]["driftwarden.io/injected"] == "true"
        # Stored as returned: read it back.
        stored = core.read_namespaced_pod("credit", ns, _preload_content=False)

        stored_pod = json.loads(stored.data)
        assert _sidecar(stored_pod) is not None
        assert sum(1 for c in stored_pod["spec"]["initContainers"]) == 1  # injected once

        plain = _create(core, ns, _pod_body("plain", {}))
        assert "initContainers" not in plain["spec"]
        assert plain["spec"]["containers"][0]["ports"][0]["name"] == "http"
        assert "driftwarden.io/injected" not in (plain["metadata"].get("annotations") or {})

        # A Service selecting the injected pod by the port's name reaches the sidecar.
        core.create_namespaced_service(
            ns,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "credit"},
                "spec": {
                    "selector": {"app": "credit"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                },
            },
        )
        discovery = k8s_client.DiscoveryV1Api(api)

        def port_of_credit() -> dict[str, int] | None:
            # Raw JSON: the client's model refuses a slice whose `endpoints` is still null.
            raw = discovery.list_namespaced_endpoint_slice(
                ns, label_selector="kubernetes.io/service-name=credit", _preload_content=False
            )
            found = {}
            for s in json.loads(raw.data)["items"]:
                for e in s.get("endpoints") or []:
                    if e.get("targetRef") and s.get("ports"):
                        found[e["targetRef"]["name"]] = s["ports"][0]["port"]
            return found if {"credit", "plain"} <= set(found) else None

        ports = k8s.wait(port_of_credit, timeout=60, what="EndpointSlices of both pods")
        assert ports == {"credit": 8480, "plain": 8080}


def test_namespace_opt_in(k8s: Any, injector: tuple[str, bytes]) -> None:
    url, ca = injector
    tag = secrets.token_hex(3)
    ns = k8s.namespace("inj-ns", labels={TEST_LABEL: tag, "driftwarden.io/inject": "enabled"})
    with webhook_config(k8s, url, ca, tag), k8s.api_client() as api:
        core = k8s_client.CoreV1Api(api)
        _wait_until_active(k8s, core, ns)
        pod = _create(core, ns, _pod_body("by-namespace", {}))
        assert _sidecar(pod) is not None
        out = _create(core, ns, _pod_body("opted-out", {"driftwarden.io/inject": "false"}))
        assert _sidecar(out) is None
        labelled = _pod_body("label-out", {})
        labelled["metadata"]["labels"]["driftwarden.io/inject"] = "false"
        assert _sidecar(_create(core, ns, labelled)) is None


def test_kafka_security_secrets_are_mounted_into_the_sidecar(k8s: Any, tmp_path: Path) -> None:
    """`kafka_security` in `--config`: the API server stores the sidecar with the Secret
    volumes (whole Secrets, read-only) and the DRIFTWARDEN_KAFKA_* file paths."""
    config = tmp_path / "injector.yaml"
    config.write_text(
        "kafka_security:\n"
        "  protocol: SASL_SSL\n"
        "  username: collector\n"
        "  password_secret: dw-kafka-collector\n"
        "  ca_secret: kafka-cluster-ca-cert\n"
    )
    tag = secrets.token_hex(3)
    ns = k8s.namespace("inj-kafka", labels={TEST_LABEL: tag})
    with (
        injector_process(tmp_path, "--config", str(config)) as (url, ca, _),
        webhook_config(k8s, url, ca, tag),
        k8s.api_client() as api,
    ):
        core = k8s_client.CoreV1Api(api)
        _wait_until_active(k8s, core, ns)
        _create(core, ns, _pod_body("secure", {"driftwarden.io/inject": "true"}))
        stored = json.loads(core.read_namespaced_pod("secure", ns, _preload_content=False).data)
    side = _sidecar(stored)
    assert side is not None
    env = {e["name"]: e.get("value") for e in side["env"]}
    assert env["DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["DRIFTWARDEN_KAFKA_USERNAME"] == "collector"
    assert env["DRIFTWARDEN_KAFKA_PASSWORD_FILE"] == "/etc/driftwarden/kafka/sasl/password"
    assert env["DRIFTWARDEN_KAFKA_CA_FILE"] == "/etc/driftwarden/kafka/ca/ca.crt"
    volumes = {v["name"]: v for v in stored["spec"]["volumes"]}
    assert volumes["driftwarden-kafka-sasl"]["secret"]["secretName"] == "dw-kafka-collector"
    assert volumes["driftwarden-kafka-ca"]["secret"]["secretName"] == "kafka-cluster-ca-cert"
    mounts = {m["name"]: m for m in side["volumeMounts"]}
    assert mounts["driftwarden-kafka-sasl"] == {
        "name": "driftwarden-kafka-sasl",
        "mountPath": "/etc/driftwarden/kafka/sasl",
        "readOnly": True,
    }
    model = stored["spec"]["containers"][0]
    assert not any(m["name"].startswith("driftwarden-kafka") for m in model.get("volumeMounts", []))


def test_pods_are_admitted_with_the_injector_stopped_and_reported(k8s: Any, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    ns = k8s.namespace("inj-down", labels={TEST_LABEL: tag})
    with (
        injector_process(tmp_path) as (url, ca, proc),
        webhook_config(k8s, url, ca, tag),
        k8s.api_client() as api,
    ):
        core = k8s_client.CoreV1Api(api)
        _wait_until_active(k8s, core, ns)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        started = time.monotonic()
        annotations = {"driftwarden.io/inject": "true"}
        pod = _create(core, ns, _pod_body("orphan", annotations))
        elapsed = time.monotonic() - started
        assert _sidecar(pod) is None
        assert pod["metadata"]["name"] == "orphan"
        assert elapsed < 5, f"admission took {elapsed:.1f} s with the injector down"

        stats = InjectorStats()
        reconciler = Reconciler(
            api,
            InjectorConfig(),
            stats,
            exclude_namespaces=("kube-system", "driftwarden"),
        )
        missing = reconciler.run_once()
        mine = [m for m in missing if m.namespace == ns]
        assert [m.name for m in mine] == ["orphan"]
        assert stats.missing()[ns] == 1
        events = core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name=orphan,reason={EVENT_REASON}"
        ).items
        assert len(events) == 1 and events[0].type == "Warning"
        reconciler.run_once()  # a second pass writes no second Event
        events = core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name=orphan,reason={EVENT_REASON}"
        ).items
        assert len(events) == 1

    # The injector back, with its reconciler on: the orphan shows in its metrics.
    with injector_process(
        tmp_path / "again",
        *("--reconcile-interval", "0.5", "--kubeconfig", str(k8s.kubeconfig)),
        *("--namespace", "driftwarden"),
    ) as (url, ca, _):
        ctx = ssl.create_default_context(cadata=ca.decode())
        line = f'driftwarden_injector_pods_missing_sidecar{{namespace="{ns}"}} 1.0'

        def scraped() -> bool:
            conn = http.client.HTTPSConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), context=ctx)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
            return line in text

        k8s.wait(scraped, timeout=30, what=f"{line} on the injector's /metrics")


def _metric(url: str, ca: bytes, line_prefix: str) -> float:
    ctx = ssl.create_default_context(cadata=ca.decode())
    conn = http.client.HTTPSConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), context=ctx)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in /metrics")


def test_reinvocation_after_another_webhook_injects_once(
    k8s: Any, injector: tuple[str, bytes], admission_webhook: Any
) -> None:
    """Another mutating webhook, called after ours, changes the pod: the API server calls
    ours again (reinvocationPolicy IfNeeded), which recognises the pod and adds nothing."""
    url, ca = injector
    tag = secrets.token_hex(3)
    ns = k8s.namespace("inj-re", labels={TEST_LABEL: tag})
    other = admission_webhook(annotate("example.com/touched", "yes"))
    other_config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": f"zz-other-{tag}"},  # called after driftwarden-injector-*
        "webhooks": [
            {
                "name": "other.example.com",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": other.url, "caBundle": other.ca_bundle},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "reinvocationPolicy": "IfNeeded",
                "namespaceSelector": {"matchLabels": {TEST_LABEL: tag}},
            }
        ],
    }
    again = 'driftwarden_injector_reviews_total{outcome="skipped",reason="already_injected"}'
    with webhook_config(k8s, url, ca, tag), k8s.api_client() as api:
        adm = k8s_client.AdmissionregistrationV1Api(api)
        adm.create_mutating_webhook_configuration(other_config)
        try:
            core = k8s_client.CoreV1Api(api)
            _wait_until_active(k8s, core, ns)
            k8s.wait(
                lambda: (
                    "example.com/touched"
                    in _create(core, ns, _pod_body("p", {}), dry_run=True)["metadata"].get(
                        "annotations", {}
                    )
                ),
                timeout=30,
                what="the other webhook to take effect",
                interval=0.2,
            )
            before = _metric(url, ca, again)
            pod = _create(core, ns, _pod_body("twice", {"driftwarden.io/inject": "true"}))
            assert pod["metadata"]["annotations"]["example.com/touched"] == "yes"
            assert [c["name"] for c in pod["spec"]["initContainers"]] == ["driftwarden-collector"]
            assert [p["name"] for p in pod["spec"]["containers"][0]["ports"]] == [
                "dw-model",
                "metrics",
            ]
            assert _metric(url, ca, again) >= before + 1  # reinvoked, and declined
        finally:
            adm.delete_mutating_webhook_configuration(other_config["metadata"]["name"])
