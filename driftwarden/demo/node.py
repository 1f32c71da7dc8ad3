"""`driftwarden demo --kubeconfig`: a node of a real Kubernetes cluster whose pods run here.

With `--kubeconfig` the retrain trigger and the canary controller use their production
Kubernetes adapters: the model's Deployments, the retraining Job, their ReplicaSets and
pods, the Events and the rollout's annotations are real API objects, made and changed by
the real controllers and scheduler. No image is needed. The demo registers a node of its
own, tainted so that only pods that tolerate it (the demo's) go there, and runs the pods
bound to it as local processes, as a kubelet runs containers (`ProcessRunner`, the same as
the local mode's). It reports their status back — Running and Ready with the pod IP
127.0.0.1, then Succeeded or Failed with the exit code — so the Job controller completes
the Job and the Deployment controller rolls out, scales and deletes pods as on any node.
A pod whose deletion starts is stopped and then removed (what a kubelet confirms).

`ServiceBalancer` is the Service in front of the model's pods: each request goes to one
ready pod at random, so the canary's share of traffic is its share of ready replicas — what
the controller's production `replicas` router sets.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from driftwarden.demo.cluster import (
    ClusterEvent,
    Endpoint,
    Endpoints,
    Pod,
    ProcessRunner,
    RunnerView,
)

__all__ = [
    "NODE_LABEL",
    "DemoNode",
    "ServiceBalancer",
    "demo_node_name",
    "node_manifest",
    "node_status",
    "placement",
    "pod_status",
]

log = logging.getLogger(__name__)

#: The demo node's label (its name) and the key of its taint.
NODE_LABEL = "driftwarden.io/demo-node"
#: How long a Job's container may run when the Job sets no activeDeadlineSeconds.
DEFAULT_JOB_DEADLINE_S = 4 * 3600.0
EVENT_SOURCE_PREFIX = "driftwarden"


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def demo_node_name(host: str | None = None) -> str:
    """`driftwarden-demo-<host>`, as a DNS label."""
    host = re.sub(r"[^a-z0-9-]+", "-", (host or socket.gethostname()).lower()).strip("-")
    return f"driftwarden-demo-{host or 'local'}"[:63].rstrip("-")


def placement(node: str) -> dict[str, Any]:
    """What pins a pod to the demo's node: a nodeSelector and the toleration of its taint."""
    return {
        "nodeSelector": {NODE_LABEL: node},
        "tolerations": [
            {"key": NODE_LABEL, "operator": "Equal", "value": node, "effect": "NoSchedule"}
        ],
    }


def node_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                NODE_LABEL: name,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            },
        },
        # Only pods that tolerate this run here: nothing else scheduled on the cluster can
        # land on a node without a container runtime.
        "spec": {"taints": [{"key": NODE_LABEL, "value": name, "effect": "NoSchedule"}]},
    }


def node_status(name: str, now: float) -> dict[str, Any]:
    """The node's status: Ready (the heartbeat renews `lastHeartbeatTime`), no pressure."""
    ts = _rfc3339(now)
    conditions = [
        ("Ready", "True", "KubeletReady", "driftwarden demo node runs pods as processes"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
        ("PIDPressure", "False", "KubeletHasSufficientPID", ""),
    ]
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    return {
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "reason": r,
                    "message": m,
                    "lastHeartbeatTime": ts,
                    "lastTransitionTime": ts,
                }
                for t, s, r, m in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "driftwarden-demo",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "driftwarden-demo://processes",
                "kernelVersion": "",
                "osImage": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
    }


def pod_status(
    containers: list[dict[str, Any]],
    *,
    started: float,
    ready: bool = True,
    exit_code: int | None = None,
    finished: float | None = None,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    """A pod's status as a kubelet reports it: Running (ready or not) while `exit_code` is
    None, else Succeeded (0) or Failed with the container's termination."""
    start = _rfc3339(started)
    if exit_code is None:
        phase, state = "Running", {"running": {"startedAt": start}}
    else:
        phase = "Succeeded" if exit_code == 0 else "Failed"
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else reason or "Error",
            "startedAt": start,
            "finishedAt": _rfc3339(finished or started),
        }
        if message:
            terminated["message"] = message[:1000]
        state = {"terminated": terminated}
        ready = False
    flag = "True" if ready else "False"
    return {
        "status": {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": start,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": start},
                {"type": "Initialized", "status": "True", "lastTransitionTime": start},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": start},
                {"type": "Ready", "status": flag, "lastTransitionTime": start},
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "started": exit_code is None,
                    "restartCount": 0,
                    "state": state,
                }
                for c in containers
            ],
        }
    }


