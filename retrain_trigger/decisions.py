"""The decision table: what the trigger does with each alert of a notification. Pure.

Inputs are the notification, the policies, the retrain Jobs that exist in the cluster (read
from the API server, never from process memory, so a restarted trigger decides the same) and
`now` (an injected clock). Every alert gets exactly one `AlertDecision` with a reason:

| situation (first match wins)                                    | decision        |
|-----------------------------------------------------------------|-----------------|
| the alert is resolved                                           | `resolved`      |
| no `driftwarden_action="retrain"` label, or no `model` label    | `not_retrain`   |
| no policy for the model                                         | `no_policy`     |
| a Job for this alert episode is running, or the model's running |                 |
| Jobs reach the policy's `max_concurrent`                        | `in_flight`     |
| the model's last Job finished less than `cooldown_s` ago        | `cooldown`      |
| running retrain Jobs of all models reach the global cap         | `over_capacity` |
| otherwise                                                       | `launched`      |

Alerts of one model in one notification form one retrain request: the first gets the
request's decision, the others `in_flight` pointing at the same Job when it is launched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from retrain_trigger.manifest import job_name
from retrain_trigger.policy import RetrainPolicy
from retrain_trigger.webhook import Alert, Notification, RetrainRequest, retrain_requests

__all__ = [
    "AlertDecision",
    "Decision",
    "JobView",
    "Launch",
    "decide",
    "mark_exists",
]

JobOutcome = Literal["running", "succeeded", "failed"]


class Decision(StrEnum):
    LAUNCHED = "launched"
    IN_FLIGHT = "in_flight"
    COOLDOWN = "cooldown"
    OVER_CAPACITY = "over_capacity"
    NO_POLICY = "no_policy"
    NOT_RETRAIN = "not_retrain"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class JobView:
    """What the decisions need to know about one retrain Job in the cluster."""

    name: str
    namespace: str
    model: str
    fingerprint: str
    version: str
    started_at: float  # unix seconds (creation time)
    finished_at: float | None  # unix seconds, None while running
    outcome: JobOutcome

    @property
    def running(self) -> bool:
        return self.outcome == "running"


@dataclass(frozen=True, slots=True)
class Launch:
    """A Job to create: the request, its deterministic name and attempt number."""

    request: RetrainRequest
    policy: RetrainPolicy
    job: str
    attempt: int


@dataclass(frozen=True, slots=True)
class AlertDecision:
    alertname: str
    status: str
    model: str | None
    fingerprint: str  # the alert's own fingerprint (Alertmanager's, or a hash of its labels)
    decision: Decision
    reason: str
    job: str | None = None
    episode: str | None = None  # the retrain request's fingerprint, when the alert is one


def _fmt(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decide_request(
    request: RetrainRequest,
    policy: RetrainPolicy,
    jobs: Sequence[JobView],
    now: float,
    max_in_flight: int,
) -> tuple[Decision, str, str | None, int]:
    """(decision, reason, job name, attempt) for one model's retrain request."""
    model_jobs = [j for j in jobs if j.model == request.model]
    same_episode = [j for j in model_jobs if j.fingerprint == request.fingerprint]
    for j in same_episode:
        if j.running:
            return Decision.IN_FLIGHT, f"Job {j.name} for this alert is running", j.name, 0
    running = [j for j in model_jobs if j.running]
    if len(running) >= policy.max_concurrent:
        names = ", ".join(sorted(j.name for j in running))
        return (
            Decision.IN_FLIGHT,
            f"{len(running)} retrain(s) of {request.model} running ({names});"
            f" max_concurrent is {policy.max_concurrent}",
            running[0].name,
            0,
        )
    finished = [j for j in model_jobs if j.finished_at is not None]
    if finished:
        last = max(finished, key=lambda j: j.finished_at or 0.0)
        until = (last.finished_at or 0.0) + policy.cooldown_s
        if now < until:
            return (
                Decision.COOLDOWN,
                f"Job {last.name} {last.outcome} at {_fmt(last.finished_at or 0.0)};"
                f" cooldown_s {policy.cooldown_s} lasts until {_fmt(until)}",
                last.name,
                0,
            )
    running_all = [j for j in jobs if j.running]
    if len(running_all) >= max_in_flight:
        return (
            Decision.OVER_CAPACITY,
            f"{len(running_all)} retrain(s) running across models; the cap is {max_in_flight}",
            None,
            0,
        )
    # A finished Job of the same episode keeps its name until its TTL deletes it; a retry of
    # the episode after the cooldown takes the next attempt number (and so a new name).
    attempt = len(same_episode)
    name = job_name(request.model, request.fingerprint, attempt)
    return Decision.LAUNCHED, f"retraining {request.model} as Job {name}", name, attempt


