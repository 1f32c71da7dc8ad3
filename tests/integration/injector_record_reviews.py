"""Records the AdmissionReviews kube-apiserver sends for a few pod shapes into
tests/unit/injector_reviews/*.json (the payloads the patch builder's unit tests replay).

Not collected by default (no `test_` prefix); to refresh the recordings:

    python -m pytest tests/integration/injector_record_reviews.py -q -p no:cacheprovider

Pods are created the way users create them: through a Deployment (so the review comes
from the ReplicaSet controller, with `generateName` and every default applied), except
where a shape needs a bare Pod.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from kubernetes import client as k8s_client

from collector.injector import webhook_configuration
from tests.kits.injector import REVIEWS, model_pod

LABEL = "driftwarden-record"


def _container(**changes: Any) -> dict[str, Any]:
    c = model_pod()["spec"]["containers"][0]
    keep = {k: c[k] for k in ("name", "image", "ports", "readinessProbe", "livenessProbe")}
    keep.update(changes)
    return keep


SHAPES: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "plain": (
        {"driftwarden.io/inject": "true", "driftwarden.io/model": "credit"},
        {"containers": [_container()]},
    ),
    "no_annotation": ({}, {"containers": [_container()]}),
    "numeric_port": (
        {"driftwarden.io/inject": "true"},
        {
            "containers": [
                _container(
                    ports=[{"containerPort": 8080}],
                    readinessProbe={"httpGet": {"path": "/", "port": 8080}},
                    livenessProbe={"tcpSocket": {"port": 8080}},
                )
            ]
        },
    ),
    "already_injected": (
        {"driftwarden.io/inject": "true", "driftwarden.io/injected": "true"},
        {
            "initContainers": [
                {
                    "name": "driftwarden-collector",
                    "image": "registry.local/driftwarden:test",
                    "restartPolicy": "Always",
                    "ports": [{"name": "http", "containerPort": 8480}],
                }
            ],
            "containers": [
                _container(
                    ports=[{"name": "dw-model", "containerPort": 8080}],
                    readinessProbe={"httpGet": {"path": "/", "port": "dw-model"}},
                    livenessProbe={"tcpSocket": {"port": "dw-model"}},
                )
            ],
        },
    ),
    "host_network": (
        {"driftwarden.io/inject": "true"},
        {"hostNetwork": True, "containers": [_container()]},
    ),
}


def test_record(k8s: Any, admission_webhook: Any) -> None:
    hook = admission_webhook()
    tag = secrets.token_hex(3)
    ns = k8s.namespace("record", labels={LABEL: tag})
    doc = webhook_configuration(
        ca_bundle=base64.b64decode(hook.ca_bundle),
        namespace="driftwarden",
        url=hook.url,
        namespace_labels={LABEL: tag},
    )
    doc["metadata"]["name"] = f"driftwarden-record-{tag}"
    with k8s.api_client() as api:
        adm = k8s_client.AdmissionregistrationV1Api(api)
        apps = k8s_client.AppsV1Api(api)
        adm.create_mutating_webhook_configuration(doc)
        try:
            for name, (annotations, spec) in SHAPES.items():
                labels = {"app": name.replace("_", "-"), "version": "v3"}
                apps.create_namespaced_deployment(
                    ns,
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": labels["app"]},
                        "spec": {
                            "replicas": 1,
                            "selector": {"matchLabels": labels},
                            "template": {
                                "metadata": {"labels": labels, "annotations": annotations},
                                "spec": spec,
                            },
                        },
                    },
                )
                request = hook.wait_for(
                    lambda r, app=labels["app"]: (
                        r["kind"]["kind"] == "Pod"
                        and r["object"]["metadata"].get("labels", {}).get("app") == app
                    ),
                    timeout=60,
                )
                review = {
                    "kind": "AdmissionReview",
                    "apiVersion": "admission.k8s.io/v1",
                    "request": request,
                }
                REVIEWS.mkdir(parents=True, exist_ok=True)
                (REVIEWS / f"{name}.json").write_text(json.dumps(review, indent=1) + "\n")
        finally:
            adm.delete_mutating_webhook_configuration(doc["metadata"]["name"])
    assert {p.stem for p in REVIEWS.glob("*.json")} >= set(SHAPES)
