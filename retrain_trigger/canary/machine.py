"""The rollout state machine: phases, transitions on analysis results, per-step deadlines. Pure.

A rollout of one model moves through an explicit `Phase`:

    pending ──canary ready──► progressing(step 0) ──all checks pass──► progressing(step 1) …
        progressing(last) ──all pass──► promoting ──stable rolled out──► promoted
        progressing(any)  ──a check fails──► rolling_back ──canary gone──► rolled_back
        progressing(any)  ──inconclusive past the step deadline──► rolling_back | held
        held ──resume──► progressing(same step, new deadline);  any live phase ──abort──► rolling_back

An inconclusive result (no series, too few rows or requests) never advances a step: the
controller waits `check_interval_s` and asks again, until the step's deadline, after which
the policy's `on_deadline` rolls back or holds. Nothing is promoted on missing data: an
analysis that could not run at all (Prometheus unreachable) counts as inconclusive.

`RolloutState` round-trips through the stable Deployment's annotations
(`to_annotations` / `from_annotations`), which is what makes the controller restart-safe.
Every function takes `now` (unix seconds) from the caller's injected clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from driftwarden.errors import DriftwardenError
from retrain_trigger.policy import CanaryPolicy

__all__ = [
    "ANN_PHASE",
    "ANN_STATUS",
    "ANN_STEP",
    "CheckResult",
    "Phase",
    "RolloutState",
    "StateError",
    "Transition",
    "Verdict",
    "abort",
    "analysis_due",
    "begin",
    "from_annotations",
    "on_analysis",
    "on_canary_ready",
    "on_promoted",
    "on_rolled_back",
    "resume",
    "summarise",
    "to_annotations",
]

ANN_PHASE = "driftwarden.io/rollout-phase"
ANN_STEP = "driftwarden.io/rollout-step"
ANN_STATUS = "driftwarden.io/rollout-status"

#: Compact analysis entries kept in the status annotation (annotations are capped at 256 KiB
#: per object; 200 entries of ~300 bytes stay far below it). Older entries are dropped.
MAX_HISTORY = 200


class StateError(DriftwardenError):
    """The stored rollout status cannot be read (hand-edited or from another tool)."""


class Phase(StrEnum):
    PENDING = "pending"  # decided to roll out; the canary Deployment is being created
    PROGRESSING = "progressing"  # at a traffic step, analysing
    PROMOTING = "promoting"  # the stable Deployment takes the new template
    PROMOTED = "promoted"  # done: stable runs the new version, canary removed
    ROLLING_BACK = "rolling_back"  # the canary is being removed, stable restored
    ROLLED_BACK = "rolled_back"  # done: stable untouched, canary removed
    HELD = "held"  # inconclusive past the deadline with on_deadline=hold: a person decides

    @property
    def terminal(self) -> bool:
        return self in (Phase.PROMOTED, Phase.ROLLED_BACK)


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"

    @property
    def gauge(self) -> float:
        """`driftwarden_canary_check`: 1 pass, 0 fail, -1 inconclusive."""
        return {Verdict.PASS: 1.0, Verdict.FAIL: 0.0, Verdict.INCONCLUSIVE: -1.0}[self]


@dataclass(frozen=True)
class CheckResult:
    """One check of one analysis: the verdict and the numbers it was reached from."""

    check: str  # error_rate, latency_p99, performance, prediction, data_quality
    verdict: Verdict
    value: float | None = None  # the judged quantity (a difference or a ratio)
    limit: float | None = None  # pass when value <= limit
    canary: float | None = None
    stable: float | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "verdict": self.verdict.value}
        for key in ("value", "limit", "canary", "stable"):
            v = getattr(self, key)
            if v is not None:
                out[key] = round(v, 6)
        if self.reason:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        return cls(
            check=str(d["check"]),
            verdict=Verdict(d["verdict"]),
            value=d.get("value"),
            limit=d.get("limit"),
            canary=d.get("canary"),
            stable=d.get("stable"),
            reason=str(d.get("reason", "")),
        )


@dataclass(frozen=True)
class RolloutState:
    """Everything a restarted controller needs to carry on (stored on the stable Deployment)."""

    phase: Phase
    model: str
    version: str  # the canary's (new) version
    stable_version: str
    artifact: str  # where the new version's artifact is
    job: str  # the retrain Job that produced it ('' when started by hand)
    stable_replicas: int  # the stable's replicas before the rollout (restored on rollback)
    started_at: float
    step: int = 0  # index into policy.steps
    weight: int = 0  # percent of traffic at the canary now
    step_started_at: float = 0.0
    deadline: float = 0.0  # the current step's deadline
    next_check_at: float = 0.0
    analyses: int = 0  # analyses run so far
    checks: tuple[CheckResult, ...] = ()  # the last analysis
    history: tuple[dict[str, Any], ...] = ()  # compact entry per analysis (see MAX_HISTORY)
    reason: str = ""  # why the last transition happened
    finished_at: float | None = None
    extra: dict[str, str] = field(default_factory=dict)  # router-specific facts
    # The last transition's Event (reason, message, warning) and whether it has been
    # announced (Event, lineage, metrics): a controller killed between writing a transition
    # and announcing it announces it on its next pass.
    note: tuple[str, str, bool] = ("", "", False)
    announced: bool = True

    @property
    def canary_weight(self) -> int:
        return self.weight if self.phase in (Phase.PROGRESSING, Phase.HELD) else 0


@dataclass(frozen=True)
class Transition:
    """The new state and, when the phase or step changed, what to tell people."""

    state: RolloutState
    changed: bool  # phase or step changed (an Event, a lineage step, metrics)
    event: str = ""  # Kubernetes Event reason, e.g. CanaryStepAdvanced
    message: str = ""
    warning: bool = False


def begin(
    *,
    model: str,
    version: str,
    stable_version: str,
    artifact: str,
    job: str,
    stable_replicas: int,
    now: float,
) -> Transition:
    """A new rollout, in phase pending."""
    if version == stable_version:
        raise StateError(f"version {version!r} is already the stable version")
    state = RolloutState(
        phase=Phase.PENDING,
        model=model,
        version=version,
        stable_version=stable_version,
        artifact=artifact,
        job=job,
        stable_replicas=stable_replicas,
        started_at=now,
        reason=f"new version {version} (Job {job or '-'})",
    )
    return Transition(
        state,
        True,
        "CanaryStarted",
        f"rollout of {model} version {version} over stable {stable_version} started",
    )


def _enter_step(state: RolloutState, policy: CanaryPolicy, index: int, now: float) -> RolloutState:
    return replace(
        state,
        phase=Phase.PROGRESSING,
        step=index,
        weight=policy.steps[index],
        step_started_at=now,
        deadline=now + policy.step_deadline_s,
        # the first analysis of a step waits one interval, so the window holds step traffic
        next_check_at=now + policy.check_interval_s,
    )


def on_canary_ready(state: RolloutState, policy: CanaryPolicy, now: float) -> Transition:
    """pending → progressing(step 0), once the canary Deployment exists."""
    _expect(state, Phase.PENDING)
    new = _enter_step(state, policy, 0, now)
    new = replace(new, reason=f"canary created; step 1 of {len(policy.steps)}")
    return Transition(
        new,
        True,
        "CanaryStepAdvanced",
        f"{state.model} {state.version}: {policy.steps[0]}% of traffic (step 1/{len(policy.steps)})",
    )


def analysis_due(state: RolloutState, now: float) -> bool:
    return state.phase is Phase.PROGRESSING and now >= state.next_check_at


def summarise(results: Sequence[CheckResult]) -> Verdict:
    """fail if any check failed; pass only if every check passed (and there was one)."""
    if any(r.verdict is Verdict.FAIL for r in results):
        return Verdict.FAIL
    if results and all(r.verdict is Verdict.PASS for r in results):
        return Verdict.PASS
    return Verdict.INCONCLUSIVE


def _names(results: Sequence[CheckResult], verdict: Verdict) -> str:
    return ", ".join(r.check for r in results if r.verdict is verdict)


def _record(
    state: RolloutState, results: Sequence[CheckResult], verdict: Verdict, now: float
) -> RolloutState:
    entry = {
        "ts": round(now, 3),
        "step": state.step,
        "weight": state.weight,
        "verdict": verdict.value,
        "checks": {r.check: r.verdict.value for r in results},
    }
    history = (*state.history, entry)[-MAX_HISTORY:]
    return replace(state, analyses=state.analyses + 1, checks=tuple(results), history=history)


def on_analysis(
    state: RolloutState,
    policy: CanaryPolicy,
    now: float,
    results: Sequence[CheckResult] | None,
) -> Transition:
    """The step's analysis came back (None: it could not run, which counts as inconclusive)."""
    _expect(state, Phase.PROGRESSING)
    if results is None:
        results = [CheckResult("analysis", Verdict.INCONCLUSIVE, reason="analysis did not run")]
    verdict = summarise(results)
    state = _record(state, results, verdict, now)
    n = len(policy.steps)
    where = f"step {state.step + 1}/{n} ({state.weight}%)"
    if verdict is Verdict.FAIL:
        failed = _names(results, Verdict.FAIL)
        new = replace(state, phase=Phase.ROLLING_BACK, reason=f"failed at {where}: {failed}")
        detail = "; ".join(r.reason for r in results if r.verdict is Verdict.FAIL and r.reason)
        return Transition(
            new,
            True,
            "CanaryRollingBack",
            f"{state.model} {state.version} failed {failed} at {where}"
            + (f": {detail}" if detail else ""),
            warning=True,
        )
    if verdict is Verdict.PASS:
        if state.step + 1 < n:
            new = _enter_step(state, policy, state.step + 1, now)
            new = replace(new, reason=f"all checks passed at {where}")
            return Transition(
                new,
                True,
                "CanaryStepAdvanced",
                f"{state.model} {state.version}: {new.weight}% of traffic"
                f" (step {new.step + 1}/{n}); all checks passed at {state.weight}%",
            )
        new = replace(state, phase=Phase.PROMOTING, reason=f"all checks passed at {where}")
        return Transition(
            new,
            True,
            "CanaryPromoting",
            f"{state.model} {state.version} passed every step; promoting",
        )
    waiting = _names(results, Verdict.INCONCLUSIVE)
    if now >= state.deadline:
        reason = f"inconclusive at {where} past the step deadline ({waiting})"
        if policy.on_deadline == "hold":
            new = replace(state, phase=Phase.HELD, reason=reason)
            return Transition(
                new,
                True,
                "CanaryHeld",
                f"{state.model} {state.version} held at {state.weight}%: {reason}",
                warning=True,
            )
        new = replace(state, phase=Phase.ROLLING_BACK, reason=reason)
        return Transition(
            new,
            True,
            "CanaryRollingBack",
            f"{state.model} {state.version}: {reason}",
            warning=True,
        )
    new = replace(
        state,
        next_check_at=now + policy.check_interval_s,
        reason=f"inconclusive at {where} ({waiting}); re-checking",
    )
    return Transition(new, False)


