"""How traffic reaches the canary: a tiny router interface and a factory that rejects unknown kinds.

- `replicas` (default; any cluster): the canary and the stable Deployment sit behind the
  model's existing Service, so the share of traffic is the share of ready replicas; a step
  scales the two Deployments (`manifests.replica_split`).
- `gateway-api`: the policy's HTTPRoute sends `weight` percent to a canary Service (created
  beside the stable one, selecting `version=<new>`) and the rest to the stable Service.
- `none`: analysis only; a person moves traffic (the canary runs one replica).

Every method is idempotent: the controller calls `set_weight` again after a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from driftwarden.errors import DriftwardenError, GiveUp
from retrain_trigger.canary import manifests as mf

__all__ = [
    "ROUTER_KINDS",
    "GatewayApiRouter",
    "NoneRouter",
    "ReplicasRouter",
    "Router",
    "RouterError",
    "Target",
    "make_router",
]

log = logging.getLogger(__name__)


class RouterError(DriftwardenError):
    """An unknown router kind, or a router without what it needs (e.g. no HTTPRoute)."""


@dataclass(frozen=True)
class Target:
    """The two Deployments of one rollout."""

    namespace: str
    stable: str  # the stable Deployment (and, for gateway-api, its Service's default name)
    canary: str
    total_replicas: int  # the stable's replicas before the rollout
    version: str
    stable_version: str
    http_route: str | None = None
    service: str | None = None  # the stable Service (gateway-api); default: the Deployment's name


class Kube(Protocol):
    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None: ...
    def get_service(self, namespace: str, name: str) -> dict | None: ...
    def create_service(self, manifest: dict) -> bool: ...
    def delete_service(self, namespace: str, name: str) -> bool: ...
    def get_httproute(self, namespace: str, name: str) -> dict | None: ...
    def patch_httproute_rules(
        self, namespace: str, name: str, rules: list[dict], resource_version: str
    ) -> None: ...


class Router(Protocol):
    kind: str

    def canary_replicas(self, target: Target, weight: int) -> int:
        """Replicas the canary Deployment is created with."""
        ...

    def set_weight(self, target: Target, weight: int) -> int:
        """Send `weight` percent of traffic to the canary; returns the share actually set."""
        ...

    def finish(self, target: Target, promoted: bool) -> None:
        """After promotion (stable runs the new version) or rollback: all traffic to the
        stable Deployment, router objects of the canary removed."""
        ...

    def describe(self, target: Target, weight: int) -> str:
        """One line for `--dry-run`: what `set_weight` would do."""
        ...


class ReplicasRouter:
    kind = "replicas"

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def canary_replicas(self, target: Target, weight: int) -> int:
        return mf.replica_split(target.total_replicas, weight)[1]

    def set_weight(self, target: Target, weight: int) -> int:
        stable, canary = mf.replica_split(target.total_replicas, weight)
        # Scale the canary up first, the stable down second: capacity never dips.
        self.kube.scale_deployment(target.namespace, target.canary, canary)
        self.kube.scale_deployment(target.namespace, target.stable, stable)
        return mf.actual_weight(stable, canary)

    def finish(self, target: Target, promoted: bool) -> None:
        self.kube.scale_deployment(target.namespace, target.stable, target.total_replicas)

    def describe(self, target: Target, weight: int) -> str:
        stable, canary = mf.replica_split(target.total_replicas, weight)
        return (
            f"scale {target.canary} to {canary} and {target.stable} to {stable} replicas"
            f" (≈{mf.actual_weight(stable, canary)}% canary)"
        )


class GatewayApiRouter:
    kind = "gateway-api"

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def _route(self, target: Target) -> str:
        if not target.http_route:
            raise RouterError("router gateway-api needs canary.http_route in the policy")
        return target.http_route

    def _services(self, target: Target) -> tuple[str, str]:
        stable = target.service or target.stable
        return stable, mf.canary_name(stable)[:63].rstrip("-")

    def canary_replicas(self, target: Target, weight: int) -> int:
        # The canary may take all traffic at the last step: give it the stable's capacity.
        return max(1, target.total_replicas)

    def _ensure_canary_service(self, target: Target) -> str:
        stable_svc, canary_svc = self._services(target)
        if self.kube.get_service(target.namespace, canary_svc) is None:
            svc = self.kube.get_service(target.namespace, stable_svc)
            if svc is None:
                raise GiveUp(f"Service {target.namespace}/{stable_svc} not found")
            self.kube.create_service(mf.canary_service(svc, target.version))
        return canary_svc

    def _weights(self, target: Target, weight: int) -> None:
        name = self._route(target)
        route = self.kube.get_httproute(target.namespace, name)
        if route is None:
            raise GiveUp(f"HTTPRoute {target.namespace}/{name} not found")
        stable_svc, canary_svc = self._services(target)
        rules = mf.httproute_rules(
            route, stable_service=stable_svc, canary_service=canary_svc, weight=weight
        )
        if rules != (route.get("spec") or {}).get("rules"):
            self.kube.patch_httproute_rules(
                target.namespace, name, rules, route["metadata"]["resourceVersion"]
            )

    def set_weight(self, target: Target, weight: int) -> int:
        self._ensure_canary_service(target)
        self._weights(target, weight)
        return weight

    def finish(self, target: Target, promoted: bool) -> None:
        self._weights(target, 0)
        self.kube.delete_service(target.namespace, self._services(target)[1])

    def describe(self, target: Target, weight: int) -> str:
        stable_svc, canary_svc = self._services(target)
        return (
            f"HTTPRoute {target.http_route}: {100 - weight}% to Service {stable_svc},"
            f" {weight}% to Service {canary_svc}"
        )


class NoneRouter:
    kind = "none"

    def canary_replicas(self, target: Target, weight: int) -> int:
        return 1

    def set_weight(self, target: Target, weight: int) -> int:
        log.info(
            "router none: move %d%% of %s's traffic to %s by hand",
            weight,
            target.stable,
            target.canary,
        )
        return weight

    def finish(self, target: Target, promoted: bool) -> None:
        return None

    def describe(self, target: Target, weight: int) -> str:
        return f"no traffic change (router none): a person sends {weight}% to {target.canary}"


ROUTER_KINDS = ("replicas", "gateway-api", "none")


def make_router(kind: str, kube: Kube) -> Router:
    """The router of `kind`; an unknown kind is a RouterError naming the known ones."""
    if kind == "replicas":
        return ReplicasRouter(kube)
    if kind == "gateway-api":
        return GatewayApiRouter(kube)
    if kind == "none":
        return NoneRouter()
    raise RouterError(f"unknown router kind {kind!r}; known: {', '.join(ROUTER_KINDS)}")
