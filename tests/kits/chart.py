"""Helpers for the Helm chart tests: run the `helm` that `make helm-install` builds, render
the chart with a set of values, validate manifests offline against Kubernetes' schemas.

`helm` missing fails the test with the command that builds it; nothing is skipped.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "driftwarden"
HELM = Path(os.environ.get("DRIFTWARDEN_HELM", ROOT / ".cache" / "helm" / "bin" / "helm"))
KUBECTL = ROOT / ".cache" / "k8s" / "bin" / "kubectl"
#: The Kubernetes versions the chart supports and is validated against (native sidecars: 1.29).
KUBE_VERSIONS = ("1.30.0", "1.33.0", "1.37.0")
#: Kinds from CRDs (prometheus-operator, cert-manager, Strimzi): no schema ships for them.
CRD_GROUPS = ("monitoring.coreos.com", "cert-manager.io", "kafka.strimzi.io")

#: Value sets the tests render.
DEFAULTS: dict[str, Any] = {}
EVERYTHING_ON: dict[str, Any] = {
    "kafka": {
        "security": {
            "protocol": "SASL_SSL",
            "saslMechanism": "SCRAM-SHA-512",
            "caSecret": "kafka-ca",
            "username": "driftwarden",
            "passwordSecret": "kafka-user",
            "users": {"detectors": {"username": "dw-detectors", "passwordSecret": "kafka-det"}},
        }
    },
    "injector": {
        "reconcile": {"enabled": True},
        "namespaceLabels": {"team": "ml"},
        "config": {"extra_env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}},
    },
    "detectors": {
        "replicas": 2,
        "specs": {
            "fraud": {"model": "fraud", "features": [{"name": "amount", "type": "numerical"}]}
        },
        "autoscaling": {"enabled": True, "consumerLag": {"enabled": True}},
        "extraEnv": [{"name": "DRIFTWARDEN_MAX_BATCH", "value": "500"}],
    },
    "trigger": {
        "namespaces": ["ml-a", "ml-b"],
        "policies": {"fraud": {"model": "fraud", "namespace": "ml-a"}},
    },
    "canary": {"gatewayApi": True},
    "monitoring": {"rulesConfigMap": True},
    "alertmanager": {"namespace": "monitoring", "alertmanagerConfig": True},
}
NO_PROMETHEUS_OPERATOR: dict[str, Any] = {
    "monitoring": {"prometheusOperator": False, "rulesConfigMap": True},
}
CERT_MANAGER: dict[str, Any] = {"injector": {"certs": {"mode": "certManager"}}}
STRIMZI: dict[str, Any] = {
    "kafka": {
        "topics": {"mode": "strimzi", "replicationFactor": 3, "retentionHours": 24},
        # a KafkaUser per component, its ACLs from driftwarden.kafka.component_acls
        "security": {
            "protocol": "SASL_SSL",
            "caSecret": "my-cluster-cluster-ca-cert",
            "strimziUsers": True,
        },
    }
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": DEFAULTS,
    "everything-on": EVERYTHING_ON,
    "no-kube-prometheus-stack": NO_PROMETHEUS_OPERATOR,
    "cert-manager": CERT_MANAGER,
    "strimzi": STRIMZI,
}


def helm_binary() -> Path:
    if not os.access(HELM, os.X_OK):
        pytest.fail(f"helm not found at {HELM}: run `make helm-install`", pytrace=False)
    return HELM


def run_helm(args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def values_file(values: Mapping[str, Any], folder: Path) -> Path:
    path = folder / "values.yaml"
    path.write_text(yaml.safe_dump(dict(values)), encoding="utf-8")
    return path


def template(
    values: Mapping[str, Any] = DEFAULTS,
    *,
    release: str = "driftwarden",
    namespace: str = "driftwarden",
    kube_version: str = KUBE_VERSIONS[-1],
) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as folder:
        return run_helm(
            [
                "template",
                release,
                str(CHART),
                "--namespace",
                namespace,
                "--kube-version",
                kube_version,
                "-f",
                str(values_file(values, Path(folder))),
            ]
        )


def render(values: Mapping[str, Any] = DEFAULTS, **kwargs: Any) -> list[dict[str, Any]]:
    """The chart's manifests (hooks included) as dicts; fails the test on a render error."""
    result = template(values, **kwargs)
    if result.returncode != 0:
        pytest.fail(f"helm template failed: {result.stderr.strip()}", pytrace=False)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Sequence[Mapping[str, Any]], kind: str, name_suffix: str) -> Mapping[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{kind} *{name_suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def is_crd_kind(doc: Mapping[str, Any]) -> bool:
    return doc["apiVersion"].split("/")[0] in CRD_GROUPS


def validate_offline(doc: Mapping[str, Any], kube_version: str) -> None:
    """Raise kubernetes_validate's ValidationError when `doc` does not match the schema of
    its kind in `kube_version` (strict: unknown fields are errors)."""
    import kubernetes_validate

    kubernetes_validate.validate(dict(doc), kube_version, strict=True)