class ServiceBalancer(Endpoints):
    """The Service in front of the model's pods (keyed by pod name): each request to a
    ready pod at random."""

    def __init__(self, stable: str, seed: int = 0) -> None:
        super().__init__(seed)
        self.stable = stable

    def canary_weight(self) -> int:
        """Percent of the ready pods that are not the stable Deployment's."""
        eps = list(self.endpoints().values())
        canary = sum(e.deployment != self.stable for e in eps)
        return round(100 * canary / len(eps)) if eps else 0

    def pick(self) -> Endpoint | None:
        with self._lock:
            eps = list(self._endpoints.values())
        return self._rng.choice(eps) if eps else None


class DemoNode(RunnerView):
    """Registers the node, keeps it Ready, runs the pods bound to it and reports their
    status; `events` follows driftwarden's Events in `namespace`. `close()` stops every
    process and removes the node."""

    def __init__(
        self,
        api: k8s.ApiClient,
        namespace: str,
        runner: ProcessRunner,
        service: ServiceBalancer,
        *,
        name: str | None = None,
        heartbeat_s: float = 10.0,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.runner = runner
        self.service = service
        self.name = name or demo_node_name()
        self.heartbeat_s = heartbeat_s
        self.say = say
        self.events: list[ClusterEvent] = []
        self._core = k8s.CoreV1Api(api)
        self._batch = k8s.BatchV1Api(api)
        self._lock = threading.Lock()
        self._pods: dict[str, Pod | str | None] = {}  # uid -> pod, Job name, or None (starting)
        self._started: set[str] = set()  # every pod uid ever started: none starts twice
        self._seen_events: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = 90.0) -> None:
        """Register the node and wait until the scheduler may use it."""
        with contextlib.suppress(ApiException):  # a node left by a demo that was killed
            self._core.delete_node(self.name, grace_period_seconds=0)
        self._wait(lambda: self._read_node() is None, 30, f"old node {self.name} gone")
        self._core.create_node(node_manifest(self.name))
        self._core.patch_node_status(self.name, node_status(self.name, time.time()))
        for target in (self._heartbeat, self._watch_pods, self._follow_events):
            t = threading.Thread(target=target, name=f"node-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)

        def schedulable() -> bool:
            node = self._read_node()
            taints = (node.spec.taints or []) if node is not None else []
            return node is not None and all(t.key != "node.kubernetes.io/not-ready" for t in taints)

        self._wait(schedulable, timeout_s, f"node {self.name} schedulable")
        self.say(f"node {self.name} ready: its pods run on this machine")

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=20)
        with self._lock:
            pods = [p for p in self._pods.values() if isinstance(p, Pod)]
            self._pods.clear()
        self.runner.stop_jobs()
        for pod in pods:
            self.service.set_endpoint(pod.name, None)
            self.runner.unpublish(pod)
            pod.stop()
        with contextlib.suppress(Exception):
            self._core.delete_node(self.name, grace_period_seconds=0)

    def _read_node(self) -> k8s.V1Node | None:
        try:
            return self._core.read_node(self.name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def _wait(self, ok: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ok():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout_s:.0f}s")
            time.sleep(0.5)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self._core.patch_node_status(self.name, node_status(self.name, time.time()))
            except Exception as e:  # the next beat retries; the node controller allows ~40 s
                log.warning("node %s heartbeat failed: %s", self.name, e)

    # --- pods --------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        selector = f"spec.nodeName={self.name}"
        while not self._stop.is_set():
            try:
                stream = k8s_watch.Watch().stream(
                    self._core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    timeout_seconds=5,
                )
                for event in stream:
                    if self._stop.is_set():
                        break
                    self._on_pod(event["type"], event["object"])
            except Exception as e:
                if not self._stop.is_set():
                    log.warning("watching the pods of node %s: %s", self.name, e)
                    time.sleep(1)

    def _on_pod(self, kind: str, pod: k8s.V1Pod) -> None:
        uid = pod.metadata.uid
        if kind == "DELETED":
            self._stop_pod(uid)
            return
        if pod.metadata.deletion_timestamp is not None:
            self._stop_pod(uid)
            with contextlib.suppress(ApiException):  # what the kubelet confirms once stopped
                self._core.delete_namespaced_pod(
                    pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
                )
            return
        phase = pod.status.phase if pod.status is not None else None
        with self._lock:
            if uid in self._started or phase in ("Succeeded", "Failed") or self._stop.is_set():
                return
            self._started.add(uid)
            self._pods[uid] = None
        owner = next(iter(pod.metadata.owner_references or []), None)
        target = self._run_job_pod if owner is not None and owner.kind == "Job" else self._run_pod
        t = threading.Thread(target=target, args=(pod,), name=f"pod-{pod.metadata.name}")
        t.daemon = True
        t.start()
        self._threads.append(t)

    def _stop_pod(self, uid: str) -> None:
        with self._lock:
            pod = self._pods.pop(uid, None)
        if isinstance(pod, str):
            self.runner.stop_job(pod)
        elif isinstance(pod, Pod):
            self.service.set_endpoint(pod.name, None)
            self.runner.unpublish(pod)
            pod.stop()
            self.say(f"pod {pod.name} stopped")

    def _report(self, pod: k8s.V1Pod, status: dict[str, Any]) -> None:
        try:
            self._core.patch_namespaced_pod_status(
                pod.metadata.name, pod.metadata.namespace, status
            )
        except ApiException as e:
            if e.status != 404:  # a pod deleted meanwhile has nothing left to report to
                log.warning("pod %s: status not reported: %s", pod.metadata.name, e.reason)

    def _spec(self, pod: k8s.V1Pod) -> dict[str, Any]:
        """The pod's spec in the API's JSON form (what `ProcessRunner` reads)."""
        return dict(self.api.sanitize_for_serialization(pod.spec))

    def _run_pod(self, pod: k8s.V1Pod) -> None:
        meta = pod.metadata
        owner = next(iter(meta.owner_references or []), None)
        # a ReplicaSet is named <deployment>-<pod-template-hash>
        deployment = (
            owner.name.rsplit("-", 1)[0]
            if owner is not None and owner.kind == "ReplicaSet"
            else meta.name
        )
        labels = dict(meta.labels or {})
        spec = self._spec(pod)
        containers = list(spec.get("containers") or [])
        template = {
            "metadata": {"labels": labels, "annotations": dict(meta.annotations or {})},
            "spec": spec,
        }
        started_at = time.time()
        started = self.runner.start_pod(meta.name, deployment, labels.get("version", "?"), template)
        if started is None:
            self._report(
                pod,
                pod_status(
                    containers,
                    started=started_at,
                    exit_code=1,
                    finished=time.time(),
                    reason="StartError",
                    message=self.failures[-1] if self.failures else "",
                ),
            )
            return
        with self._lock:
            if meta.uid not in self._pods or self._stop.is_set():
                started.stop()  # deleted while starting
                return
            started.ready = True
            self._pods[meta.uid] = started
        self._report(pod, pod_status(containers, started=started_at))
        self.runner.publish(started)
        self.service.set_endpoint(meta.name, self.runner.endpoint(started))
        self.say(f"pod {meta.name} ready: collector on 127.0.0.1:{started.ports['PROXY_PORT']}")

    def _run_job_pod(self, pod: k8s.V1Pod) -> None:
        meta = pod.metadata
        job_name = next(o.name for o in meta.owner_references if o.kind == "Job")
        try:
            job = self._batch.read_namespaced_job(job_name, meta.namespace)
        except ApiException as e:
            log.warning("pod %s: Job %s not readable: %s", meta.name, job_name, e.reason)
            return
        with self._lock:
            if meta.uid not in self._pods:
                return
            self._pods[meta.uid] = job_name
        started = time.time()
        spec = self._spec(pod)
        containers = list(spec.get("containers") or [])
        self._report(pod, pod_status(containers, started=started))
        job_meta = {
            "name": job_name,
            "labels": dict(job.metadata.labels or {}),
            "annotations": dict(job.metadata.annotations or {}),
        }
        deadline = float(job.spec.active_deadline_seconds or DEFAULT_JOB_DEADLINE_S)
        code, reason, message = self.runner.run_job(job_name, job_meta, spec, deadline)
        with self._lock:
            still_running = self._pods.pop(meta.uid, None) is not None
        if still_running:
            self._report(
                pod,
                pod_status(
                    containers,
                    started=started,
                    exit_code=code,
                    finished=time.time(),
                    reason=reason,
                    message=message,
                ),
            )

    # --- Events ------------------------------------------------------------------------

    def _follow_events(self) -> None:
        while not self._stop.wait(1.0):
            try:
                items = self._core.list_namespaced_event(self.namespace).items
            except Exception as e:
                log.warning("listing Events in %s: %s", self.namespace, e)
                continue
            fresh = []
            for e in items:
                source = e.reporting_component or (e.source.component if e.source else "") or ""
                if (
                    not source.startswith(EVENT_SOURCE_PREFIX)
                    or e.metadata.uid in self._seen_events
                ):
                    continue
                self._seen_events.add(e.metadata.uid)
                when = e.first_timestamp or e.event_time or e.metadata.creation_timestamp
                obj = e.involved_object
                fresh.append(
                    ClusterEvent(
                        when.timestamp() if when else time.time(),
                        e.reason or "",
                        e.message or "",
                        e.type == "Warning",
                        f"{obj.kind}/{obj.name}",
                    )
                )
            self.events.extend(sorted(fresh, key=lambda x: x.ts))
