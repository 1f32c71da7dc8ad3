"""Test kit for the retrain trigger: a least-privileged namespace, policies, notifications.

`trigger_env(k8s, kafka, tmp_path)` prepares what `driftwarden trigger run` needs against the
real API server: a fresh namespace, a Role with exactly the verbs docs/retrain-trigger.md
lists bound to the ServiceAccount the trigger runs as (so every test also proves the RBAC
is enough), a kubeconfig for that user, the model's Deployment, a token file and a policy folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client

from retrain_trigger.runner import TriggerService, TriggerSettings

#: The trigger's RBAC, exactly as docs/retrain-trigger.md states it.
TRIGGER_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["create", "get", "list", "watch", "patch"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
]


@contextlib.contextmanager
def admin(cluster: Any) -> Iterator[k8s_client.ApiClient]:
    """An admin client whose pooled sockets are closed afterwards (ApiClient.close() alone
    leaves them open, a ResourceWarning)."""
    api = cluster.api_client()
    try:
        yield api
    finally:
        api.close()
        api.rest_client.pool_manager.clear()


def policy_doc(model: str, namespace: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": model,
        "namespace": namespace,
        "trainer": {
            "image": "registry.local/trainer:1",
            "resources": {"gpu": 1, "cpu": "100m", "memory": "64Mi"},
        },
        "spec": f"/specs/{model}.yaml",
        "output": f"/artifacts/{model}",
        "cooldown_s": 3600,
        "ttl_seconds_after_finished": 7200,
    }
    doc.update(overrides)
    return doc


def notification(
    model: str = "fraud",
    *,
    status: str = "firing",
    alertname: str = "DriftwardenDatasetDrift",
    starts: datetime | None = None,
    action: str | None = "retrain",
) -> dict[str, Any]:
    """An Alertmanager v4 webhook body as `alerts/alertmanager` routes it (grouped by model)."""
    starts = starts or datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
    labels = {"alertname": alertname, "model": model, "version": "v1", "severity": "warning"}
    if action:
        labels["driftwarden_action"] = action
    return {
        "version": "4",
        "groupKey": f'{{}}/{{driftwarden_action="retrain"}}:{{model="{model}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "driftwarden-retrain",
        "groupLabels": {"model": model},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "drift"},
        "externalURL": "http://alertmanager.local",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "drift"},
                "startsAt": starts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.local/graph",
                "fingerprint": hashlib.sha256(f"{model}/{alertname}".encode()).hexdigest()[:16],
            }
        ],
    }


@dataclass
class TriggerEnv:
    namespace: str
    kubeconfig: Path
    token_file: Path
    token: str
    policies: Path
    bootstrap: str | None
    prefix: str
    cluster: Any

    def settings(self, **overrides: Any) -> TriggerSettings:
        values: dict[str, Any] = {
            "policies": self.policies,
            "token_file": self.token_file,
            "namespaces": (self.namespace,),
            "kubeconfig": self.kubeconfig,
            "host": "127.0.0.1",
            "port": 0,
            "bootstrap": self.bootstrap,
            "topic_prefix": self.prefix,
            "lineage_partitions": 1,
            "watch_timeout_s": 5,
        }
        values.update(overrides)
        return TriggerSettings(**values)

    def service(self, **overrides: Any) -> TriggerService:
        return TriggerService(self.settings(**overrides))

    def write_policy(self, model: str = "fraud", **overrides: Any) -> Path:
        path = self.policies / f"{model}.yaml"
        path.write_text(yaml.safe_dump(policy_doc(model, self.namespace, **overrides)))
        return path

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def jobs(self) -> list[k8s_client.V1Job]:
        with admin(self.cluster) as api:
            return list(k8s_client.BatchV1Api(api).list_namespaced_job(self.namespace).items)

    def events(self, deployment: str = "fraud") -> list[Any]:
        with admin(self.cluster) as api:
            return list(
                k8s_client.CoreV1Api(api)
                .list_namespaced_event(
                    self.namespace,
                    field_selector=f"involvedObject.kind=Deployment,involvedObject.name={deployment}",
                )
                .items
            )


def _advertise_gpus(core: k8s_client.CoreV1Api, count: str = "8") -> None:
    """Give the fake node `nvidia.com/gpu` capacity (what the NVIDIA device plugin does on a
    real GPU node), so a Job asking for GPUs is scheduled and kwok runs it to completion."""
    for node in core.list_node().items:
        if (node.status.allocatable or {}).get("nvidia.com/gpu") == count:
            continue
        capacity = {**(node.status.capacity or {}), "nvidia.com/gpu": count}
        allocatable = {**(node.status.allocatable or {}), "nvidia.com/gpu": count}
        core.patch_node_status(
            node.metadata.name, {"status": {"capacity": capacity, "allocatable": allocatable}}
        )


def trigger_env(
    cluster: Any, tmp_path: Path, bootstrap: str | None, models: tuple[str, ...] = ("fraud",)
) -> TriggerEnv:
    """A namespace with the trigger's Role bound to user "trigger", its Deployment(s), a
    kubeconfig, a token file and a policy per model."""
    ns = cluster.namespace("trigger")
    with admin(cluster) as api:
        rbac = k8s_client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            ns, {"metadata": {"name": "driftwarden-trigger"}, "rules": TRIGGER_RULES}
        )
        rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": "driftwarden-trigger"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "driftwarden-trigger",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "driftwarden-trigger", "namespace": ns}
                ],
            },
        )
        _advertise_gpus(k8s_client.CoreV1Api(api))
        apps = k8s_client.AppsV1Api(api)
        for model in models:
            apps.create_namespaced_deployment(
                ns,
                {
                    "metadata": {
                        "name": model,
                        "labels": {"app": model, "version": "v1"},
                        "annotations": {"driftwarden.io/artifact": f"/artifacts/{model}/v1"},
                    },
                    "spec": {
                        "replicas": 0,
                        "selector": {"matchLabels": {"app": model}},
                        "template": {
                            "metadata": {"labels": {"app": model, "version": "v1"}},
                            "spec": {
                                "containers": [{"name": "model", "image": "registry.local/model:1"}]
                            },
                        },
                    },
                },
            )
    kubeconfig = tmp_path / "trigger.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "test",
                        "cluster": {
                            "server": cluster.server,
                            "certificate-authority": str(cluster.ca_file),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "trigger",
                        "user": {"token": cluster.service_account_token(ns, "driftwarden-trigger")},
                    }
                ],
                "contexts": [
                    {
                        "name": "test",
                        "context": {"cluster": "test", "user": "trigger", "namespace": ns},
                    }
                ],
                "current-context": "test",
            }
        )
    )
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    policies = tmp_path / "policies"
    policies.mkdir()
    env = TriggerEnv(
        ns, kubeconfig, token_file, token, policies, bootstrap, f"t{secrets.token_hex(4)}", cluster
    )
    for model in models:
        env.write_policy(model)
    return env
