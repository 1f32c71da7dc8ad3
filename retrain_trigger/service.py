"""The trigger itself: notification → decisions → Jobs; finished Jobs → lineage, Events, metrics.

`Trigger.handle` is called by the HTTP receiver for each notification. It reads the retrain
Jobs from the API server, runs the pure decision table, and creates the Jobs it decided to
launch — under one process-wide lock, so concurrent deliveries see each other's Jobs, and with
deterministic Job names, so a second replica or a restarted process cannot create a duplicate
(the API server answers AlreadyExists). `Trigger.on_job` is called by the Job watcher for
every Job it lists or sees change, and records each finished Job exactly once per process
(the `driftwarden.io/outcome` annotation marks it recorded across restarts).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from driftwarden import metrics_catalogue as mc
from driftwarden.errors import ExternalError
from driftwarden.schema import LineageEvent
from retrain_trigger.decisions import AlertDecision, Decision, JobView, Launch, decide, mark_exists
from retrain_trigger.kube import failure_reason, finished_annotations, job_view
from retrain_trigger.lineage import as_annotation_entry, step
from retrain_trigger.manifest import ANN_ARTIFACT, ANN_LINEAGE, ANN_OUTCOME, build_job, new_version
from retrain_trigger.policy import RetrainPolicy
from retrain_trigger.webhook import Notification

__all__ = ["JobStore", "LineageSink", "Trigger", "TriggerMetrics"]

log = logging.getLogger(__name__)

#: Deployment annotation naming the artifact it serves (written by the canary controller).
DEPLOYMENT_ARTIFACT = "driftwarden.io/artifact"


class JobStore(Protocol):
    def list_jobs(self) -> list[JobView]: ...
    def create_job(self, manifest: dict[str, Any]) -> bool: ...
    def get_deployment(self, namespace: str, name: str) -> Any: ...
    def annotate_job(self, namespace: str, name: str, annotations: dict[str, str]) -> None: ...
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
    ) -> bool: ...


class LineageSink(Protocol):
    def append(self, event: LineageEvent) -> None: ...


def _counter(registry: CollectorRegistry, metric: mc.MetricDef) -> Counter:
    return Counter(metric.name, metric.help, list(metric.labels), registry=registry)


class TriggerMetrics:
    """The trigger's metrics in `registry` (a fresh one per test)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        running: Callable[[], Mapping[str, int]],
        models: Iterable[str] = (),
    ) -> None:
        self.alerts = _counter(registry, mc.ALERTS_RECEIVED_TOTAL)
        self.decisions = _counter(registry, mc.RETRAIN_DECISIONS_TOTAL)
        self.jobs = _counter(registry, mc.RETRAIN_JOBS_TOTAL)
        registry.register(_RunningCollector(running))
        # Series that alerts and dashboards take `increase()` of exist from start-up at 0:
        # a counter first seen at 1 reads as no increase, so the first failed Job would
        # never fire DriftwardenRetrainFailed.
        for model in models:
            self.decisions.labels(model, "launched")
            for outcome in ("succeeded", "failed"):
                self.jobs.labels(model, outcome)


class _RunningCollector(Collector):
    """`driftwarden_retrain_jobs_running{model}`, read from the watcher's view at scrape time."""

    def __init__(self, running: Callable[[], Mapping[str, int]]) -> None:
        self._running = running

    def collect(self) -> Iterator[GaugeMetricFamily]:
        m = mc.RETRAIN_JOBS_RUNNING
        family = GaugeMetricFamily(m.name, m.help, labels=list(m.labels))
        for model, n in sorted(self._running().items()):
            family.add_metric([model], n)
        yield family


