"""The canary controller: a reconcile loop over the state stored on the stable Deployment.

`Controller.reconcile(model)` is one pass for one model. It reads the stable Deployment,
decodes the rollout from its annotations (`machine.from_annotations`), converges the cluster
to that state (the canary Deployment exists, the router's weight is set, …), runs the
analysis when one is due, and writes the next state back **before** acting on it. Every
action is idempotent (deterministic names, create-or-409, scale-to-N, delete-or-404), so a
controller killed at any point resumes exactly where it was on its next pass: the state it
reads is the last one it wrote, and redoing that state's actions changes nothing.

A rollout starts when the model's newest succeeded retrain Job (labelled by the trigger with
`driftwarden.io/model` and `driftwarden.io/version`) names a version that is neither the
stable's nor the last rollout's: the Job's success is the trigger's output, and the
Deployment's annotations make the start idempotent.

Events (deterministic names: re-emitting after a restart is a no-op), lineage steps
`rollout_step` / `rollout_finished`, and the metrics `driftwarden_canary_weight`,
`driftwarden_rollouts_total` and `driftwarden_canary_check` follow each written transition.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from driftwarden import metrics_catalogue as mc
from driftwarden.errors import DriftwardenError, ExternalError, RetryLater
from driftwarden.schema import LineageEvent
from retrain_trigger.canary import machine as sm
from retrain_trigger.canary import manifests as mf
from retrain_trigger.canary.machine import CheckResult, Phase, RolloutState, Transition
from retrain_trigger.canary.queries import QueryContext, build_queries
from retrain_trigger.canary.routers import Router, Target, make_router
from retrain_trigger.kube import job_view
from retrain_trigger.lineage import step
from retrain_trigger.manifest import ANN_ARTIFACT
from retrain_trigger.policy import RetrainPolicy

__all__ = ["Controller", "ControllerMetrics", "plan_lines"]

log = logging.getLogger(__name__)

#: Tries of the guarded state write when the Deployment's resourceVersion moved meanwhile.
WRITE_ATTEMPTS = 5


class Kube(Protocol):
    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_deployment(self, manifest: dict[str, Any]) -> bool: ...
    def patch_deployment(self, namespace: str, name: str, patch: Any) -> None: ...
    def annotate_deployment(
        self, namespace: str, name: str, annotations: dict[str, str], resource_version: str
    ) -> bool: ...
    def delete_deployment(self, namespace: str, name: str) -> bool: ...
    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None: ...
    def emit_event(self, namespace: str, deployment: str, **kwargs: Any) -> bool: ...
    def list_jobs_raw(self, namespace: str) -> list[Any]: ...


class Analysis(Protocol):
    def analyse(
        self,
        *,
        model: str,
        canary: str,
        stable: str,
        thresholds: Any,
        window_s: int,
        lookback_s: int,
    ) -> list[CheckResult]: ...


class LineageSink(Protocol):
    def append(self, event: LineageEvent) -> None: ...


class ControllerMetrics(Collector):
    """`driftwarden_rollouts_total` (a counter) and, read from the controller's last seen
    states at scrape time, `driftwarden_canary_weight` and `driftwarden_canary_check`."""

    def __init__(
        self, registry: CollectorRegistry, states: Callable[[], Mapping[str, RolloutState]]
    ) -> None:
        m = mc.ROLLOUTS_TOTAL
        self.rollouts = Counter(m.name, m.help, list(m.labels), registry=registry)
        self._states = states
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = self._states()
        w, c = mc.CANARY_WEIGHT, mc.CANARY_CHECK
        weight = GaugeMetricFamily(w.name, w.help, labels=list(w.labels))
        check = GaugeMetricFamily(c.name, c.help, labels=list(c.labels))
        for model, s in sorted(states.items()):
            weight.add_metric([model], s.canary_weight / 100)
            if not s.phase.terminal:
                for r in s.checks:
                    check.add_metric([model, r.check], r.verdict.gauge)
        yield weight
        yield check


@dataclass(frozen=True)
class _Ctx:
    policy: RetrainPolicy
    namespace: str
    name: str


class Controller:
    """Reconciles the rollouts of the models in `policies`. One pass per call; thread-safe
    per model only if one thread reconciles a model (the loop in `run` does)."""

    def __init__(
        self,
        policies: Mapping[str, RetrainPolicy],
        kube: Kube,
        analyzer: Analysis,
        lineage: LineageSink,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        emit_events: bool = True,
        routers: Mapping[str, Router] | None = None,
    ) -> None:
        self.policies = dict(policies)
        self.kube = kube
        self.analyzer = analyzer
        self.lineage = lineage
        self.clock = clock
        self.emit_events = emit_events
        self._routers = dict(routers or {})
        self._states: dict[str, RolloutState] = {}
        self._states_lock = threading.Lock()
        self.metrics = ControllerMetrics(registry, self.states)
        # Every outcome's series exists from the start at 0, so the first rollback is an
        # increase Prometheus can see (DriftwardenCanaryRolledBack), not a series born at 1.
        for model in self.policies:
            for outcome in (Phase.PROMOTED.value, Phase.ROLLED_BACK.value):
                self.metrics.rollouts.labels(model, outcome)

    # --- public -------------------------------------------------------------------------

    def states(self) -> dict[str, RolloutState]:
        with self._states_lock:
            return dict(self._states)

    def router(self, policy: RetrainPolicy) -> Router:
        kind = policy.canary.router
        if kind not in self._routers:
            self._routers[kind] = make_router(kind, self.kube)  # type: ignore[arg-type]
        return self._routers[kind]

    def reconcile_all(self) -> dict[str, RolloutState | None]:
        """One pass over every model; a failing model is logged and does not stop the rest."""
        out: dict[str, RolloutState | None] = {}
        for model in sorted(self.policies):
            try:
                out[model] = self.reconcile(model)
            except ExternalError as e:
                log.warning("model %s: %s (retrying next pass)", model, e)
                out[model] = None
            except DriftwardenError as e:
                log.error("model %s: %s", model, e)
                out[model] = None
        return out

    def reconcile(self, model: str) -> RolloutState | None:
        """One pass for `model`; returns the state it leaves (None: no rollout ever)."""
        ctx = self._ctx(model)
        stable = self.kube.get_deployment(ctx.namespace, ctx.name)
        if stable is None:
            log.info("model %s: Deployment %s/%s not found", model, ctx.namespace, ctx.name)
            return None
        state = sm.from_annotations((stable.get("metadata") or {}).get("annotations"))
        if state is not None and not state.announced:  # killed between write and announce
            state = self._announce(ctx, state)
        if state is None or state.phase.terminal:
            if state is not None:
                self._remember(state)
            started = self._maybe_start(ctx, stable, state)
            if started is None:
                return state
            state = started
            stable = self._require_stable(ctx)
        return self._drive(ctx, stable, state)

    def start(self, model: str, *, version: str, artifact: str = "", job: str = "") -> RolloutState:
        """Start a rollout of `version` by hand (the same as a succeeded retrain Job would)."""
        ctx = self._ctx(model)
        stable = self._require_stable(ctx)
        current = sm.from_annotations((stable.get("metadata") or {}).get("annotations"))
        if current is not None and not current.phase.terminal:
            raise DriftwardenError(
                f"model {model}: rollout of {current.version} is {current.phase.value}; abort it first"
            )
        return self._begin(ctx, stable, current, version=version, artifact=artifact, job=job)

    def abort(self, model: str, reason: str = "aborted by hand") -> RolloutState | None:
        ctx = self._ctx(model)
        stable = self._require_stable(ctx)
        state = sm.from_annotations((stable.get("metadata") or {}).get("annotations"))
        if state is None:
            return None
        state = self._commit(ctx, state, sm.abort(state, self.clock(), reason))
        return self._drive(ctx, self._require_stable(ctx), state)

    def resume(self, model: str) -> RolloutState:
        ctx = self._ctx(model)
        stable = self._require_stable(ctx)
        state = sm.from_annotations((stable.get("metadata") or {}).get("annotations"))
        if state is None:
            raise DriftwardenError(f"model {model}: no rollout to resume")
        return self._commit(ctx, state, sm.resume(state, ctx.policy.canary, self.clock()))

    # --- starting -----------------------------------------------------------------------

    def _ctx(self, model: str) -> _Ctx:
        policy = self.policies.get(model)
        if policy is None:
            raise DriftwardenError(f"no retrain policy for model {model!r}")
        return _Ctx(policy, policy.namespace, policy.deployment_name)

    def _require_stable(self, ctx: _Ctx) -> dict[str, Any]:
        stable = self.kube.get_deployment(ctx.namespace, ctx.name)
        if stable is None:
            raise DriftwardenError(f"Deployment {ctx.namespace}/{ctx.name} not found")
        return stable

    def _maybe_start(
        self, ctx: _Ctx, stable: dict[str, Any], last: RolloutState | None
    ) -> RolloutState | None:
        if not ctx.policy.canary.enabled:
            return None
        found = self.newest_succeeded_job(ctx.policy)
        if found is None:
            return None
        version, artifact, job = found
        if version == mf.stable_version(stable) or (last is not None and last.version == version):
            return None
        return self._begin(ctx, stable, last, version=version, artifact=artifact, job=job)

    def newest_succeeded_job(self, policy: RetrainPolicy) -> tuple[str, str, str] | None:
        """(version, artifact, Job name) of the model's newest succeeded retrain Job."""
        best: tuple[float, str, str, str] | None = None
        for job in self.kube.list_jobs_raw(policy.namespace):
            view = job_view(job)
            if view.model != policy.model or view.outcome != "succeeded" or not view.version:
                continue
            artifact = (job.metadata.annotations or {}).get(ANN_ARTIFACT, "")
            key = (view.finished_at or 0.0, view.version, artifact, view.name)
            if best is None or key > best:
                best = key
        return None if best is None else best[1:]

    def _begin(
        self,
        ctx: _Ctx,
        stable: dict[str, Any],
        before: RolloutState | None,
        *,
        version: str,
        artifact: str,
        job: str,
    ) -> RolloutState:
        mf.check_stable(stable)
        replicas = int((stable.get("spec") or {}).get("replicas", 1))
        t = sm.begin(
            model=ctx.policy.model,
            version=version,
            stable_version=mf.stable_version(stable),
            artifact=artifact,
            job=job,
            stable_replicas=replicas,
            now=self.clock(),
        )
        return self._commit(ctx, before, t)

    # --- driving ------------------------------------------------------------------------

    def _target(self, ctx: _Ctx, state: RolloutState) -> Target:
        return Target(
            namespace=ctx.namespace,
            stable=ctx.name,
            canary=mf.canary_name(ctx.name),
            total_replicas=state.stable_replicas,
            version=state.version,
            stable_version=state.stable_version,
            http_route=ctx.policy.canary.http_route,
        )

    def _drive(self, ctx: _Ctx, stable: dict[str, Any], state: RolloutState) -> RolloutState:
        policy = ctx.policy.canary
        router = self.router(ctx.policy)
        target = self._target(ctx, state)
        if state.phase is Phase.PENDING:
            canary = mf.canary_deployment(
                stable,
                version=state.version,
                artifact=state.artifact,
                replicas=router.canary_replicas(target, policy.steps[0]),
            )
            self.kube.create_deployment(canary)
            state = self._commit(ctx, state, sm.on_canary_ready(state, policy, self.clock()))
        if state.phase in (Phase.PROGRESSING, Phase.HELD):
            if self.kube.get_deployment(ctx.namespace, target.canary) is None:
                reason = f"canary Deployment {target.canary} is gone"
                state = self._commit(ctx, state, sm.abort(state, self.clock(), reason))
            else:
                router.set_weight(target, state.weight)
        now = self.clock()
        if sm.analysis_due(state, now):
            results = self._analyse(ctx, state)
            t = sm.on_analysis(state, policy, now, results)
            state = self._commit(ctx, state, t)
            if state.phase is Phase.PROGRESSING and t.changed:
                router.set_weight(target, state.weight)
        if state.phase is Phase.PROMOTING:
            state = self._promote(ctx, state, router, target)
        if state.phase is Phase.ROLLING_BACK:
            self.kube.delete_deployment(ctx.namespace, target.canary)
            router.finish(target, promoted=False)
            state = self._commit(ctx, state, sm.on_rolled_back(state, self.clock()))
        self._remember(state)
        return state

    def _promote(
        self, ctx: _Ctx, state: RolloutState, router: Router, target: Target
    ) -> RolloutState:
        stable = self._require_stable(ctx)
        if mf.template_version(stable) != state.version:
            canary = self.kube.get_deployment(ctx.namespace, target.canary)
            if canary is None:
                reason = "canary Deployment vanished before promotion"
                return self._commit(ctx, state, sm.abort(state, self.clock(), reason))
            patch = mf.promote_patch(stable, canary, replicas=state.stable_replicas)
            self.kube.patch_deployment(ctx.namespace, ctx.name, patch)
            return state  # the stable rolls out; a later pass looks again
        if not mf.rolled_out(stable):
            return state
        self.kube.delete_deployment(ctx.namespace, target.canary)
        router.finish(target, promoted=True)
        return self._commit(ctx, state, sm.on_promoted(state, self.clock()))

    def _analyse(self, ctx: _Ctx, state: RolloutState) -> list[CheckResult] | None:
        c = ctx.policy.canary
        try:
            return self.analyzer.analyse(
                model=ctx.policy.model,
                canary=state.version,
                stable=state.stable_version,
                thresholds=c.thresholds,
                window_s=c.check_interval_s,
                lookback_s=c.step_deadline_s + c.check_interval_s,
            )
        except ExternalError as e:
            log.warning(
                "model %s: analysis failed (%s); counted as inconclusive", ctx.policy.model, e
            )
            return None

    # --- recording ------------------------------------------------------------------------

    def _commit(self, ctx: _Ctx, before: RolloutState | None, t: Transition) -> RolloutState:
        """Write the state onto the stable Deployment, then announce the transition.

        The write happens only if the stored rollout is still `before` (the state the
        transition was computed from) and against the resourceVersion just read: a
        concurrent writer (a second controller, a person) makes it a RetryLater instead of a
        lost update. A changed state is written unannounced first, announced (Event,
        lineage, metrics), then marked announced, so a kill in between re-announces on the
        next pass (Events have deterministic names: no duplicates)."""
        state = t.state
        if t.changed:
            state = replace(state, note=(t.event, t.message, t.warning), announced=False)
        self._write(ctx, before, state)
        if t.changed:
            state = self._announce(ctx, state)
        return state

    def _write(self, ctx: _Ctx, before: RolloutState | None, state: RolloutState) -> None:
        # The Deployment controller's status updates move the resourceVersion often: on a
        # 409 re-read, and write if the stored rollout is still `before`.
        for _ in range(WRITE_ATTEMPTS):
            stable = self._require_stable(ctx)
            meta = stable.get("metadata") or {}
            stored = sm.from_annotations(meta.get("annotations"))
            if not _same(stored, before):
                raise RetryLater(
                    f"rollout of {ctx.policy.model} changed under us"
                    f" ({_brief(before)} expected, {_brief(stored)} stored)"
                )
            annotations = sm.to_annotations(state)
            if self.kube.annotate_deployment(
                ctx.namespace, ctx.name, annotations, meta.get("resourceVersion", "")
            ):
                self._remember(state)
                return
        raise RetryLater(f"Deployment {ctx.namespace}/{ctx.name} kept changing; state not written")

    def _announce(self, ctx: _Ctx, state: RolloutState) -> RolloutState:
        reason, message, warning = state.note
        log.info("model %s: %s (%s)", state.model, state.phase.value, state.reason)
        if self.emit_events and reason:
            try:
                self.kube.emit_event(
                    ctx.namespace,
                    ctx.name,
                    reason=reason,
                    message=message,
                    warning=warning,
                    key=f"{ctx.namespace}/{ctx.name}/{state.version}/{state.phase.value}/{state.step}",
                    uid=None,
                    now=self.clock(),
                )
            except ExternalError as e:  # an Event is informational
                log.warning("cannot emit Event on %s/%s: %s", ctx.namespace, ctx.name, e)
        self._append_lineage(state, ctx)
        if state.phase.terminal:
            self.metrics.rollouts.labels(state.model, state.phase.value).inc()
        done = replace(state, announced=True)
        self._write(ctx, state, done)
        return done

    def _append_lineage(self, state: RolloutState, ctx: _Ctx) -> None:
        ts = self.clock()
        checks = {c.check: c.verdict.value for c in state.checks}
        if state.phase.terminal:
            event = step(
                state.model,
                "rollout_finished",
                state.version,
                ts,
                outcome=state.phase.value,
                deployment=f"{ctx.namespace}/{ctx.name}",
                stable_version=state.stable_version,
                reason=state.reason,
                analyses=state.analyses,
                checks=checks,
            )
        else:
            event = step(
                state.model,
                "rollout_step",
                state.version,
                ts,
                phase=state.phase.value,
                step=state.step,
                weight=state.weight,
                deployment=f"{ctx.namespace}/{ctx.name}",
                reason=state.reason,
                checks=checks,
            )
        try:
            self.lineage.append(event)
        except Exception as e:  # lineage must never stop a rollout
            log.error("cannot queue lineage step %s for %s: %s", event.step, event.model, e)

    def _remember(self, state: RolloutState) -> None:
        with self._states_lock:
            self._states[state.model] = state

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, resync_s: float = 5.0) -> None:
        """Reconcile every model every `resync_s` seconds until `stop` is set."""
        while not stop.is_set():
            self.reconcile_all()
            stop.wait(resync_s)


