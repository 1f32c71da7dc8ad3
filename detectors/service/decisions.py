"""The streaming loop's decisions, as pure functions of numbers.

`consumer.py` owns the Kafka calls; what it decides between them lives here, so it can be
read (and tested) without a broker: when periodic work is due, when a shard's feedback
partition is paused, whether a predictions partition is caught up, a partition's lag, and
when the loop counts as stalled. Each is called once per batch or per partition, never per
record.
"""

from __future__ import annotations

import math

__all__ = [
    "STALLED_AFTER_MIN_S",
    "Every",
    "feedback_paused",
    "loop_stalled",
    "partition_lag",
    "predictions_caught_up",
]

#: A running loop that has not finished an iteration for this long (or for 10 poll
#: timeouts, if longer) is stalled, and /healthz fails.
STALLED_AFTER_MIN_S = 30.0


class Every:
    """A timer for periodic work: `due(now)` is True when `interval` seconds have passed
    since it was last True (or since `start`), and then starts the next interval.

    `start=-inf` makes the first call due at once."""

    __slots__ = ("interval", "last")

    def __init__(self, interval: float, start: float = -math.inf) -> None:
        self.interval = interval
        self.last = start

    def due(self, now: float) -> bool:
        if now - self.last >= self.interval:
            self.last = now
            return True
        return False


def feedback_paused(pending: int, paused: bool, queue_max: int) -> bool:
    """Whether a shard's feedback partition should be paused, given the labels waiting in
    the shard for their predictions: paused above `queue_max` waiting, resumed below half of
    it, unchanged in between (so the partition does not flap at the limit)."""
    if paused:
        return pending >= queue_max // 2
    return pending > queue_max


def predictions_caught_up(end_offset: int | None, next_offset: int) -> bool:
    """Whether a predictions partition holds nothing yet to be processed: its end (the
    broker's last stable offset; negative or None when unknown) is at or before the next
    offset the shard will process. Then waiting feedback has nothing more to wait for."""
    return end_offset is not None and 0 <= end_offset <= next_offset


def partition_lag(low: int | None, high: int | None, committed: int | None) -> int | None:
    """Records of a partition not yet committed: from the committed offset (or the
    partition's start, before the first commit) to its end. None when the end is unknown."""
    if high is None or high < 0:
        return None
    base = committed if committed is not None else (max(low, 0) if low is not None else 0)
    return max(0, high - base)


def loop_stalled(started: bool, loop_age_s: float, poll_timeout_s: float) -> bool:
    """Whether a started loop has gone too long without finishing an iteration: more than
    `STALLED_AFTER_MIN_S`, or 10 poll timeouts when that is longer."""
    return started and loop_age_s > max(STALLED_AFTER_MIN_S, 10 * poll_timeout_s)