def on_promoted(state: RolloutState, now: float) -> Transition:
    _expect(state, Phase.PROMOTING)
    new = replace(state, phase=Phase.PROMOTED, weight=100, finished_at=now)
    return Transition(
        new,
        True,
        "CanaryPromoted",
        f"{state.model} {state.version} promoted: the stable Deployment runs it",
    )


def on_rolled_back(state: RolloutState, now: float) -> Transition:
    _expect(state, Phase.ROLLING_BACK)
    new = replace(state, phase=Phase.ROLLED_BACK, weight=0, finished_at=now)
    return Transition(
        new,
        True,
        "CanaryRolledBack",
        f"{state.model} {state.version} rolled back ({state.reason});"
        f" stable {state.stable_version} untouched",
        warning=True,
    )


def abort(state: RolloutState, now: float, reason: str) -> Transition:
    """A person (or a broken precondition) stops the rollout: roll back."""
    if state.phase.terminal or state.phase is Phase.ROLLING_BACK:
        return Transition(state, False)
    new = replace(state, phase=Phase.ROLLING_BACK, reason=reason)
    return Transition(
        new, True, "CanaryRollingBack", f"{state.model} {state.version}: {reason}", warning=True
    )


def resume(state: RolloutState, policy: CanaryPolicy, now: float) -> Transition:
    """held → progressing at the same step, with a fresh deadline."""
    _expect(state, Phase.HELD)
    new = replace(_enter_step(state, policy, state.step, now), reason="resumed by hand")
    return Transition(
        new, True, "CanaryResumed", f"{state.model} {state.version} resumed at {new.weight}%"
    )


