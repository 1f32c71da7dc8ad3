"""Manifests and patches of a rollout, built from the stable Deployment. Pure.

Objects are plain dicts in the API's own (camelCase) form, as `ApiClient.
sanitize_for_serialization` returns them and as `kubectl get -o json` shows them.

- The canary Deployment `<stable>-canary` is the stable one's pod template with the label
  `version=<new>`, the annotations `driftwarden.io/model-version=<new>` (the collector
  sidecar reports under it) and `driftwarden.io/artifact=<new artifact>`, and every
  occurrence of the stable's artifact location in the containers' command, args and env
  values replaced by the new one. Its selector is the stable's plus `version=<new>`.
- Promotion patches the stable Deployment with the canary's template (JSON merge patch:
  lists such as `containers` are replaced whole).
- The `replicas` router splits the stable's replica count between the two Deployments.
- The `gateway-api` router sets HTTPRoute backend weights (`httproute_rules`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from driftwarden.errors import DriftwardenError

__all__ = [
    "ANN_ARTIFACT",
    "ANN_CANARY_OF",
    "ANN_MODEL_VERSION",
    "LABEL_VERSION",
    "RolloutError",
    "actual_weight",
    "canary_deployment",
    "canary_name",
    "canary_service",
    "check_stable",
    "httproute_rules",
    "promote_patch",
    "replica_split",
    "rolled_out",
    "stable_version",
    "template_version",
]

LABEL_VERSION = "version"
ANN_MODEL_VERSION = "driftwarden.io/model-version"
ANN_ARTIFACT = "driftwarden.io/artifact"
ANN_CANARY_OF = "driftwarden.io/canary-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "driftwarden-canary"
#: HTTPRoute backend weights are 0..1,000,000; percentages are used as they are.
MAX_BACKEND_WEIGHT = 1_000_000
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class RolloutError(DriftwardenError):
    """The stable Deployment (or route) cannot be rolled out as asked; names the problem."""


def canary_name(stable: str) -> str:
    """`<stable>-canary`, within the 253-character object name limit (DNS-1123 subdomain)."""
    return f"{stable[:246]}-canary"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def stable_version(stable: Mapping[str, Any]) -> str:
    """The version the stable Deployment serves: its template's `version` label, else the
    Deployment's, else its `driftwarden.io/model-version` annotation."""
    template = (stable.get("spec") or {}).get("template") or {}
    for labels in ((_meta(template).get("labels") or {}), (_meta(stable).get("labels") or {})):
        if labels.get(LABEL_VERSION):
            return str(labels[LABEL_VERSION])
    return str((_meta(stable).get("annotations") or {}).get(ANN_MODEL_VERSION, ""))


def check_stable(stable: Mapping[str, Any]) -> None:
    """The preconditions of a rollout; raises RolloutError naming what is wrong."""
    name = _meta(stable).get("name", "?")
    spec = stable.get("spec") or {}
    selector = spec.get("selector") or {}
    if LABEL_VERSION in (selector.get("matchLabels") or {}) or any(
        e.get("key") == LABEL_VERSION for e in selector.get("matchExpressions") or []
    ):
        raise RolloutError(
            f"Deployment {name}: its selector uses the {LABEL_VERSION!r} label, so the new"
            " version's pods cannot be promoted into it (selectors are immutable); select"
            " on the app label only"
        )
    if not stable_version(stable):
        raise RolloutError(
            f"Deployment {name}: no {LABEL_VERSION!r} label on its pod template (nor a"
            f" {ANN_MODEL_VERSION} annotation): cannot tell the stable version apart"
        )
    if not (spec.get("template") or {}).get("spec", {}).get("containers"):
        raise RolloutError(f"Deployment {name}: its pod template has no containers")


def _replace_artifact(container: dict[str, Any], old: str, new: str) -> None:
    if not old or old == new:
        return
    for key in ("command", "args"):
        if container.get(key):
            container[key] = [a.replace(old, new) for a in container[key]]
    for env in container.get("env") or []:
        if isinstance(env.get("value"), str):
            env["value"] = env["value"].replace(old, new)


def _new_template(stable: Mapping[str, Any], version: str, artifact: str) -> dict[str, Any]:
    template = copy.deepcopy((stable.get("spec") or {}).get("template") or {})
    meta = template.setdefault("metadata", {})
    meta.setdefault("labels", {})[LABEL_VERSION] = version
    annotations = meta.setdefault("annotations", {})
    annotations[ANN_MODEL_VERSION] = version
    old_artifact = (_meta(stable).get("annotations") or {}).get(ANN_ARTIFACT, "")
    if artifact:
        annotations[ANN_ARTIFACT] = artifact
    spec = template.setdefault("spec", {})
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            _replace_artifact(c, old_artifact, artifact)
    return template


