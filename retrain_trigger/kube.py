"""The Kubernetes adapter: retrain Jobs, Deployments and Events, through the `kubernetes` client.

Every call maps the client's errors onto `driftwarden.errors`: `RetryLater` for what may
succeed later (API server unreachable, timeouts, 429, 5xx, conflicts), `GiveUp` for what
cannot (401/403 RBAC, 404, 400/422 invalid object). Creating a Job that already exists is
not an error: `create_job` returns False, because the Job name is the idempotency lock.

Only the configured namespaces are ever touched (the RBAC in docs/retrain-trigger.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from driftwarden.errors import DriftwardenError, ExternalError, GiveUp, RetryLater
from retrain_trigger.decisions import JobView
from retrain_trigger.manifest import (
    ANN_FINISHED_AT,
    ANN_MODEL,
    ANN_OUTCOME,
    LABEL_FINGERPRINT,
    LABEL_MANAGED_BY,
    LABEL_MODEL,
    LABEL_VERSION,
    MANAGED_BY,
)

__all__ = [
    "KubeConfigError",
    "KubeJobs",
    "api_client",
    "failure_reason",
    "finished_annotations",
    "job_view",
]

log = logging.getLogger(__name__)

#: Selects the Jobs this trigger manages (and nothing else in the namespace).
JOB_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_MODEL}"
EVENT_SOURCE = "driftwarden-retrain-trigger"


class KubeConfigError(DriftwardenError):
    """The kubeconfig (or the in-cluster service account) cannot configure a client."""


def api_client(kubeconfig: Path | None = None, *, pool_size: int = 32) -> k8s.ApiClient:
    """A client from a kubeconfig file, or the pod's service account when None."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig is None:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=str(kubeconfig), client_configuration=configuration
            )
    except (k8s_config.ConfigException, OSError) as e:
        where = str(kubeconfig) if kubeconfig else "the in-cluster service account"
        raise KubeConfigError(f"cannot configure the Kubernetes client from {where}: {e}") from e
    configuration.connection_pool_maxsize = pool_size
    configuration.retries = 0  # we decide about retries (RetryLater), not urllib3
    return k8s.ApiClient(configuration)


def _map(e: Exception, what: str) -> ExternalError:
    if isinstance(e, ApiException):
        status = e.status or 0
        reason = (e.reason or "").strip() or "error"
        text = f"{what}: HTTP {status} {reason}"
        if status in (0, 408, 409, 429) or status >= 500:
            return RetryLater(text)
        return GiveUp(text)
    return RetryLater(f"{what}: {type(e).__name__}: {e}")


_TRANSIENT = (urllib3.exceptions.HTTPError, OSError, TimeoutError)
R = TypeVar("R")


def kube_call(what: str, call: Callable[[], R], *, missing_ok: bool = False) -> R | None:
    """One API call with its failures as RetryLater / GiveUp naming `what`; with
    `missing_ok`, a 404 is None (the object does not exist)."""
    try:
        return call()
    except ApiException as e:
        if missing_ok and e.status == 404:
            return None
        raise _map(e, what) from e
    except _TRANSIENT as e:
        raise _map(e, what) from e


