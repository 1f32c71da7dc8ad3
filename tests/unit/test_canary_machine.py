"""The rollout state machine, table-driven with a fake clock: metric situations → decisions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from retrain_trigger.canary import machine as sm
from retrain_trigger.canary.machine import CheckResult, Phase, Verdict
from retrain_trigger.canary.queries import CHECKS
from retrain_trigger.policy import CanaryPolicy

P, F, N = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # N: no verdict yet


class FakeClock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> float:
        self.t += s
        return self.t


def results(*verdicts: Verdict) -> list[CheckResult]:
    return [
        CheckResult(name, v, reason=f"{name} {v}") for name, v in zip(CHECKS, verdicts, strict=True)
    ]


ALL_PASS = results(P, P, P, P, P, P)


def policy(**kw) -> CanaryPolicy:
    base = {"steps": [10, 50, 100], "step_deadline_s": 600, "check_interval_s": 60}
    return CanaryPolicy(**{**base, **kw})


def progressing(clock: FakeClock, p: CanaryPolicy) -> sm.RolloutState:
    t = sm.begin(
        model="fraud",
        version="v2",
        stable_version="v1",
        artifact="/a/v2",
        job="retrain-fraud-x",
        stable_replicas=4,
        now=clock(),
    )
    assert t.state.phase is Phase.PENDING and t.event == "CanaryStarted"
    clock.advance(5)
    return sm.on_canary_ready(t.state, p, clock()).state


@dataclass
class Case:
    name: str
    # one analysis per entry: (seconds since the step began, verdicts or None = not run)
    analyses: list[tuple[float, list[CheckResult] | None]]
    phase: Phase
    step: int
    on_deadline: str = "rollback"


CASES = [
    Case("all pass advances one step", [(60, ALL_PASS)], Phase.PROGRESSING, 1),
    Case("one failure rolls back", [(60, results(P, P, F, P, P, P))], Phase.ROLLING_BACK, 0),
    Case("failure beats inconclusive", [(60, results(N, F, N, N, N, N))], Phase.ROLLING_BACK, 0),
    Case("inconclusive waits", [(60, results(P, P, N, P, P, P))], Phase.PROGRESSING, 0),
    Case(
        "inconclusive then pass advances",
        [(60, results(P, N, P, P, P, P)), (120, ALL_PASS)],
        Phase.PROGRESSING,
        1,
    ),
    Case(
        "inconclusive until the deadline rolls back",
        [
            (60, results(N, N, N, N, N, N)),
            (300, results(P, P, N, P, P, P)),
            (600, results(P, P, N, P, P, P)),
        ],
        Phase.ROLLING_BACK,
        0,
    ),
    Case(
        "inconclusive until the deadline holds when the policy says hold",
        [(60, results(N, N, N, N, N, N)), (600, results(P, N, P, P, P, P))],
        Phase.HELD,
        0,
        on_deadline="hold",
    ),
    Case("analysis that did not run waits", [(60, None)], Phase.PROGRESSING, 0),
    Case(
        "analysis never running rolls back at the deadline (missing data never promotes)",
        [(60, None), (600, None)],
        Phase.ROLLING_BACK,
        0,
    ),
    Case("no checks at all is not a pass", [(60, [])], Phase.PROGRESSING, 0),
    Case(
        "a pass after the deadline still advances (the data is conclusive)",
        [(60, results(N, N, N, N, N, N)), (900, ALL_PASS)],
        Phase.PROGRESSING,
        1,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_transitions(case: Case) -> None:
    clock = FakeClock()
    p = policy(on_deadline=case.on_deadline)
    state = progressing(clock, p)
    step_start = clock()
    assert state.deadline == step_start + 600 and state.weight == 10
    ran = 0
    for offset, verdicts in case.analyses:
        clock.t = step_start + offset
        assert sm.analysis_due(state, clock())
        state = sm.on_analysis(state, p, clock(), verdicts).state
        ran += 1
        if state.phase is not Phase.PROGRESSING or state.step != 0:
            break
    assert (state.phase, state.step) == (case.phase, case.step)
    assert state.analyses == ran == len(case.analyses)
    if case.phase is Phase.PROGRESSING and case.step == 0:  # waiting: re-check one interval on
        assert state.next_check_at == clock() + 60


def test_full_promotion_through_every_step_with_waits() -> None:
    clock = FakeClock()
    p = policy()
    state = progressing(clock, p)
    weights = [state.weight]
    events = []
    for _ in range(10):
        if state.phase is not Phase.PROGRESSING:
            break
        assert not sm.analysis_due(state, clock())  # the first check waits one interval
        clock.advance(60)
        t = sm.on_analysis(state, p, clock(), results(P, P, N, P, P, P))  # labels not in yet
        assert not t.changed and t.state.phase is Phase.PROGRESSING
        clock.advance(60)
        t = sm.on_analysis(t.state, p, clock(), ALL_PASS)
        events.append(t.event)
        state = t.state
        weights.append(state.weight)
    assert state.phase is Phase.PROMOTING
    assert weights == [10, 50, 100, 100]
    assert events == ["CanaryStepAdvanced", "CanaryStepAdvanced", "CanaryPromoting"]
    assert state.analyses == 6 and len(state.history) == 6
    assert [h["verdict"] for h in state.history] == ["inconclusive", "pass"] * 3
    done = sm.on_promoted(state, clock.advance(30))
    assert done.state.phase is Phase.PROMOTED and done.state.finished_at == clock()
    assert done.event == "CanaryPromoted" and not done.warning


def test_rollback_then_rolled_back_is_terminal_with_zero_weight() -> None:
    clock = FakeClock()
    p = policy()
    state = progressing(clock, p)
    clock.advance(60)
    t = sm.on_analysis(state, p, clock(), results(F, P, P, P, P, P))
    assert t.warning and "error_rate" in t.message and "error_rate" in t.state.reason
    done = sm.on_rolled_back(t.state, clock.advance(1))
    assert done.state.phase.terminal and done.state.canary_weight == 0
    assert done.event == "CanaryRolledBack"
    with pytest.raises(sm.StateError, match="rolled_back, not progressing"):
        sm.on_analysis(done.state, p, clock(), ALL_PASS)


def test_hold_resume_gets_a_fresh_deadline_and_abort_rolls_back() -> None:
    clock = FakeClock()
    p = policy(on_deadline="hold")
    state = progressing(clock, p)
    clock.advance(600)
    held = sm.on_analysis(state, p, clock(), results(N, N, N, N, N, N)).state
    assert held.phase is Phase.HELD and held.canary_weight == 10
    assert not sm.analysis_due(held, clock.advance(3600))
    resumed = sm.resume(held, p, clock()).state
    assert resumed.phase is Phase.PROGRESSING and resumed.deadline == clock() + 600
    aborted = sm.abort(resumed, clock(), "by hand")
    assert aborted.state.phase is Phase.ROLLING_BACK and aborted.state.reason == "by hand"
    assert not sm.abort(aborted.state, clock(), "again").changed


def test_begin_refuses_the_stable_version() -> None:
    with pytest.raises(sm.StateError, match="already the stable version"):
        sm.begin(
            model="m",
            version="v1",
            stable_version="v1",
            artifact="",
            job="",
            stable_replicas=1,
            now=0,
        )


def test_annotations_round_trip_and_bad_status_is_one_line() -> None:
    clock = FakeClock()
    p = policy()
    state = progressing(clock, p)
    clock.advance(60)
    state = sm.on_analysis(
        state, p, clock(), [CheckResult("performance", F, 0.05, 0.02, 0.85, 0.9, "worse")]
    ).state
    ann = sm.to_annotations(state)
    assert ann[sm.ANN_PHASE] == "rolling_back" and ann[sm.ANN_STEP] == "0"
    back = sm.from_annotations(ann)
    assert back == state
    assert sm.from_annotations({}) is None
    with pytest.raises(sm.StateError, match="rollout-status"):
        sm.from_annotations({sm.ANN_PHASE: "progressing", sm.ANN_STATUS: "{not json"})
    with pytest.raises(sm.StateError):
        sm.from_annotations({sm.ANN_PHASE: "exploded", sm.ANN_STATUS: "{}"})


def test_history_is_bounded() -> None:
    clock = FakeClock()
    p = policy(step_deadline_s=10**6)
    state = progressing(clock, p)
    for _ in range(sm.MAX_HISTORY + 25):
        clock.advance(60)
        state = sm.on_analysis(state, p, clock(), results(N, N, N, N, N, N)).state
    assert state.analyses == sm.MAX_HISTORY + 25
    assert len(state.history) == sm.MAX_HISTORY
    assert len(sm.to_annotations(state)[sm.ANN_STATUS]) < 64 * 1024
