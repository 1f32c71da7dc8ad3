"""When delivery goes direct, spools or replays: the decisions, without Kafka or disk. Pure.

`DeliveryPolicy` is the state machine behind `collector.delivery.Delivery` (its module
docstring tells the whole story). The delivery thread reports what happened (an
acknowledgement, every broker down, a replay batch resolved) and asks what to do next
(spool? stall? replay how many records, or wait?); the answers depend only on what was
reported and on the `now` passed in, so every rule is tested without a broker.

`record_fits` is the size rule: a record bigger than the producer's `message.max.bytes`
can never be produced, and becomes a dead letter instead of blocking the queue or the
spool.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["direct", "spooling"]


def record_fits(key: bytes, value: bytes, max_message_bytes: int) -> bool:
    """Can librdkafka accept this record at all (`message.max.bytes` bounds key + value)?"""
    return len(key) + len(value) <= max_message_bytes


@dataclass(frozen=True, slots=True)
class HealthVerdict:
    """What `DeliveryPolicy.check` decided: spool from now on (`why`), and whether to take
    back what librdkafka has not sent yet (`stall`, once per stall)."""

    why: str
    stall: bool


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What a resolved replay batch means for the spool: commit up to index `commit`
    (exclusive; 0 commits nothing) and skip the indexes in `acked_after` on the retry."""

    commit: int
    acked_after: frozenset[int]
    complete: bool


@dataclass
class DeliveryPolicy:
    """The direct / spooling / replay state machine. Times in seconds, from one clock."""

    slow_after_s: float
    replay_batch: int
    retry_backoff_s: float
    retry_backoff_max_s: float
    has_spool: bool = True
    mode: Mode = "direct"
    brokers_down: bool = False
    last_progress: float = 0.0
    acked_since_spooling: bool = False
    stalled: bool = False
    replay_size: int = field(init=False)
    replay_not_before: float = 0.0
    backoff: float = field(init=False)
    #: Spool positions Kafka acknowledged past a failure in the last replay batch.
    acked_positions: set[Hashable] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.replay_size = self.replay_batch
        self.backoff = self.retry_backoff_s

    # -- what happened --

    def start(self, now: float, spool_empty: bool) -> bool:
        """At (re)start: replay first when the spool holds anything. True when it does."""
        self.last_progress = now
        self.brokers_down = False
        self.stalled = False
        self.acked_positions = set()
        self.replay_size = self.replay_batch
        self.backoff = self.retry_backoff_s
        if self.has_spool and not spool_empty:
            self.mode = "spooling"
            self.acked_since_spooling = False
            return True
        self.mode = "direct"
        return False

    def acknowledged(self, now: float) -> None:
        """Kafka acknowledged a record."""
        self.last_progress = now
        self.brokers_down = False
        self.acked_since_spooling = True
        self.stalled = False

    def all_brokers_down(self) -> None:
        self.brokers_down = True

    def enter_spooling(self, now: float) -> bool:
        """Records go to the spool from now on; True when this is a change (log it)."""
        if self.mode == "spooling":
            return False
        self.mode = "spooling"
        self.acked_since_spooling = False
        self.replay_not_before = now + self.backoff
        return True

    # -- what to do --

    def check(self, now: float, in_flight: int) -> HealthVerdict | None:
        """Is Kafka keeping up with what librdkafka holds? None: yes."""
        if in_flight == 0:
            self.last_progress = now
            self.stalled = False
            return None
        if now - self.last_progress > self.slow_after_s:
            why = f"no acknowledgement for {self.slow_after_s:g}s"
        elif self.brokers_down:
            why = "all brokers are down"
        else:
            return None
        stall = not self.stalled and self.has_spool
        if stall:
            self.stalled = True
            self.replay_size = 1  # probe with one record until Kafka answers again
        return HealthVerdict(why, stall)

    def next_replay(
        self, now: float, in_flight: int, spool_empty: bool
    ) -> int | Literal["direct"] | None:
        """Between replay batches: `"direct"` (the spool is replayed, go back to direct
        delivery), a number of records to read from the spool and produce, or None (wait)."""
        if self.mode != "spooling":
            return None
        if not self.has_spool:
            # Without a spool, records wait in librdkafka meanwhile.
            return None if self.brokers_down else "direct"
        if spool_empty:
            # Back to direct only once Kafka has acknowledged something since spooling
            # began: an empty spool alone says nothing about a broker that hangs.
            if not self.brokers_down and self.acked_since_spooling:
                self.last_progress = now
                self.backoff = self.retry_backoff_s
                return "direct"
            return None
        if now < self.replay_not_before or in_flight > 0:
            return None  # back-off, or let what is in flight resolve first (see _stall)
        return self.replay_size

    def go_direct(self) -> None:
        self.mode = "direct"

    def replay_resolved(self, now: float, status: Sequence[bool | None]) -> ReplayOutcome:
        """A replay batch resolved: `status[i]` True when Kafka has record i (or it was
        dead-lettered), False or None when it must be replayed again."""
        first_bad = next((i for i, ok in enumerate(status) if not ok), None)
        if first_bad is None:
            self.backoff = self.retry_backoff_s
            self.replay_size = min(self.replay_size * 4, self.replay_batch)
            return ReplayOutcome(len(status), frozenset(), True)
        self.replay_size = 1
        self.replay_not_before = now + self.backoff
        self.backoff = min(self.backoff * 2, self.retry_backoff_max_s)
        acked = frozenset(i for i in range(first_bad, len(status)) if status[i])
        return ReplayOutcome(first_bad, acked, False)