def unless_conflict(what: str, call: Callable[[], object]) -> bool:
    """Run a create or a conditional write: True when it was written, False on 409 (the
    object exists already, or moved on: idempotent success / re-read and decide again);
    other failures as RetryLater / GiveUp naming `what`."""
    try:
        call()
    except ApiException as e:
        if e.status == 409:
            return False
        raise _map(e, what) from e
    except _TRANSIENT as e:
        raise _map(e, what) from e
    return True


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def job_view(job: k8s.V1Job) -> JobView:
    """The decision-relevant facts of a Job object."""
    meta = job.metadata
    labels = meta.labels or {}
    annotations = meta.annotations or {}
    outcome = "running"
    finished: float | None = None
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.status == "True" and cond.type in ("Complete", "Failed"):
            outcome = "succeeded" if cond.type == "Complete" else "failed"
            finished = _ts(cond.last_transition_time)
    if outcome != "running" and finished is None:
        finished = _ts(job.status.completion_time) or _ts(meta.creation_timestamp)
    return JobView(
        name=meta.name,
        namespace=meta.namespace,
        model=annotations.get(ANN_MODEL) or labels.get(LABEL_MODEL, ""),
        fingerprint=labels.get(LABEL_FINGERPRINT, ""),
        version=labels.get(LABEL_VERSION, ""),
        started_at=_ts(meta.creation_timestamp) or 0.0,
        finished_at=finished,
        outcome=outcome,  # type: ignore[arg-type]
    )


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def job_view_json(job: dict[str, Any]) -> JobView:
    """`job_view` for a Job as the API's JSON (no client models)."""
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    outcome = "running"
    finished: float | None = None
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            outcome = "succeeded" if cond["type"] == "Complete" else "failed"
            finished = _parse_time(cond.get("lastTransitionTime"))
    created = _parse_time(meta.get("creationTimestamp")) or 0.0
    if outcome != "running" and finished is None:
        finished = _parse_time(status.get("completionTime")) or created
    return JobView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        model=annotations.get(ANN_MODEL) or labels.get(LABEL_MODEL, ""),
        fingerprint=labels.get(LABEL_FINGERPRINT, ""),
        version=labels.get(LABEL_VERSION, ""),
        started_at=created,
        finished_at=finished,
        outcome=outcome,  # type: ignore[arg-type]
    )


def _job_failure(job: k8s.V1Job) -> str:
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type == "Failed" and cond.status == "True":
            return f"{cond.reason or 'Failed'}: {cond.message or ''}".strip(": ")
    return ""