class Trigger:
    """Decides on notifications and records finished Jobs. Thread-safe."""

    def __init__(
        self,
        policies: Mapping[str, RetrainPolicy],
        store: JobStore,
        lineage: LineageSink,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        max_in_flight: int = 4,
        emit_events: bool = True,
        job_env: Mapping[str, str] | None = None,
    ) -> None:
        self.policies = dict(policies)
        self.job_env = dict(job_env or {})
        self.store = store
        self.lineage = lineage
        self.clock = clock
        self.max_in_flight = max_in_flight
        self.emit_events = emit_events
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], JobView] = {}  # the watcher's view, for the gauge
        self._jobs_lock = threading.Lock()
        self._recorded: set[tuple[str, str]] = set()
        self.metrics = TriggerMetrics(registry, self.running_by_model, self.policies)

    # --- notifications ---------------------------------------------------------------------

    def handle(self, notification: Notification) -> list[AlertDecision]:
        """Decide every alert, create the Jobs to launch, record it all. Raises RetryLater /
        GiveUp when the API server cannot be read or refuses a Job (nothing is recorded then)."""
        for alert in notification.alerts:
            self.metrics.alerts.labels(alert.alertname, alert.status).inc()
        started: list[tuple[Launch, dict[str, Any], str | None]] = []
        with self._lock:
            now = self.clock()
            jobs = self.store.list_jobs()
            decisions, launches = decide(notification, self.policies, jobs, now, self.max_in_flight)
            existed: set[str] = set()
            for launch in launches:
                manifest, uid = self._manifest(launch, decisions, now)
                if self.store.create_job(manifest):
                    started.append((launch, manifest, uid))
                else:
                    existed.add(launch.job)
        decisions = [
            mark_exists(d, d.job) if d.decision is Decision.LAUNCHED and d.job in existed else d
            for d in decisions
        ]
        self._record(decisions, now)
        for launch, manifest, uid in started:
            self._record_start(launch, manifest, uid, now)
        return decisions

    def _manifest(
        self, launch: Launch, decisions: list[AlertDecision], now: float
    ) -> tuple[dict[str, Any], str | None]:
        policy, request = launch.policy, launch.request
        current_artifact, current_version, uid = "", "", None
        try:
            deployment = self.store.get_deployment(policy.namespace, policy.deployment_name)
        except ExternalError as e:  # the Deployment only adds context to the Job
            log.warning(
                "cannot read Deployment %s/%s: %s", policy.namespace, policy.deployment_name, e
            )
            deployment = None
        if deployment is not None:
            meta = deployment.metadata
            uid = meta.uid
            current_artifact = (meta.annotations or {}).get(DEPLOYMENT_ARTIFACT, "")
            current_version = (meta.labels or {}).get("version", "")
        version = new_version(request.started_at, request.fingerprint, launch.attempt)
        ids = {a.identity() for a in request.alerts}
        mirrored = [
            as_annotation_entry(e)
            for d in decisions
            if d.fingerprint in ids and d.model == request.model
            for e in self._alert_steps(d, now)
        ]
        mirrored.append(
            {"ts": round(now, 3), "step": "job_started", "ref": launch.job, "version": version}
        )
        manifest = build_job(
            policy,
            name=launch.job,
            fingerprint=request.fingerprint,
            version=version,
            attempt=launch.attempt,
            alert_labels=request.labels(),
            alertnames=sorted({a.alertname for a in request.alerts}),
            group_key=request.group_key,
            alert_started_at=request.started_at,
            now=now,
            current_artifact=current_artifact,
            lineage=mirrored,
            job_env=self.job_env,
        )
        manifest["metadata"]["annotations"]["driftwarden.io/from-version"] = current_version
        return manifest, uid

    @staticmethod
    def _alert_steps(d: AlertDecision, now: float) -> list[LineageEvent]:
        assert d.model is not None
        return [
            step(d.model, "alert", d.fingerprint, now, alertname=d.alertname, status=d.status),
            step(
                d.model,
                "decision",
                d.fingerprint,
                now,
                decision=d.decision.value,
                reason=d.reason,
                job=d.job,
                episode=d.episode,
            ),
        ]

    def _record(self, decisions: list[AlertDecision], now: float) -> None:
        for d in decisions:
            self.metrics.decisions.labels(d.model or "", d.decision.value).inc()
            log.info(
                "alert %s (%s, model %s): %s - %s",
                d.alertname,
                d.status,
                d.model or "-",
                d.decision.value,
                d.reason,
            )
            if d.model:
                for event in self._alert_steps(d, now):
                    self._append(event)

    def _record_start(
        self, launch: Launch, manifest: dict[str, Any], uid: str | None, now: float
    ) -> None:
        policy = launch.policy
        labels = manifest["metadata"]["labels"]
        artifact = manifest["metadata"]["annotations"][ANN_ARTIFACT]
        version = labels["driftwarden.io/version"]
        self._append(
            step(
                policy.model,
                "job_started",
                launch.job,
                now,
                namespace=policy.namespace,
                version=version,
                artifact=artifact,
                episode=launch.request.fingerprint,
            )
        )
        with self._jobs_lock:
            self._jobs[(policy.namespace, launch.job)] = JobView(
                launch.job,
                policy.namespace,
                policy.model,
                launch.request.fingerprint,
                version,
                now,
                None,
                "running",
            )
        self._event(
            policy,
            reason="RetrainLaunched",
            message=f"Job {launch.job} retrains {policy.model} as version {version}"
            f" (alerts: {', '.join(sorted({a.alertname for a in launch.request.alerts}))})",
            key=f"{policy.namespace}/{launch.job}",
            uid=uid,
            now=now,
        )

    # --- finished Jobs -------------------------------------------------------------------

    def on_job(self, job: Any) -> None:
        """Called by the watcher for every listed/added/modified Job."""
        view = job_view(job)
        key = (view.namespace, view.name)
        with self._jobs_lock:
            self._jobs[key] = view
        annotations = job.metadata.annotations or {}
        if view.running or key in self._recorded or ANN_OUTCOME in annotations:
            return
        self._record_finish(job, view, annotations)
        self._recorded.add(key)

    def forget_missing(self, namespace: str, present: list[Any]) -> None:
        """After a re-list: drop Jobs that no longer exist (deleted by their TTL)."""
        names = {j.metadata.name for j in present}
        with self._jobs_lock:
            for key in [k for k in self._jobs if k[0] == namespace and k[1] not in names]:
                del self._jobs[key]

    def _record_finish(self, job: Any, view: JobView, annotations: Mapping[str, str]) -> None:
        now = self.clock()
        finished_at = view.finished_at or now
        policy = self.policies.get(view.model)
        artifact = annotations.get(ANN_ARTIFACT, "")
        detail: dict[str, Any] = {
            "outcome": view.outcome,
            "version": view.version,
            "duration_s": round(max(0.0, finished_at - view.started_at), 3),
        }
        if view.outcome == "failed":
            detail["reason"] = failure_reason(job)
        events = [step(view.model, "job_finished", view.name, finished_at, **detail)]
        if view.outcome == "succeeded":
            events.append(
                step(
                    view.model,
                    "artifact",
                    view.version,
                    finished_at,
                    artifact=artifact,
                    job=view.name,
                )
            )
        for e in events:
            self._append(e)
        self.metrics.jobs.labels(view.model, view.outcome).inc()
        log.info("Job %s/%s %s", view.namespace, view.name, view.outcome)
        if policy is not None:
            self._event(
                policy,
                reason="RetrainSucceeded" if view.outcome == "succeeded" else "RetrainFailed",
                message=f"Job {view.name} {view.outcome}"
                + (f": {detail['reason']}" if detail.get("reason") else f"; artifact {artifact}"),
                warning=view.outcome == "failed",
                key=f"{view.namespace}/{view.name}",
                uid=None,
                now=now,
            )
        try:
            mirrored = json.loads(annotations.get(ANN_LINEAGE, "[]"))
        except ValueError:
            mirrored = []
        mirrored += [as_annotation_entry(e) for e in events]
        patch = finished_annotations(view.outcome, finished_at)
        patch[ANN_LINEAGE] = json.dumps(mirrored, sort_keys=True, separators=(",", ":"))
        try:
            self.store.annotate_job(view.namespace, view.name, patch)
        except ExternalError as e:  # recorded anyway; a restart may record it again
            log.warning("cannot annotate Job %s/%s: %s", view.namespace, view.name, e)

    # --- helpers -----------------------------------------------------------------------

    def running_by_model(self) -> dict[str, int]:
        with self._jobs_lock:
            tally = Tally(v.model for v in self._jobs.values() if v.running)
        for model in self.policies:
            tally.setdefault(model, 0)
        return dict(tally)

    def _append(self, event: LineageEvent) -> None:
        try:
            self.lineage.append(event)
        except Exception as e:
            log.error("cannot queue lineage step %s for %s: %s", event.step, event.model, e)

    def _event(self, policy: RetrainPolicy, **kwargs: Any) -> None:
        if not self.emit_events:
            return
        try:
            self.store.emit_event(policy.namespace, policy.deployment_name, **kwargs)
        except ExternalError as e:  # an Event is informational
            log.warning(
                "cannot emit Event on %s/%s: %s", policy.namespace, policy.deployment_name, e
            )