def canary_deployment(
    stable: Mapping[str, Any], *, version: str, artifact: str, replicas: int
) -> dict[str, Any]:
    """The canary Deployment for `version` (see the module docstring)."""
    check_stable(stable)
    meta = _meta(stable)
    spec = stable.get("spec") or {}
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[LABEL_VERSION] = version
    labels = {**(meta.get("labels") or {}), LABEL_VERSION: version, LABEL_MANAGED_BY: MANAGED_BY}
    annotations = {ANN_MODEL_VERSION: version, ANN_CANARY_OF: meta["name"]}
    if artifact:
        annotations[ANN_ARTIFACT] = artifact
    new_spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": selector,
        "template": _new_template(stable, version, artifact),
    }
    for key in ("strategy", "minReadySeconds", "progressDeadlineSeconds", "revisionHistoryLimit"):
        if key in spec:
            new_spec[key] = copy.deepcopy(spec[key])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(meta["name"]),
            "namespace": meta.get("namespace"),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": new_spec,
    }


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def promote_patch(
    stable: Mapping[str, Any], canary: Mapping[str, Any], *, replicas: int
) -> list[dict[str, Any]]:
    """JSON patch (RFC 6902): the stable Deployment takes the canary's template (replaced
    whole, so nothing of the old template lingers), its version and artifact annotations."""
    template = copy.deepcopy((canary.get("spec") or {}).get("template") or {})
    version = ((template.get("metadata") or {}).get("labels") or {}).get(LABEL_VERSION, "")
    c_ann = _meta(canary).get("annotations") or {}
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/spec/replicas", "value": replicas},
    ]
    if not _meta(stable).get("annotations"):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    annotations = {ANN_MODEL_VERSION: version}
    if c_ann.get(ANN_ARTIFACT):
        annotations[ANN_ARTIFACT] = c_ann[ANN_ARTIFACT]
    for key, value in annotations.items():
        ops.append({"op": "add", "path": f"/metadata/annotations/{_pointer(key)}", "value": value})
    if LABEL_VERSION in (_meta(stable).get("labels") or {}):
        ops.append({"op": "replace", "path": f"/metadata/labels/{LABEL_VERSION}", "value": version})
    return ops


def template_version(deployment: Mapping[str, Any]) -> str:
    template = (deployment.get("spec") or {}).get("template") or {}
    return str((_meta(template).get("labels") or {}).get(LABEL_VERSION, ""))


def rolled_out(deployment: Mapping[str, Any]) -> bool:
    """The Deployment controller has finished: every replica updated and available."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    want = spec.get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= _meta(deployment).get("generation", 0)
        and status.get("updatedReplicas", 0) == want
        and status.get("availableReplicas", 0) == want
        and status.get("replicas", 0) == want
    )


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for `weight` percent at the canary: weight ≈ replica ratio.

    Below 100 % both sides keep at least one replica (a 1-replica model runs 1+1 at every
    step); at 100 % the canary runs all `total` and the stable none."""
    total = max(total, 1)
    if weight >= 100:
        return 0, total
    if weight <= 0:
        return total, 0
    total = max(total, 2)
    canary = min(total - 1, max(1, round(total * weight / 100)))
    return total - canary, canary


def actual_weight(stable_replicas: int, canary_replicas: int) -> int:
    """The percentage of replicas (so of traffic, behind one Service) at the canary."""
    total = stable_replicas + canary_replicas
    return round(100 * canary_replicas / total) if total else 0


# --- Gateway API -------------------------------------------------------------------------


def canary_service(stable_service: Mapping[str, Any], version: str) -> dict[str, Any]:
    """A Service for the canary's pods only: the stable Service's ports, its selector plus
    `version=<new>`."""
    meta = _meta(stable_service)
    spec = stable_service.get("spec") or {}
    ports = [
        {
            k: v
            for k, v in p.items()
            if k in ("name", "port", "targetPort", "protocol", "appProtocol")
        }
        for p in spec.get("ports") or []
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": canary_name(meta["name"])[:63].rstrip("-"),
            "namespace": meta.get("namespace"),
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_VERSION: version},
            "annotations": {ANN_CANARY_OF: meta["name"]},
        },
        "spec": {
            "selector": {**(spec.get("selector") or {}), LABEL_VERSION: version},
            "ports": ports,
        },
    }


def httproute_rules(
    route: Mapping[str, Any], *, stable_service: str, canary_service: str, weight: int
) -> list[dict[str, Any]]:
    """The HTTPRoute's `spec.rules` with `weight` percent at `canary_service` in every rule
    that routes to `stable_service` (the canary backend is added beside it; at weight 0 it
    is removed again). Other rules are left as they are."""
    if not 0 <= weight <= 100:
        raise RolloutError(f"weight {weight} is not a percentage")
    for name in (stable_service, canary_service):
        if not _DNS_LABEL.match(name):
            raise RolloutError(f"{name!r} is not a valid Service name for a backendRef")
    rules = copy.deepcopy((route.get("spec") or {}).get("rules") or [])
    touched = False
    for rule in rules:
        refs = rule.get("backendRefs") or []
        stable_refs = [r for r in refs if _is_service(r, stable_service)]
        if not stable_refs:
            continue
        touched = True
        base = stable_refs[0]
        kept = [r for r in refs if not _is_service(r, canary_service)]
        for r in kept:
            if _is_service(r, stable_service):
                r["weight"] = 100 - weight
        if weight > 0:
            canary_ref = {k: v for k, v in base.items() if k not in ("name", "weight", "filters")}
            canary_ref.update({"name": canary_service, "weight": weight})
            kept.append(canary_ref)
        rule["backendRefs"] = kept
    if not touched:
        name = _meta(route).get("name", "?")
        raise RolloutError(
            f"HTTPRoute {name}: no rule has a backendRef to Service {stable_service}"
        )
    return rules


def _is_service(ref: Mapping[str, Any], name: str) -> bool:
    return (
        ref.get("name") == name
        and ref.get("kind", "Service") == "Service"
        and ref.get("group", "") in ("", "core")
    )
