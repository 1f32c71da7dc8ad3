"""Pods that should carry the sidecar but were admitted without it (injector down or slow,
`failurePolicy: Ignore`) are made visible: a gauge per namespace and a Warning Event on
each pod. Nothing is restarted: a pod's containers cannot be changed after creation, and
deleting pods is the owner's call (docs/injector.md says how: `kubectl rollout restart`).

`missing_sidecar` is pure (it asks the patch builder what it would do with the pod now);
`Reconciler` lists pods and namespaces and writes Events through the Kubernetes client.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from collector.injector.config import InjectorConfig
from collector.injector.metrics import InjectorStats
from collector.injector.patch import INJECT, decide
from collector.injector.webhook_config import NAMESPACE_LABEL, NAMESPACE_LABEL_VALUE
from driftwarden.errors import GiveUp, RetryLater

_log = logging.getLogger("collector.injector.reconciler")

EVENT_REASON = "DriftwardenSidecarMissing"
COMPONENT = "driftwarden-injector"


@dataclass(frozen=True, slots=True)
class MissingPod:
    namespace: str
    name: str
    uid: str
    detail: str


def missing_sidecar(
    pods: Iterable[Mapping[str, Any]],
    opted_in_namespaces: set[str],
    config: InjectorConfig,
    exclude_namespaces: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[MissingPod]:
    """Running pods the injector would inject if they were created now."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        ns = meta.get("namespace") or ""
        if ns in exclude_namespaces:
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if (meta.get("labels") or {}).get(INJECT) == "false":  # the objectSelector's opt-out
            continue
        request = {
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": ns,
            "object": pod,
        }
        d = decide(request, config, namespace_opt_in=ns in opted_in_namespaces)
        if d.outcome == "injected":
            out.append(MissingPod(ns, meta.get("name") or "", meta.get("uid") or "", d.detail))
    return out


def event_body(pod: MissingPod, now: float, instance: str) -> dict[str, Any]:
    """A core/v1 Warning Event on the pod; its name is fixed per pod, so it is written once."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod.name}.driftwarden-sidecar-missing", "namespace": pod.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
        },
        "reason": EVENT_REASON,
        "message": (
            "pod opted in to driftwarden injection but runs without the collector sidecar "
            "(admitted while the injector was unavailable); restart its workload, e.g. "
            "kubectl rollout restart deployment/<name>"
        ),
        "type": "Warning",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class Reconciler:
    """Every `interval_s`: list pods and opted-in namespaces, update the gauge, post Events."""

    def __init__(
        self,
        api_client: Any,
        config: InjectorConfig,
        stats: InjectorStats,
        *,
        interval_s: float = 60.0,
        exclude_namespaces: Iterable[str] = ("kube-system",),
        clock: Callable[[], float] = time.time,
        instance: str | None = None,
    ) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._api_exception = client.ApiException
        self.config = config
        self.stats = stats
        self.interval_s = interval_s
        self.exclude = set(exclude_namespaces)
        self._clock = clock
        self._instance = instance or socket.gethostname()
        self.events_written: set[str] = set()

    def _call(
        self, fn: Callable[..., Any], *args: Any, accept: tuple[int, ...] = (), **kwargs: Any
    ) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._api_exception as e:
            if e.status in accept:
                return None
            if e.status in (401, 403, 404, 422):
                raise GiveUp(f"Kubernetes API: {e.status} {e.reason}") from e
            raise RetryLater(f"Kubernetes API: {e.status} {e.reason}") from e
        except OSError as e:  # connection refused, timeouts (urllib3 errors subclass it)
            raise RetryLater(f"Kubernetes API unreachable: {e}") from e

    def _list_pods(self) -> list[dict[str, Any]]:
        import json

        pods: list[dict[str, Any]] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"limit": 500, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            raw = self._call(self._core.list_pod_for_all_namespaces, **kwargs)
            page = json.loads(raw.data)
            pods.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return pods

    def run_once(self) -> list[MissingPod]:
        ns_list = self._call(
            self._core.list_namespace,
            label_selector=f"{NAMESPACE_LABEL}={NAMESPACE_LABEL_VALUE}",
        )
        opted = {n.metadata.name for n in ns_list.items}
        missing = missing_sidecar(self._list_pods(), opted, self.config, self.exclude)
        self.stats.set_missing(Counter(p.namespace for p in missing))
        now = self._clock()
        for pod in missing:
            if pod.uid in self.events_written:
                continue
            # 409: the Event exists (written by an earlier run or another replica).
            self._call(
                self._core.create_namespaced_event,
                pod.namespace,
                event_body(pod, now, self._instance),
                accept=(409,),
            )
            self.events_written.add(pod.uid)
            _log.warning(
                "pod %s/%s opted in but runs without the sidecar: restart its workload",
                pod.namespace,
                pod.name,
            )
        return missing

    def run(self, stats: InjectorStats, stopping: threading.Event) -> None:
        """Loop until `stopping` is set (the signature `run_injector` expects)."""
        del stats  # the reconciler was built with it
        while not stopping.is_set():
            try:
                self.run_once()
            except (RetryLater, GiveUp) as e:
                _log.warning("reconcile failed (%s): %s", type(e).__name__, e)
            stopping.wait(self.interval_s)