def _expect(state: RolloutState, phase: Phase) -> None:
    if state.phase is not phase:
        raise StateError(f"rollout of {state.model} is {state.phase.value}, not {phase.value}")


# --- annotations ---------------------------------------------------------------------------


def to_annotations(state: RolloutState) -> dict[str, str]:
    """The three annotations of DESIGN.md's Kubernetes contract."""
    status = {
        "model": state.model,
        "version": state.version,
        "stable_version": state.stable_version,
        "artifact": state.artifact,
        "job": state.job,
        "stable_replicas": state.stable_replicas,
        "started_at": round(state.started_at, 3),
        "weight": state.weight,
        "step_started_at": round(state.step_started_at, 3),
        "deadline": round(state.deadline, 3),
        "next_check_at": round(state.next_check_at, 3),
        "analyses": state.analyses,
        "checks": [c.as_dict() for c in state.checks],
        "history": list(state.history),
        "reason": state.reason,
        "finished_at": None if state.finished_at is None else round(state.finished_at, 3),
        "extra": dict(state.extra),
        "note": list(state.note),
        "announced": state.announced,
    }
    return {
        ANN_PHASE: state.phase.value,
        ANN_STEP: str(state.step),
        ANN_STATUS: json.dumps(status, sort_keys=True, separators=(",", ":")),
    }


