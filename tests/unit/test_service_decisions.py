"""The streaming loop's pure decisions (`detectors.service.decisions`)."""

from __future__ import annotations

import pytest

from detectors.service.decisions import (
    STALLED_AFTER_MIN_S,
    Every,
    feedback_paused,
    loop_stalled,
    partition_lag,
    predictions_caught_up,
)


def test_every_is_due_once_per_interval_counted_from_the_last_time_it_was() -> None:
    timer = Every(5.0, start=100.0)
    assert [timer.due(t) for t in (100.0, 104.9, 105.0, 105.1, 109.9, 110.0)] == [
        False,
        False,
        True,
        False,
        False,
        True,
    ]
    # a late call restarts the interval from when it ran, not from when it was due
    assert timer.due(117.0) and not timer.due(121.0) and timer.due(122.0)


def test_every_without_a_start_is_due_at_once() -> None:
    timer = Every(0.1)
    assert timer.due(0.0) and not timer.due(0.05) and timer.due(0.1)


@pytest.mark.parametrize(
    ("pending", "paused", "expected"),
    [
        (0, False, False),
        (100, False, False),  # at the limit: still consuming
        (101, False, True),  # above it: pause
        (101, True, True),
        (50, True, True),  # half the limit: still paused
        (49, True, False),  # below half: resume
        (60, False, False),  # in between, a running partition keeps running
    ],
)
def test_feedback_pauses_above_the_limit_and_resumes_below_half(
    pending: int, paused: bool, expected: bool
) -> None:
    assert feedback_paused(pending, paused, queue_max=100) is expected


def test_a_growing_then_draining_queue_pauses_once_and_resumes_once() -> None:
    paused, changes = False, []
    for pending in [*range(0, 130, 10), *range(130, -1, -10)]:
        now = feedback_paused(pending, paused, queue_max=100)
        if now != paused:
            changes.append((pending, now))
        paused = now
    assert changes == [(110, True), (40, False)]


@pytest.mark.parametrize(
    ("end", "next_offset", "expected"),
    [
        (10, 10, True),  # nothing past the next offset
        (9, 10, True),
        (11, 10, False),  # one record still to process
        (0, 0, True),  # an empty partition
        (-1, 0, False),  # the broker did not answer
        (None, 0, False),
    ],
)
def test_predictions_are_caught_up_when_their_end_is_not_past_the_next_offset(
    end: int | None, next_offset: int, expected: bool
) -> None:
    assert predictions_caught_up(end, next_offset) is expected


def test_partition_lag_counts_from_the_committed_offset_or_the_partition_start() -> None:
    assert partition_lag(0, 100, 40) == 60
    assert partition_lag(20, 100, None) == 80  # nothing committed yet: from the start
    assert partition_lag(-1, 100, None) == 100  # start unknown: from offset 0
    assert partition_lag(None, 100, None) == 100
    assert partition_lag(0, 100, 120) == 0  # never negative
    assert partition_lag(0, -1, 40) is None  # end unknown
    assert partition_lag(0, None, 40) is None


def test_a_started_loop_is_stalled_after_30_s_or_ten_poll_timeouts() -> None:
    assert not loop_stalled(True, STALLED_AFTER_MIN_S, poll_timeout_s=0.5)
    assert loop_stalled(True, STALLED_AFTER_MIN_S + 0.1, poll_timeout_s=0.5)
    assert not loop_stalled(True, 45.0, poll_timeout_s=5.0)  # 10 polls: 50 s
    assert loop_stalled(True, 50.1, poll_timeout_s=5.0)
    assert not loop_stalled(False, 1e6, poll_timeout_s=0.5)  # not started: not stalled