def plan_lines(
    policy: RetrainPolicy,
    *,
    version: str,
    stable_version: str,
    replicas: int,
    router: Router,
) -> list[str]:
    """What a rollout of `version` would do, step by step, with every analysis query
    (`driftwarden canary plan` / `run --dry-run`)."""
    c = policy.canary
    target = Target(
        namespace=policy.namespace,
        stable=policy.deployment_name,
        canary=mf.canary_name(policy.deployment_name),
        total_replicas=replicas,
        version=version,
        stable_version=stable_version,
        http_route=c.http_route,
    )
    lines = [
        f"model {policy.model}: roll out {version} over {stable_version}"
        f" in {policy.namespace}/{policy.deployment_name} (router {router.kind})",
        f"create Deployment {target.canary} (version={version},"
        f" {router.canary_replicas(target, c.steps[0])} replica(s))",
    ]
    for i, weight in enumerate(c.steps, 1):
        lines.append(
            f"step {i}/{len(c.steps)}: {router.describe(target, weight)}; analyse every"
            f" {c.check_interval_s}s, at most {c.step_deadline_s}s (then {c.on_deadline})"
        )
    lines.append(
        f"promote: {policy.deployment_name} takes the {version} template; delete {target.canary}"
    )
    ctx = QueryContext.for_policy(policy.model, version, stable_version, c)
    for name, q in build_queries(ctx, c.thresholds).items():
        lines.append(f"check {name}: pass when value <= {q.limit:g} ({q.unit})")
        for key, expr in q.expressions().items():
            lines.append(f"  {key}: {expr}")
    return lines


def _same(a: RolloutState | None, b: RolloutState | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.phase, a.version, a.step, a.analyses) == (b.phase, b.version, b.step, b.analyses)


def _brief(s: RolloutState | None) -> str:
    return "no rollout" if s is None else f"{s.version} {s.phase.value} step {s.step}"
