"""The canary controller's Kubernetes adapter: Deployments, Services, HTTPRoutes.

Built on the retrain trigger's adapter (`retrain_trigger.kube`): the same client
construction and the same mapping of client errors onto `RetryLater` / `GiveUp`; Jobs and
Events go through its `KubeJobs`. Objects cross this boundary as plain dicts in the API's
camelCase form, so the pure builders (`manifests.py`) never see client classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kubernetes import client as k8s

from retrain_trigger.kube import KubeJobs, kube_call, unless_conflict

__all__ = ["GATEWAY_GROUP", "GATEWAY_VERSION", "KubeRollouts"]

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"

R = TypeVar("R")


class KubeRollouts:
    """What the controller reads and writes, in its namespaces."""

    def __init__(self, api: k8s.ApiClient, namespaces: Sequence[str]) -> None:
        self.api = api
        self.jobs = KubeJobs(api, namespaces)
        self.namespaces = self.jobs.namespaces
        self._apps = k8s.AppsV1Api(api)
        self._core = k8s.CoreV1Api(api)
        self._custom = k8s.CustomObjectsApi(api)

    def _call(self, what: str, fn: Callable[[], R], *, missing_ok: bool = False) -> R | None:
        return kube_call(what, fn, missing_ok=missing_ok)

    def _dict(self, obj: Any) -> dict[str, Any] | None:
        if obj is None:
            return None
        if isinstance(obj, dict):
            return obj
        return self.api.sanitize_for_serialization(obj)

    # --- Deployments ---------------------------------------------------------------------

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._dict(
            self._call(
                f"get Deployment {namespace}/{name}",
                lambda: self._apps.read_namespaced_deployment(name, namespace),
                missing_ok=True,
            )
        )

    def create_deployment(self, manifest: dict[str, Any]) -> bool:
        """Create it; False when one of that name exists already (idempotent)."""
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        return unless_conflict(
            f"create Deployment {ns}/{name}",
            lambda: self._apps.create_namespaced_deployment(ns, manifest),
        )

    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any] | list) -> None:
        """A strategic merge patch (dict; with `metadata.resourceVersion` it only applies to
        that version, else 409 → RetryLater) or a JSON patch (list)."""
        self._call(
            f"patch Deployment {namespace}/{name}",
            lambda: self._apps.patch_namespaced_deployment(name, namespace, patch),
        )

    def annotate_deployment(
        self, namespace: str, name: str, annotations: dict[str, str], resource_version: str
    ) -> bool:
        """Set annotations only on that resourceVersion; False when the object has moved on
        (409: re-read and decide again), True when written."""
        body = {"metadata": {"resourceVersion": resource_version, "annotations": annotations}}
        return unless_conflict(
            f"annotate Deployment {namespace}/{name}",
            lambda: self._apps.patch_namespaced_deployment(name, namespace, body),
        )

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.patch_deployment(namespace, name, {"spec": {"replicas": replicas}})

    def delete_deployment(self, namespace: str, name: str) -> bool:
        """Delete it (its pods go with it); False when it was already gone."""
        body = k8s.V1DeleteOptions(propagation_policy="Background")
        done = self._call(
            f"delete Deployment {namespace}/{name}",
            lambda: self._apps.delete_namespaced_deployment(name, namespace, body=body),
            missing_ok=True,
        )
        return done is not None

    # --- Services and HTTPRoutes (gateway-api router) --------------------------------------

    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._dict(
            self._call(
                f"get Service {namespace}/{name}",
                lambda: self._core.read_namespaced_service(name, namespace),
                missing_ok=True,
            )
        )

    def create_service(self, manifest: dict[str, Any]) -> bool:
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        return unless_conflict(
            f"create Service {ns}/{name}",
            lambda: self._core.create_namespaced_service(ns, manifest),
        )

    def delete_service(self, namespace: str, name: str) -> bool:
        done = self._call(
            f"delete Service {namespace}/{name}",
            lambda: self._core.delete_namespaced_service(name, namespace),
            missing_ok=True,
        )
        return done is not None

    def get_httproute(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._dict(
            self._call(
                f"get HTTPRoute {namespace}/{name}",
                lambda: self._custom.get_namespaced_custom_object(
                    GATEWAY_GROUP, GATEWAY_VERSION, namespace, "httproutes", name
                ),
                missing_ok=True,
            )
        )

    def patch_httproute_rules(
        self, namespace: str, name: str, rules: list[dict[str, Any]], resource_version: str
    ) -> None:
        """Replace `spec.rules` (JSON patch, guarded by the resourceVersion read)."""
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "replace", "path": "/spec/rules", "value": rules},
        ]
        self._call(
            f"patch HTTPRoute {namespace}/{name}",
            lambda: self._custom.patch_namespaced_custom_object(
                GATEWAY_GROUP, GATEWAY_VERSION, namespace, "httproutes", name, patch
            ),
        )

    # --- Events and Jobs (the trigger's adapter) ------------------------------------------

    def emit_event(self, namespace: str, deployment: str, **kwargs: Any) -> bool:
        return self.jobs.emit_event(namespace, deployment, **kwargs)

    def list_jobs_raw(self, namespace: str) -> list[k8s.V1Job]:
        return self.jobs.list_jobs_raw(namespace)[0]

    def close(self) -> None:
        self.api.close()
        # ApiClient.close() leaves urllib3's pooled sockets open; close them too.
        self.api.rest_client.pool_manager.clear()
