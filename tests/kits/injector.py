"""Helpers for the injector's tests and benchmark: AdmissionReview envelopes, a pod, the
Kubernetes name resolution rules the port takeover relies on, and an injector server
running in a thread with fresh certificates.

`review()` wraps a pod the way kube-apiserver 1.37 does (compare the payloads recorded
from it in tests/unit/injector_reviews/ by tests/integration/injector_record_reviews.py).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonpatch

from collector.injector.certs import make_certs, write_certs
from collector.injector.config import InjectorConfig
from collector.injector.server import InjectorServer, ServerSettings, new_event_loop

REVIEWS = Path(__file__).resolve().parents[1] / "unit" / "injector_reviews"


def review(
    pod: Mapping[str, Any],
    *,
    namespace: str = "models",
    operation: str = "CREATE",
    uid: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview v1 for `pod`, shaped like the API server's."""
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": meta.get("name", ""),
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": copy.deepcopy(dict(pod)),
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


def model_pod(
    annotations: Mapping[str, str] | None = None,
    *,
    port: Mapping[str, Any] | None = None,
    probes: bool = True,
    labels: Mapping[str, str] | None = None,
    name: str = "credit-7d9f",
) -> dict[str, Any]:
    """A defaulted model pod: one container serving `http: 8080`, probes on the name."""
    p = dict(port or {"name": "http", "containerPort": 8080, "protocol": "TCP"})
    container: dict[str, Any] = {
        "name": "model",
        "image": "registry.local/credit:3",
        "ports": [p, {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    ref = p.get("name") or p["containerPort"]
    if probes:
        container["readinessProbe"] = {
            "httpGet": {"path": "/v1/models/credit", "port": ref, "scheme": "HTTP"},
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
        container["livenessProbe"] = {
            "tcpSocket": {"port": ref},
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
        container["startupProbe"] = {
            "httpGet": {"path": "/healthz", "port": p["containerPort"], "scheme": "HTTP"},
            "periodSeconds": 1,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 30,
        }
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "generateName": "credit-",
            "namespace": "models",
            "labels": {"app": "credit", "version": "v3", **(labels or {})},
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}],
            "containers": [container],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


def apply(pod: Mapping[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    return jsonpatch.apply_patch(copy.deepcopy(dict(pod)), patch)


def load_recorded(name: str) -> dict[str, Any]:
    return json.loads((REVIEWS / f"{name}.json").read_text())


# --- the Kubernetes rules the takeover relies on (ported from the Go sources) ------------


def service_target(
    pod: Mapping[str, Any], target_port: str | int, protocol: str = "TCP"
) -> int | None:
    """`FindPort` of k8s.io/kubernetes/pkg/api/v1/pod: where a Service's targetPort lands.
    A name is looked up in the regular containers first, then in the native sidecars."""
    if isinstance(target_port, int):
        return target_port
    spec = pod["spec"]
    candidates = list(spec.get("containers") or []) + [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
    ]
    for c in candidates:
        for p in c.get("ports") or []:
            if p.get("name") == target_port and p.get("protocol", "TCP") == protocol:
                return p["containerPort"]
    return None


def probe_port(container: Mapping[str, Any], probe: Mapping[str, Any]) -> int | None:
    """The kubelet's resolution of a probe's port: a number, or a name among the ports of
    the probe's own container (None: the kubelet fails the probe)."""
    action = probe.get("httpGet") or probe.get("tcpSocket") or {}
    port = action.get("port")
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


# --- a server in a thread ----------------------------------------------------------------


class RunningInjector:
    def __init__(
        self, server: InjectorServer, loop: asyncio.AbstractEventLoop, certs: Path
    ) -> None:
        self.server = server
        self.loop = loop
        self.certs = certs
        self.port = server.port
        self.url = f"https://127.0.0.1:{server.port}"
        self.ca_file = certs / "ca.crt"


@contextmanager
def running_injector(
    tmp: Path,
    config: InjectorConfig | None = None,
    **settings: Any,
) -> Iterator[RunningInjector]:
    """An `InjectorServer` on 127.0.0.1 (a free port) with a new CA, in a thread."""
    certs = tmp / "certs"
    write_certs(make_certs(["localhost"], ["127.0.0.1"]), certs)
    s = ServerSettings(
        host="127.0.0.1",
        port=0,
        cert_file=certs / "tls.crt",
        key_file=certs / "tls.key",
        **settings,
    )
    server = InjectorServer(s, config or InjectorConfig())
    loop = new_event_loop()
    started = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as e:
            errors.append(e)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=serve, name="injector", daemon=True)
    thread.start()
    started.wait(10)
    if errors:
        raise errors[0]
    try:
        yield RunningInjector(server, loop, certs)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