def _alert_decision(
    alert: Alert,
    decision: Decision,
    reason: str,
    job: str | None = None,
    episode: str | None = None,
) -> AlertDecision:
    return AlertDecision(
        alertname=alert.alertname,
        status=alert.status,
        model=alert.model,
        fingerprint=alert.identity(),
        decision=decision,
        reason=reason,
        job=job,
        episode=episode,
    )


def decide(
    notification: Notification,
    policies: Mapping[str, RetrainPolicy],
    jobs: Sequence[JobView],
    now: float,
    max_in_flight: int,
) -> tuple[list[AlertDecision], list[Launch]]:
    """Decide every alert of `notification`; returns the decisions (in alert order) and the
    Jobs to create. `jobs` are the retrain Jobs in the cluster, `now` unix seconds."""
    by_alert: dict[int, AlertDecision] = {}
    launches: list[Launch] = []
    live = list(jobs)
    for request in retrain_requests(notification):
        policy = policies.get(request.model)
        if policy is None:
            for a in request.alerts:
                by_alert[id(a)] = _alert_decision(
                    a,
                    Decision.NO_POLICY,
                    f"no retrain policy for model {request.model!r}",
                    episode=request.fingerprint,
                )
            continue
        decision, reason, job, attempt = _decide_request(request, policy, live, now, max_in_flight)
        first, *rest = request.alerts
        by_alert[id(first)] = _alert_decision(first, decision, reason, job, request.fingerprint)
        if decision is Decision.LAUNCHED and job is not None:
            launches.append(Launch(request, policy, job, attempt))
            # Later requests of this notification see the Job as running (global cap).
            live.append(
                JobView(
                    job,
                    policy.namespace,
                    request.model,
                    request.fingerprint,
                    "",
                    now,
                    None,
                    "running",
                )
            )
            decision, reason = (
                Decision.IN_FLIGHT,
                f"covered by Job {job}, launched for this notification",
            )
        for a in rest:
            by_alert[id(a)] = _alert_decision(a, decision, reason, job, request.fingerprint)
    out = []
    for a in notification.alerts:
        if id(a) in by_alert:
            out.append(by_alert[id(a)])
        elif a.status == "resolved":
            out.append(
                _alert_decision(a, Decision.RESOLVED, "the alert is resolved; nothing to do")
            )
        elif a.labels.get("driftwarden_action") != "retrain":
            out.append(
                _alert_decision(a, Decision.NOT_RETRAIN, 'no driftwarden_action="retrain" label')
            )
        else:
            out.append(_alert_decision(a, Decision.NOT_RETRAIN, "no model label"))
    return out, launches


def mark_exists(decision: AlertDecision, job: str) -> AlertDecision:
    """A `launched` decision whose Job turned out to exist already (a concurrent delivery of
    the same notification created it first): it becomes `in_flight`."""
    return replace(
        decision,
        decision=Decision.IN_FLIGHT,
        reason=f"Job {job} for this alert already exists (created by a concurrent delivery)",
    )
