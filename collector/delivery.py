"""Delivery: a bounded in-memory queue, a background Kafka producer and the disk spool.

    submit(item)  ──►  deque  ──►  delivery thread ──► ProducerAdapter (librdkafka) ──► Kafka
     (any thread,                    │      ▲                 │ failed / purged
      never blocks)                  ▼      │ replay          ▼
                                     on-disk spool  ◄─────────┘

The thread is the only owner of the producer and the spool. It runs in one of two modes
(the decisions are `collector.delivery_policy.DeliveryPolicy`, pure; this module does the
I/O they ask for):

- `direct`: records go straight to librdkafka (acks=all, idempotent, batched, compressed,
  murmur2_random). A record whose delivery fails (broker gone past `message_timeout_s`,
  purged at shutdown) is appended to the spool.
- `spooling`: entered when every broker is down, when no acknowledgement came for
  `slow_after_s` while records waited, when librdkafka's queue is full, or when the spool
  holds anything (also at start, after a restart). New records are appended to the spool,
  and the spool is replayed in order, one batch at a time: a batch is committed (the
  spool's cursor moves) only up to the last record Kafka acknowledged, so nothing
  leaves the spool before Kafka has it. When the spool is empty and Kafka acknowledged
  something since spooling began, the thread goes back to `direct`.

A stall (no acknowledgement while records wait, or every broker down) also takes back
what librdkafka has not sent yet (`purge` of its queue, never of in-flight requests: no
duplicates), and the replay then probes with one record, growing its batches only as
Kafka answers. See `_stall` for why this matters for CPU.

Errors at the Kafka boundary arrive as `RetryLater` (spool, replay later) or `GiveUp`
(`collector.kafka_producer`). A record that can never be produced (bigger than the
producer's `message.max.bytes`, or refused for good by the broker) becomes a small dead
letter with reason `oversize` (or `kafka_rejected`) and is counted; it never blocks the
queue or the spool.

Supervision: an unexpected exception in the thread is logged (with its traceback the first
time it is seen), counted (`driftwarden_collector_delivery_restarts_total`), and delivery
restarts: what librdkafka held goes to the spool, the spool is closed and reopened, a new
producer is made. More than `max_restarts` within `restart_window_s` means it cannot
recover: the thread stops, `healthy` turns False (the admin port's `/healthz` answers
503, so the kubelet restarts the container, spool kept), and `close()` reports what was
lost.

Guarantee: at least once for every record that was submitted and not counted as dropped
(queue full, spool full, oversize). A duplicate can only come from a record that was in
flight when the process stopped (purged with its acknowledgement unknown) and was replayed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from collector.delivery_policy import DeliveryPolicy, Mode, record_fits
from collector.events import Record, deadletter_for
from collector.kafka_producer import OVERSIZE_ERRORS, ProducerAdapter, classify
from collector.metrics import CollectorStats
from collector.spool import ReadBatch, Spool
from driftwarden.errors import GiveUp, RetryLater
from driftwarden.kafka import AUTH_ERRORS, KafkaSecurity, explain_access, producer_config
from driftwarden.kafka_access import PasswordWatch

_log = logging.getLogger("collector.delivery")

Drops = Counter[tuple[str, str]]

__all__ = ["Delivery", "DeliverySettings", "DrainReport", "Drops", "Job", "Mode"]


class Job(Protocol):
    """Work done on the delivery thread that yields records (e.g. parsing a capture)."""

    def __call__(self, drops: Drops) -> Iterable[Record]: ...


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How events travel to Kafka. Times in seconds."""

    #: Items (a capture, an SDK event) waiting in memory for the delivery thread; beyond
    #: this `submit` refuses and counts `queue_full`.
    queue_size: int = 100_000
    #: Records handed to librdkafka and not yet acknowledged; beyond it, spool.
    max_in_flight: int = 100_000
    #: No acknowledgement for this long while records wait: Kafka is slow or hung; spool.
    #: (A healthy broker acknowledges within linger + a round trip.)
    slow_after_s: float = 2.0
    #: librdkafka gives up on a record after this (the record then goes to the spool).
    message_timeout_s: float = 30.0
    #: Records per replay batch read from the spool.
    replay_batch: int = 5_000
    #: First and longest wait before a failed replay batch is retried.
    retry_backoff_s: float = 0.2
    retry_backoff_max_s: float = 5.0
    #: How long the thread sleeps in librdkafka's poll when idle. Each wake-up costs CPU
    #: and a GIL hand-over with the proxy's event loop; events wait at most this long.
    poll_interval_s: float = 0.02
    #: On close: how long to wait for Kafka before the rest goes to the spool.
    drain_timeout_s: float = 10.0
    compression: Literal["lz4", "zstd", "none"] = "lz4"
    #: librdkafka batching delay. Nothing waits for Kafka, so batch generously: at 5 ms
    #: librdkafka's broker thread cost ~80 µs of CPU per event at 1,000 events/s, at
    #: 50 ms about 4 µs (measured, see docs/collector.md).
    linger_ms: int = 50
    #: Restarts after unexpected errors allowed within `restart_window_s`; one more and
    #: delivery is failed for good (`/healthz` 503: the container restarts, spool kept).
    max_restarts: int = 5
    restart_window_s: float = 60.0
    #: Wait before the first restart, doubled per restart within the window (a tight
    #: crash loop would take a core from the proxy).
    restart_backoff_s: float = 0.1