class KubeJobs:
    """Jobs, Deployments and Events in the trigger's namespaces."""

    def __init__(self, api: k8s.ApiClient, namespaces: Sequence[str]) -> None:
        if not namespaces:
            raise ValueError("at least one namespace")
        self.namespaces = tuple(namespaces)
        self._batch = k8s.BatchV1Api(api)
        self._core = k8s.CoreV1Api(api)
        self._apps = k8s.AppsV1Api(api)

    # --- Jobs ----------------------------------------------------------------------------

    def list_jobs_raw(self, namespace: str) -> tuple[list[k8s.V1Job], str]:
        """The trigger's Jobs in one namespace and the list's resourceVersion (to watch from)."""
        try:
            result = self._batch.list_namespaced_job(namespace, label_selector=JOB_SELECTOR)
        except ApiException as e:
            raise _map(e, f"list Jobs in {namespace}") from e
        except _TRANSIENT as e:
            raise _map(e, f"list Jobs in {namespace}") from e
        return list(result.items), result.metadata.resource_version

    def list_jobs(self) -> list[JobView]:
        """Every retrain Job in every configured namespace (the decisions' state). Read as
        plain JSON: the client's model deserialisation costs ~3 ms per Job."""
        out: list[JobView] = []
        for ns in self.namespaces:
            try:
                resp = self._batch.list_namespaced_job(
                    ns, label_selector=JOB_SELECTOR, _preload_content=False
                )
                data = json.loads(resp.data)
            except ApiException as e:
                raise _map(e, f"list Jobs in {ns}") from e
            except _TRANSIENT as e:
                raise _map(e, f"list Jobs in {ns}") from e
            out.extend(job_view_json(j) for j in data.get("items") or [])
        return out

    def create_job(self, manifest: dict[str, Any]) -> bool:
        """Create the Job; False when one of that name already exists (idempotent success)."""
        ns = manifest["metadata"]["namespace"]
        name = manifest["metadata"]["name"]
        return unless_conflict(
            f"create Job {ns}/{name}", lambda: self._batch.create_namespaced_job(ns, manifest)
        )

    def get_job(self, namespace: str, name: str) -> k8s.V1Job | None:
        return kube_call(
            f"get Job {namespace}/{name}",
            lambda: self._batch.read_namespaced_job(name, namespace),
            missing_ok=True,
        )

    def annotate_job(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        body = {"metadata": {"annotations": annotations}}
        try:
            self._batch.patch_namespaced_job(name, namespace, body)
        except ApiException as e:
            raise _map(e, f"annotate Job {namespace}/{name}") from e
        except _TRANSIENT as e:
            raise _map(e, f"annotate Job {namespace}/{name}") from e

    def watch_jobs(
        self,
        namespace: str,
        on_job: Callable[[k8s.V1Job], None],
        stop: threading.Event,
        *,
        timeout_s: int = 60,
        on_listed: Callable[[str, list[k8s.V1Job]], None] | None = None,
    ) -> None:
        """List (every Job once, so a restart misses nothing), then watch from that list's
        resourceVersion until `stop`; re-list whenever the watch expires (410) or breaks."""
        while not stop.is_set():
            try:
                items, rv = self.list_jobs_raw(namespace)
            except ExternalError as e:
                log.warning("cannot list Jobs in %s (%s); retrying", namespace, e)
                stop.wait(2.0)
                continue
            if on_listed is not None:
                on_listed(namespace, items)
            for job in items:
                on_job(job)
            w = k8s_watch.Watch()
            try:
                for event in w.stream(
                    self._batch.list_namespaced_job,
                    namespace,
                    label_selector=JOB_SELECTOR,
                    resource_version=rv,
                    timeout_seconds=timeout_s,
                    _request_timeout=timeout_s + 5,
                ):
                    if stop.is_set():
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        on_job(event["object"])
                    elif event["type"] == "ERROR":
                        break  # 410 Gone or similar: re-list
            except ApiException as e:
                if e.status != 410:
                    log.warning("watch of Jobs in %s failed (%s); re-listing", namespace, e.status)
                    stop.wait(1.0)
            except _TRANSIENT as e:
                log.warning("watch of Jobs in %s broke (%s); re-listing", namespace, e)
                stop.wait(1.0)
            finally:
                w.stop()

    # --- Deployments and Events -------------------------------------------------------------

    def get_deployment(self, namespace: str, name: str) -> k8s.V1Deployment | None:
        return kube_call(
            f"get Deployment {namespace}/{name}",
            lambda: self._apps.read_namespaced_deployment(name, namespace),
            missing_ok=True,
        )

    def emit_event(
        self,
        namespace: str,
        deployment: str,
        *,
        reason: str,
        message: str,
        warning: bool = False,
        key: str,
        uid: str | None = None,
        now: float,
    ) -> bool:
        """A core/v1 Event on the model's Deployment. The Event's name is derived from `key`
        (e.g. the Job and the reason), so re-emitting after a restart is a no-op (False)."""
        digest = hashlib.sha256(f"{key}/{reason}".encode()).hexdigest()[:16]
        when = datetime.fromtimestamp(now, UTC)
        body = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(name=f"{deployment[:200]}.{digest}", namespace=namespace),
            involved_object=k8s.V1ObjectReference(
                api_version="apps/v1",
                kind="Deployment",
                name=deployment,
                namespace=namespace,
                uid=uid,
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            source=k8s.V1EventSource(component=EVENT_SOURCE),
            reporting_component=EVENT_SOURCE,
            reporting_instance=EVENT_SOURCE,
            first_timestamp=when,
            last_timestamp=when,
            count=1,
        )
        return unless_conflict(
            f"create Event on Deployment {namespace}/{deployment}",
            lambda: self._core.create_namespaced_event(namespace, body),
        )

    def events_for(self, namespace: str, deployment: str) -> list[k8s.CoreV1Event]:
        """Events on a Deployment (used by tests and `trigger history`)."""
        try:
            result = self._core.list_namespaced_event(
                namespace,
                field_selector=f"involvedObject.kind=Deployment,involvedObject.name={deployment}",
            )
        except ApiException as e:
            raise _map(e, f"list Events in {namespace}") from e
        except _TRANSIENT as e:
            raise _map(e, f"list Events in {namespace}") from e
        return list(result.items)


def failure_reason(job: k8s.V1Job) -> str:
    """Why a failed Job failed (its Failed condition's reason and message)."""
    return _job_failure(job)


def finished_annotations(outcome: str, finished_at: float) -> dict[str, str]:
    stamp = datetime.fromtimestamp(finished_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {ANN_OUTCOME: outcome, ANN_FINISHED_AT: stamp}