def from_annotations(annotations: Mapping[str, str] | None) -> RolloutState | None:
    """The stored rollout, or None when the Deployment has none."""
    annotations = annotations or {}
    if ANN_PHASE not in annotations:
        return None
    try:
        phase = Phase(annotations[ANN_PHASE])
        s = json.loads(annotations.get(ANN_STATUS, ""))
        return RolloutState(
            phase=phase,
            model=str(s["model"]),
            version=str(s["version"]),
            stable_version=str(s["stable_version"]),
            artifact=str(s.get("artifact", "")),
            job=str(s.get("job", "")),
            stable_replicas=int(s["stable_replicas"]),
            started_at=float(s["started_at"]),
            step=int(annotations.get(ANN_STEP, "0")),
            weight=int(s.get("weight", 0)),
            step_started_at=float(s.get("step_started_at", 0.0)),
            deadline=float(s.get("deadline", 0.0)),
            next_check_at=float(s.get("next_check_at", 0.0)),
            analyses=int(s.get("analyses", 0)),
            checks=tuple(CheckResult.from_dict(c) for c in s.get("checks", [])),
            history=tuple(s.get("history", [])),
            reason=str(s.get("reason", "")),
            finished_at=None if s.get("finished_at") is None else float(s["finished_at"]),
            extra={str(k): str(v) for k, v in (s.get("extra") or {}).items()},
            note=_note(s.get("note")),
            announced=bool(s.get("announced", True)),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise StateError(f"{ANN_STATUS}: cannot read the stored rollout: {e}") from e


def _note(value: Any) -> tuple[str, str, bool]:
    if not value:
        return ("", "", False)
    reason, message, warning = value
    return (str(reason), str(message), bool(warning))