@dataclass
class DrainReport:
    """What `close()` did with what was still waiting."""

    flushed: bool = True
    #: Records written to the spool during the drain (queued, unacknowledged or purged).
    spooled: int = 0
    #: Records lost: no spool to keep them, or delivery had failed (see `failed`).
    dropped: int = 0
    left_in_spool_bytes: int = 0
    #: Why delivery stopped before `close()`, when it failed for good.
    failed: str | None = None


@dataclass
class _ReplayBatch:
    batch: ReadBatch
    status: list[bool | None] = field(default_factory=list)
    resolved: int = 0
    produced: int = 0


class Delivery:
    """The producer thread shared by the proxy, the feedback endpoint and the SDK."""

    def __init__(
        self,
        *,
        bootstrap: str,
        stats: CollectorStats | None = None,
        spool: Spool | None = None,
        settings: DeliverySettings | None = None,
        producer_overrides: dict[str, Any] | None = None,
        producer_factory: Callable[[dict[str, Any]], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        name: str = "driftwarden-delivery",
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        #: Rotated SASL password: handed to the running producer (no restart).
        self._password_watch = PasswordWatch.of(security)
        #: Access errors already logged (each is one line, once, not a retry loop).
        self.access_errors: dict[str, str] = {}
        self.stats = stats or CollectorStats()
        self.spool = spool
        self.settings = settings or DeliverySettings()
        self._overrides = dict(producer_overrides or {})
        self._factory = producer_factory
        self._clock = clock
        self._wall = wall_clock
        self._name = name
        self._queue: deque[Record | Job] = deque()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._producer: ProducerAdapter | None = None
        s = self.settings
        self.policy = DeliveryPolicy(
            slow_after_s=s.slow_after_s,
            replay_batch=s.replay_batch,
            retry_backoff_s=s.retry_backoff_s,
            retry_backoff_max_s=s.retry_backoff_max_s,
            has_spool=spool is not None,
        )
        self._fatal: str | None = None
        self._replay: _ReplayBatch | None = None
        self._draining = False
        # per-iteration counts, flushed to stats once per loop
        self._sent: Counter[str] = Counter()
        self._spooled: Counter[str] = Counter()
        self._drops: Drops = Counter()
        self.report = DrainReport()
        #: Records re-sent by a replay although they might already be in Kafka.
        self.possible_duplicates = 0
        #: The last unexpected exception of the thread (it was restarted after it).
        self.error: BaseException | None = None
        #: Set when delivery failed for good (restarts exhausted): why.
        self.failed: str | None = None
        self.restarts = 0
        self._restart_times: deque[float] = deque()
        self._seen_errors: set[str] = set()

    # -- public API --------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self.policy.mode

    @property
    def max_message_bytes(self) -> int:
        """The largest record (key + value) the producer accepts."""
        if self._producer is not None:
            return self._producer.max_message_bytes
        config = producer_config(self.bootstrap, **self._overrides)
        return int(config.get("message.max.bytes", 1_000_000))  # type: ignore[call-overload]

    def start(self) -> Delivery:
        if self._thread is not None:
            return self
        self._producer = self._new_producer()
        if self.policy.start(self._clock(), self.spool is None or self.spool.empty):
            assert self.spool is not None
            _log.info(
                "spool holds %d bytes from an earlier run: replaying", self.spool.pending_bytes
            )
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def submit(self, item: Record | Job) -> bool:
        """Queue a record or a job; never blocks. False (and counted) when the queue is full
        or delivery has stopped."""
        if (
            len(self._queue) >= self.settings.queue_size
            or self._stop.is_set()
            or self.failed is not None
        ):
            reason = (
                "delivery_failed"
                if self.failed is not None
                else "shutdown"
                if self._stop.is_set()
                else "queue_full"
            )
            self.stats.add_dropped(_model_of(item), reason)
            return False
        self._queue.append(item)
        return True

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        producer = self._producer
        return len(producer) if producer is not None else 0

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def healthy(self) -> bool:
        """False once delivery cannot recover (restarts exhausted, or the thread ended
        without being asked to): the liveness probe should restart the process."""
        if self.failed is not None:
            return False
        thread = self._thread
        return thread is None or thread.is_alive() or self._stop.is_set()

    def idle(self) -> bool:
        """Nothing queued, nothing in flight, nothing in the spool."""
        return (
            not self._queue
            and self.in_flight == 0
            and (self.spool is None or self.spool.empty)
            and self._replay is None
        )

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.01)
        return self.idle()

    def close(self, timeout: float | None = None) -> DrainReport:
        """Drain: queued items to Kafka (or the spool), wait for acknowledgements up to
        `drain_timeout_s`, spool what is left, close the spool. Idempotent. When delivery
        had failed, what was still queued is lost: the report (and the log) say so."""
        if self._thread is None:
            if self.spool is not None:
                with contextlib.suppress(OSError):
                    self.spool.close()
            return self.report
        self._stop.set()
        limit = (timeout or self.settings.drain_timeout_s) + 30.0
        self._thread.join(limit)
        if self._thread.is_alive():  # pragma: no cover - librdkafka wedged
            _log.error("delivery thread did not stop within %.0fs", limit)
        self._thread = None
        lost = self._count_lost("delivery_failed")
        if lost:
            self.report.dropped += lost
            self.report.flushed = False
            _log.error("delivery had failed (%s): %d queued events were lost", self.failed, lost)
        self.report.failed = self.failed
        return self.report

    # -- the thread --------------------------------------------------------------------

    def _new_producer(self) -> ProducerAdapter:
        s = self.settings
        config = producer_config(
            self.bootstrap,
            security=self.security,
            **{
                "compression.type": s.compression,
                "linger.ms": s.linger_ms,
                "message.timeout.ms": int(s.message_timeout_s * 1000),
                "queue.buffering.max.messages": max(s.max_in_flight * 2, 1000),
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 1000,
                "retry.backoff.ms": 50,
                "retry.backoff.max.ms": 1000,
                "error_cb": self._on_error,
                "logger": _librdkafka_logger(),
                **self._overrides,
            },
        )
        return ProducerAdapter(config, self._factory)

    @property
    def _p(self) -> ProducerAdapter:
        producer = self._producer
        assert producer is not None
        return producer

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    while not self._stop.is_set():
                        self._step()
                except Exception as e:
                    if not self._restart(e):
                        return
            try:
                self._drain()
            except Exception as e:
                self.error = e
                self.failed = f"drain failed: {type(e).__name__}: {e}"
                self.report.flushed = False
                _log.exception("delivery could not drain")
        finally:
            self._flush_counts()
            if self.spool is not None:
                with contextlib.suppress(Exception):
                    self.stats.spool_bytes = self.spool.pending_bytes
                    self.report.left_in_spool_bytes = self.spool.pending_bytes
                    self.spool.close()
            with contextlib.suppress(Exception):
                self._close_producer()
            self._stopped.set()

    def _restart(self, error: Exception) -> bool:
        """Supervision: log, count, and restart producer and spool. False when delivery
        cannot recover (the thread then ends, `healthy` is False)."""
        s = self.settings
        self.error = error
        self.restarts += 1
        self.stats.add_restart()
        signature = f"{type(error).__name__}: {str(error)[:200]}"
        if signature not in self._seen_errors:
            self._seen_errors.add(signature)
            _log.error("delivery failed (%s); restarting it", signature, exc_info=error)
        now = time.monotonic()
        times = self._restart_times
        times.append(now)
        while times and now - times[0] > s.restart_window_s:
            times.popleft()
        if len(times) > s.max_restarts:
            self.failed = f"{len(times)} restarts within {s.restart_window_s:g}s, last: {signature}"
            _log.error("delivery cannot recover (%s); /healthz now fails", self.failed)
            with contextlib.suppress(Exception):
                self._emergency_spool()
            return False
        if self._stop.wait(s.restart_backoff_s * 2 ** (len(times) - 1)):
            pass  # asked to stop meanwhile: restart anyway so the drain can run
        try:
            self._emergency_spool()
            self._replay = None
            self._close_producer()
            if self.spool is not None:
                self.spool.close()
                self.spool.open()
            self._producer = self._new_producer()
            self.policy.start(self._clock(), self.spool is None or self.spool.empty)
        except Exception as e:  # the restart itself failed: try again, within the budget
            return self._restart(e)
        _log.warning("delivery restarted (%d restarts so far)", self.restarts)
        return True

    def _step(self) -> None:
        s = self.settings
        self._p.poll(0 if self._queue else s.poll_interval_s)
        if self._fatal is not None:
            self._recreate_producer()
        watch = self._password_watch
        if watch is not None and watch.rotate(self._clock(), (self._p,)):
            self.access_errors.clear()
            # "every broker down" came from the refused credentials: let the next
            # replay probe reach Kafka instead of being taken back at once
            self.policy.brokers_down = False
        self._drain_queue(budget=256)
        self._check_health()
        self._replay_step()
        if self.spool is not None:
            self.spool.maybe_sync()
            self.stats.spool_bytes = self.spool.pending_bytes
        self._flush_counts()

    def _drain_queue(self, budget: int) -> None:
        """Turn queued items into records and route them; `budget` items per call so the
        thread gives the GIL back often (the proxy's event loop shares it)."""
        queue = self._queue
        records: list[Record] = []
        n = 0
        while queue and n < budget:
            item = queue.popleft()
            n += 1
            if type(item) is Record:
                records.append(item)
            else:
                try:
                    records.extend(item(self._drops))  # type: ignore[operator]
                except Exception:
                    _log.exception("capture job failed")
                    self._drops[(_model_of(item), "internal_error")] += 1
            if len(records) >= 64:
                self._route(records)
                records = []
                time.sleep(0)  # let the event loop run
        if records:
            self._route(records)

    def _fits(self, records: list[Record]) -> list[Record]:
        """The records librdkafka can take; the others become dead letters (`oversize`)."""
        limit = self._p.max_message_bytes
        for r in records:
            if not record_fits(r.key, r.value, limit):
                break
        else:
            return records
        out: list[Record] = []
        for r in records:
            if record_fits(r.key, r.value, limit):
                out.append(r)
            else:
                letter = self._dead(r, "oversize", f"larger than message.max.bytes {limit}")
                if letter is not None:
                    out.append(letter)
        return out

    def _dead(self, record: Record, reason: str, why: str) -> Record | None:
        """A small dead letter in place of a record that can never be produced; counted."""
        self._drops[(record.key.decode("utf-8", "replace"), reason)] += 1
        if record.topic.endswith(".deadletter"):  # a dead letter cannot be dead-lettered
            _log.warning("dead letter of %d bytes not produced: %s", len(record.value), why)
            return None
        return deadletter_for(record, reason, f"{len(record.value)} bytes: {why}", ts=self._wall())

    def _route(self, records: list[Record]) -> None:
        records = self._fits(records)
        if self.policy.mode != "direct":
            self._to_spool(records)
            return
        producer = self._p
        cb = self._on_delivery
        max_in_flight = self.settings.max_in_flight
        for i, r in enumerate(records):
            # (the records are kept first, then the mode changes: nothing is lost if that fails)
            if len(producer) >= max_in_flight:
                self._to_spool(records[i:])
                self._enter_spooling("more than max_in_flight records unacknowledged")
                return
            try:
                producer.produce(r, cb)
            except RetryLater as e:
                self._to_spool(records[i:])
                self._enter_spooling(str(e))
                return
            except GiveUp as e:
                self._give_up(r, e)

    def _give_up(self, record: Record, error: GiveUp) -> None:
        """librdkafka refused a record for good: produce a dead letter instead (once)."""
        reason = "oversize" if _names(error) & OVERSIZE_ERRORS else "kafka_rejected"
        letter = self._dead(record, reason, str(error))
        if letter is not None:
            with contextlib.suppress(RetryLater, GiveUp):
                self._p.produce(letter, self._on_delivery)

    def _to_spool(self, records: list[Record]) -> None:
        if not records:
            return
        if self.spool is None:
            # No spool (an SDK without one): keep what librdkafka will hold, drop the rest.
            producer = self._p
            for i, r in enumerate(records):
                try:
                    producer.produce(r, self._on_delivery)
                except RetryLater:
                    for rest in records[i:]:
                        self._drops[(rest.key.decode("utf-8", "replace"), "queue_full")] += 1
                    return
                except GiveUp as e:
                    self._give_up(r, e)
            return
        result = self.spool.append(records)
        written = Counter(r.key for r in records)
        for r in result.dropped:
            self._drops[(r.key.decode("utf-8", "replace"), "spool_full")] += 1
            if self.spool.drop_policy == "newest":  # the incoming record was not written
                written[r.key] -= 1
        for key, n in written.items():
            if n > 0:
                self._spooled[key.decode("utf-8", "replace")] += n
                if self._draining:
                    self.report.spooled += n
        if result.dropped_corrupt_bytes:
            _log.warning("spool full: dropped %d unreadable bytes", result.dropped_corrupt_bytes)

    def _enter_spooling(self, why: str) -> None:
        if self.policy.enter_spooling(self._clock()):
            _log.warning("kafka %s: %s; spooling events to disk", self.bootstrap, why)

    def _check_health(self) -> None:
        verdict = self.policy.check(self._clock(), len(self._p))
        if verdict is None:
            return
        self._enter_spooling(verdict.why)
        if verdict.stall:
            self._stall()

    def _stall(self) -> None:
        """Kafka does not answer: take back what librdkafka has not sent yet (its
        delivery reports bring it to the spool), once per stall. Besides keeping those
        records on disk rather than in memory, this matters for CPU: an idempotent
        librdkafka producer whose broker hangs with requests in flight busy-loops while
        more batches wait behind them (measured: a full core)."""
        self._p.purge(in_flight=False)

    # -- replay --

    def _replay_step(self) -> None:
        rb = self._replay
        if rb is not None:
            if rb.resolved < rb.produced:
                return
            self._finish_replay(rb)
            self._replay = None
        spool = self.spool
        decision = self.policy.next_replay(
            self._clock(), len(self._p), spool is None or spool.empty
        )
        if decision is None:
            return
        if decision == "direct":
            if spool is not None:
                _log.info("spool replayed; back to direct delivery")
            self.policy.go_direct()
            return
        assert spool is not None
        batch = spool.read(max_records=decision)
        if not batch.records:
            return
        rb = _ReplayBatch(batch=batch, status=[None] * len(batch))
        producer = self._p
        acked = self.policy.acked_positions
        limit = producer.max_message_bytes
        for i, (r, end) in enumerate(zip(batch.records, batch.ends, strict=True)):
            if end in acked:  # acknowledged by an earlier, partly failed try
                rb.status[i] = True
                continue
            if not record_fits(r.key, r.value, limit):  # spooled by an older version
                self._route([r])
                rb.status[i] = True
                continue
            try:
                producer.produce(r, _ReplayCallback(self, rb, i, r.key))
            except RetryLater:
                # librdkafka is full of direct records; replay the rest later.
                del rb.status[i:]
                del batch.records[i:]
                del batch.ends[i:]
                break
            except GiveUp as e:
                self._give_up(r, e)
                rb.status[i] = True
                continue
            rb.produced += 1
        self._replay = rb

    def _replay_delivered(self, rb: _ReplayBatch, index: int, msg: Any, err: Any) -> None:
        rb.resolved += 1
        if err is None:
            rb.status[index] = True
            self._sent[msg.key().decode("utf-8", "replace")] += 1
            self.policy.acknowledged(self._clock())
        elif classify(err) is GiveUp:
            rb.status[index] = True  # refused for good: dead-lettered, not replayed again
            self._rejected(msg, err)
        else:
            rb.status[index] = False

    def _finish_replay(self, rb: _ReplayBatch) -> None:
        spool = self.spool
        assert spool is not None
        ends = rb.batch.ends
        outcome = self.policy.replay_resolved(self._clock(), rb.status)
        if outcome.commit > 0:
            spool.commit(ends[outcome.commit - 1])
        # Remember what Kafka already has past the failure, so the retry skips it.
        self.policy.acked_positions = {ends[i] for i in outcome.acked_after}

    # -- librdkafka callbacks (run inside poll/flush, on this thread) --

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self._sent[msg.key().decode("utf-8", "replace")] += 1
            self.policy.acknowledged(self._clock())
            return
        if classify(err) is GiveUp:
            self._rejected(msg, err)
            return
        if err.name() in AUTH_ERRORS:
            self._access_error(err.name(), msg.topic())
        record = Record(msg.topic(), msg.key() or b"", msg.value() or b"")
        if self.spool is None:
            self._drops[(record.key.decode("utf-8", "replace"), "kafka_error")] += 1
            _log.warning("event not delivered and no spool to keep it: %s", err)
            return
        self._to_spool([record])
        self._enter_spooling(f"delivery failed ({err.name()})")

    def _rejected(self, msg: Any, err: Any) -> None:
        """The broker refused a record for good (e.g. over its own message.max.bytes)."""
        record = Record(msg.topic(), msg.key() or b"", msg.value() or b"")
        reason = "oversize" if err.name() in OVERSIZE_ERRORS else "kafka_rejected"
        letter = self._dead(record, reason, f"the broker refused it ({err.name()})")
        if letter is None:
            return
        if self.policy.mode == "direct":
            self._route([letter])
        else:
            self._to_spool([letter])

    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        code = err.code()
        if code == KafkaError._ALL_BROKERS_DOWN:
            self.policy.all_brokers_down()
        if err.fatal():
            self._fatal = err.str()
        if err.name() in AUTH_ERRORS:
            self._access_error(err.name())
        _log.debug("kafka error: %s", err)

    def _access_error(self, name: str, topic: str = "") -> None:
        """Kafka refused the credentials or an ACL: one ERROR line per kind (repeated only
        after the password file changes); the events wait in the spool meanwhile."""
        key = f"{name} {topic}"
        if key in self.access_errors:
            return
        line = explain_access(name, self.security, topic)
        self.access_errors[key] = line
        _log.error(
            "kafka %s: %s; events are kept in the spool until it is fixed", self.bootstrap, line
        )

    def _recreate_producer(self) -> None:
        _log.error("fatal producer error (%s): recreating the producer", self._fatal)
        self._fatal = None
        old = self._p
        old.purge(in_flight=True)
        old.poll(0.5)  # failed deliveries go to the spool
        self._close_producer()
        self._producer = self._new_producer()

    # -- shutdown --

    def _drain(self) -> None:
        self._draining = True
        deadline = self._clock() + self.settings.drain_timeout_s
        producer = self._p
        while self._queue:
            self._drain_queue(budget=10_000)
            producer.poll(0)
        self._flush_counts()
        # Wait for acknowledgements (and keep replaying while Kafka answers) until the
        # deadline; with every broker down there is nothing to wait for.
        while self._clock() < deadline and not self.policy.brokers_down:
            producer.poll(0.01)
            self._check_health()
            self._replay_step()
            if len(producer) == 0 and (
                self.policy.mode == "direct" or self.spool is None or self.spool.empty
            ):
                break
        left = len(producer)
        if left:
            self.report.flushed = False
            _log.warning("kafka did not acknowledge %d records in time; spooling them", left)
            producer.purge(in_flight=True)
            producer.flush(5.0)  # serves the purged records' callbacks
            if self.spool is None:
                self.report.dropped += left
        if self.spool is not None:
            self.spool.sync()

    def _emergency_spool(self) -> None:
        """Before a restart: what librdkafka holds goes to the spool (its callbacks)."""
        if self.spool is None or self._producer is None:
            return
        self._producer.purge(in_flight=True)
        self._producer.poll(0.5)
        self.spool.sync()

    def _count_lost(self, reason: str) -> int:
        """Items still queued after the thread ended: counted as dropped, by model."""
        lost = Counter(_model_of(item) for item in self._queue)
        self._queue.clear()
        for model, n in lost.items():
            self.stats.add_dropped(model, reason, n)
        return sum(lost.values())

    def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close()

    def _flush_counts(self) -> None:
        if self._sent or self._spooled or self._drops:
            self.stats.add_counts(self._sent, self._spooled, self._drops)
            self._sent = Counter()
            self._spooled = Counter()
            self._drops = Counter()


def _model_of(item: Record | Job) -> str:
    if isinstance(item, Record):
        return item.key.decode("utf-8", "replace") or "unknown"
    return str(getattr(item, "model", "unknown"))


def _names(error: BaseException) -> set[str]:
    cause = error.__cause__
    err = cause.args[0] if cause is not None and cause.args else None
    return {err.name()} if err is not None and hasattr(err, "name") else set()


class _ReplayCallback:
    __slots__ = ("delivery", "index", "key", "rb")

    def __init__(self, delivery: Delivery, rb: _ReplayBatch, index: int, key: bytes) -> None:
        self.delivery = delivery
        self.rb = rb
        self.index = index
        self.key = key

    def __call__(self, err: Any, msg: Any) -> None:
        self.delivery._replay_delivered(self.rb, self.index, msg, err)


class _Throttle(logging.Filter):
    """Lets each librdkafka log line through once per `every_s` seconds: a broker that
    refuses the credentials is retried every second or so, and every retry logs the same
    line (its timings aside)."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = re.sub(r"\d+", "#", record.getMessage())[:300]
        now = time.monotonic()
        if now - self._last.get(key, -self.every_s) < self.every_s:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


def _librdkafka_logger() -> logging.Logger:
    log = logging.getLogger("collector.kafka")
    if not any(isinstance(f, _Throttle) for f in log.filters):
        log.addFilter(_Throttle())
    return log
