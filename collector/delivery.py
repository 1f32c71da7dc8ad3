"""Delivery: a bounded in-memory queue, a background Kafka producer and the disk spool.

    submit(item)  ──►  deque  ──►  delivery thread ──► confluent-kafka (librdkafka) ──► Kafka
     (any thread,                    │      ▲                 │ failed / purged
      never blocks)                  ▼      │ replay          ▼
                                     on-disk spool  ◄─────────┘

The thread is the only owner of the producer and the spool. It runs in one of two modes:

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

Guarantee: at least once for every record that was submitted and not counted as dropped
(queue full, spool full). A duplicate can only come from a record that was in flight
when the process stopped (purged with its acknowledgement unknown) and was replayed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from collector.events import Record
from collector.metrics import CollectorStats
from collector.spool import Position, ReadBatch, Spool
from driftwarden.kafka import producer_config

_log = logging.getLogger("collector.delivery")

Mode = Literal["direct", "spooling"]
Drops = Counter[tuple[str, str]]


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


@dataclass
class DrainReport:
    """What `close()` did with what was still waiting."""

    flushed: bool = True
    spooled: int = 0
    dropped: int = 0
    left_in_spool_bytes: int = 0


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
        name: str = "driftwarden-delivery",
    ) -> None:
        self.bootstrap = bootstrap
        self.stats = stats or CollectorStats()
        self.spool = spool
        self.settings = settings or DeliverySettings()
        self._overrides = dict(producer_overrides or {})
        self._factory = producer_factory
        self._clock = clock
        self._name = name
        self._queue: deque[Record | Job] = deque()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._producer: Any = None
        self.mode: Mode = "direct"
        self._brokers_down = False
        self._fatal: str | None = None
        self._last_progress = clock()
        self._acked_since_spooling = False
        self._stalled = False
        self._replay_size = self.settings.replay_batch
        self._replay: _ReplayBatch | None = None
        self._replay_not_before = 0.0
        self._backoff = self.settings.retry_backoff_s
        self._acked_positions: set[Position] = set()
        # per-iteration counts, flushed to stats once per loop
        self._sent: Counter[str] = Counter()
        self._spooled: Counter[str] = Counter()
        self._drops: Drops = Counter()
        self.report = DrainReport()
        #: Records re-sent by a replay although they might already be in Kafka.
        self.possible_duplicates = 0
        self.error: BaseException | None = None

    # -- public API --------------------------------------------------------------------

    def start(self) -> Delivery:
        if self._thread is not None:
            return self
        self._producer = self._new_producer()
        if self.spool is not None and not self.spool.empty:
            self.mode = "spooling"
            _log.info(
                "spool holds %d bytes from an earlier run: replaying", self.spool.pending_bytes
            )
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def submit(self, item: Record | Job) -> bool:
        """Queue a record or a job; never blocks. False (and counted) when the queue is full."""
        if len(self._queue) >= self.settings.queue_size or self._stop.is_set():
            reason = "shutdown" if self._stop.is_set() else "queue_full"
            model = item.key.decode("utf-8", "replace") if isinstance(item, Record) else ""
            self.stats.add_dropped(model or getattr(item, "model", "unknown"), reason)
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
        `drain_timeout_s`, spool what is left, close the spool. Idempotent."""
        if self._thread is None:
            if self.spool is not None:
                self.spool.close()
            return self.report
        self._stop.set()
        limit = (timeout or self.settings.drain_timeout_s) + 30.0
        self._thread.join(limit)
        if self._thread.is_alive():  # pragma: no cover - librdkafka wedged
            _log.error("delivery thread did not stop within %.0fs", limit)
        self._thread = None
        return self.report

    # -- the thread --------------------------------------------------------------------

    def _new_producer(self) -> Any:
        s = self.settings
        config = producer_config(
            self.bootstrap,
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
                "logger": logging.getLogger("collector.kafka"),
                **self._overrides,
            },
        )
        if self._factory is not None:
            return self._factory(config)
        from confluent_kafka import Producer

        return Producer(config)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
            self._drain()
        except BaseException as e:  # pragma: no cover - a bug; keep the process informed
            self.error = e
            _log.exception("delivery thread failed")
            try:
                self._emergency_spool()
            finally:
                raise
        finally:
            self._flush_counts()
            if self.spool is not None:
                self.stats.spool_bytes = self.spool.pending_bytes
                self.report.left_in_spool_bytes = self.spool.pending_bytes
                self.spool.close()
            self._close_producer()
            self._stopped.set()

    def _step(self) -> None:
        s = self.settings
        self._producer.poll(0 if self._queue else s.poll_interval_s)
        if self._fatal is not None:
            self._recreate_producer()
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
                    self._drops[(getattr(item, "model", "unknown"), "internal_error")] += 1
            if len(records) >= 64:
                self._route(records)
                records = []
                time.sleep(0)  # let the event loop run
        if records:
            self._route(records)

    def _route(self, records: list[Record]) -> None:
        if self.mode == "direct":
            produce = self._producer.produce
            cb = self._on_delivery
            max_in_flight = self.settings.max_in_flight
            for i, r in enumerate(records):
                if len(self._producer) >= max_in_flight:
                    self._enter_spooling("more than max_in_flight records unacknowledged")
                    self._to_spool(records[i:])
                    return
                try:
                    produce(r.topic, r.value, r.key, on_delivery=cb)
                except BufferError:
                    self._enter_spooling("librdkafka queue full")
                    self._to_spool(records[i:])
                    return
            return
        self._to_spool(records)

    def _to_spool(self, records: list[Record]) -> None:
        if not records:
            return
        if self.spool is None:
            # No spool (an SDK without one): keep what librdkafka will hold, drop the rest.
            for i, r in enumerate(records):
                try:
                    self._producer.produce(r.topic, r.value, r.key, on_delivery=self._on_delivery)
                except BufferError:
                    for rest in records[i:]:
                        self._drops[(rest.key.decode("utf-8", "replace"), "queue_full")] += 1
                    return
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
        if result.dropped_corrupt_bytes:
            _log.warning("spool full: dropped %d unreadable bytes", result.dropped_corrupt_bytes)

    def _enter_spooling(self, why: str) -> None:
        if self.mode != "spooling":
            _log.warning("kafka %s: %s; spooling events to disk", self.bootstrap, why)
            self.mode = "spooling"
            self._acked_since_spooling = False
            self._replay_not_before = self._clock() + self._backoff

    def _check_health(self) -> None:
        now = self._clock()
        if len(self._producer) == 0:
            self._last_progress = now
            self._stalled = False
            return
        if now - self._last_progress > self.settings.slow_after_s:
            self._enter_spooling(f"no acknowledgement for {self.settings.slow_after_s:g}s")
            self._stall()
        elif self._brokers_down:
            self._enter_spooling("all brokers are down")
            self._stall()

    def _stall(self) -> None:
        """Kafka does not answer: take back what librdkafka has not sent yet (its
        delivery reports bring it to the spool), once per stall. Besides keeping those
        records on disk rather than in memory, this matters for CPU: an idempotent
        librdkafka producer whose broker hangs with requests in flight busy-loops while
        more batches wait behind them (measured: a full core)."""
        if self._stalled or self.spool is None:  # without a spool, librdkafka keeps them
            return
        self._stalled = True
        self._replay_size = 1  # probe with one record until Kafka answers again
        self._producer.purge(in_queue=True, in_flight=False, blocking=True)

    # -- replay --

    def _replay_step(self) -> None:
        if self.mode != "spooling" or self.spool is None:
            if self.mode == "spooling" and not self._brokers_down:
                self.mode = "direct"  # no spool: records wait in librdkafka meanwhile
            return
        rb = self._replay
        if rb is not None:
            if rb.resolved < rb.produced:
                return
            self._finish_replay(rb)
            self._replay = None
        if self.spool.empty:
            # Back to direct only once Kafka has acknowledged something since spooling
            # began: an empty spool alone says nothing about a broker that hangs.
            if not self._brokers_down and self._acked_since_spooling:
                _log.info("spool replayed; back to direct delivery")
                self.mode = "direct"
                self._last_progress = self._clock()
                self._backoff = self.settings.retry_backoff_s
            return
        if self._clock() < self._replay_not_before:
            return
        if len(self._producer) > 0:
            return  # let what is in flight resolve first (see _stall)
        batch = self.spool.read(max_records=self._replay_size)
        if not batch.records:
            return
        rb = _ReplayBatch(batch=batch, status=[None] * len(batch))
        produce = self._producer.produce
        for i, (r, end) in enumerate(zip(batch.records, batch.ends, strict=True)):
            if end in self._acked_positions:  # acknowledged by an earlier, partly failed try
                rb.status[i] = True
                continue
            try:
                produce(r.topic, r.value, r.key, on_delivery=_ReplayCallback(self, rb, i, r.key))
            except BufferError:
                # librdkafka is full of direct records; replay the rest later.
                del rb.status[i:]
                del batch.records[i:]
                del batch.ends[i:]
                break
            rb.produced += 1
        self._replay = rb

    def _replay_delivered(self, rb: _ReplayBatch, index: int, key: bytes, err: Any) -> None:
        rb.resolved += 1
        ok = err is None
        rb.status[index] = ok
        if ok:
            self._sent[key.decode("utf-8", "replace")] += 1
            self._last_progress = self._clock()
            self._brokers_down = False
            self._acked_since_spooling = True
            self._stalled = False

    def _finish_replay(self, rb: _ReplayBatch) -> None:
        spool = self.spool
        assert spool is not None
        status, ends = rb.status, rb.batch.ends
        first_bad = next((i for i, ok in enumerate(status) if not ok), None)
        if first_bad is None:
            if ends:
                spool.commit(ends[-1])
            self._acked_positions.clear()
            self._backoff = self.settings.retry_backoff_s
            self._replay_size = min(self._replay_size * 4, self.settings.replay_batch)
            return
        self._replay_size = 1
        if first_bad > 0:
            spool.commit(ends[first_bad - 1])
        # Remember what Kafka already has past the failure, so the retry skips it.
        self._acked_positions = {ends[i] for i in range(first_bad, len(ends)) if status[i]}
        self._replay_not_before = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, self.settings.retry_backoff_max_s)

    # -- librdkafka callbacks (run inside poll/flush, on this thread) --

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self._sent[msg.key().decode("utf-8", "replace")] += 1
            self._last_progress = self._clock()
            self._brokers_down = False
            self._acked_since_spooling = True
            self._stalled = False
            return
        record = Record(msg.topic(), msg.key() or b"", msg.value() or b"")
        if self.spool is None:
            self._drops[(record.key.decode("utf-8", "replace"), "kafka_error")] += 1
            _log.warning("event not delivered and no spool to keep it: %s", err)
            return
        self._enter_spooling(f"delivery failed ({err.name()})")
        self._to_spool([record])
        if self._stop.is_set():
            self.report.spooled += 1

    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        code = err.code()
        if code == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_down = True
        if err.fatal():
            self._fatal = err.str()
        _log.debug("kafka error: %s", err)

    def _recreate_producer(self) -> None:
        _log.error("fatal producer error (%s): recreating the producer", self._fatal)
        self._fatal = None
        old = self._producer
        old.purge(in_queue=True, in_flight=True)
        old.poll(0.5)  # failed deliveries go to the spool
        self._close_producer()
        self._producer = self._new_producer()

    # -- shutdown --

    def _drain(self) -> None:
        deadline = self._clock() + self.settings.drain_timeout_s
        while self._queue:
            self._drain_queue(budget=10_000)
            self._producer.poll(0)
        self._flush_counts()
        # Wait for acknowledgements (and keep replaying while Kafka answers) until the
        # deadline; with every broker down there is nothing to wait for.
        while self._clock() < deadline and not self._brokers_down:
            self._producer.poll(0.01)
            self._check_health()
            self._replay_step()
            if len(self._producer) == 0 and (
                self.mode == "direct" or self.spool is None or self.spool.empty
            ):
                break
        left = len(self._producer)
        if left:
            self.report.flushed = False
            _log.warning("kafka did not acknowledge %d records in time; spooling them", left)
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer.flush(5.0)  # serves the purged records' callbacks
            if self.spool is None:
                self.report.dropped += left
        if self.spool is not None:
            self.spool.sync()

    def _emergency_spool(self) -> None:  # pragma: no cover - only after a bug
        if self.spool is None or self._producer is None:
            return
        self._producer.purge(in_queue=True, in_flight=True)
        self._producer.poll(0.5)
        self.spool.sync()

    def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None and hasattr(producer, "close"):
            producer.close()

    def _flush_counts(self) -> None:
        if self._sent or self._spooled or self._drops:
            self.stats.add_counts(self._sent, self._spooled, self._drops)
            self._sent = Counter()
            self._spooled = Counter()
            self._drops = Counter()


class _ReplayCallback:
    __slots__ = ("delivery", "index", "key", "rb")

    def __init__(self, delivery: Delivery, rb: _ReplayBatch, index: int, key: bytes) -> None:
        self.delivery = delivery
        self.rb = rb
        self.index = index
        self.key = key

    def __call__(self, err: Any, msg: Any) -> None:
        self.delivery._replay_delivered(self.rb, self.index, self.key, err)
