"""The streaming loop: Kafka in, shard state, checkpoints and window results out.

One consumer in group `group_id` subscribes to the predictions and feedback topics with the
`range` assignor, so partition p of both topics (a *shard*: a model's events are keyed by
model name, so its predictions and its labels land in the same partition number) always go
to the same replica. Per batch of at most 1000 records:

1. predictions records go to their shard (`ShardState.process_predictions`): decoded into
   columns, appended to the windows of (model, version), windows that close are evaluated;
   invalid records become dead letters;
2. feedback records wait in their shard until the predictions partition has been processed
   past their timestamp (or is caught up), then are joined to their predictions;
3. dead letters and window results are produced by a transactional producer.

Every `checkpoint_interval_s` (and when partitions are revoked, and on SIGTERM) the state of
every changed shard is written to the checkpoint topic and the consumer offsets it pairs
with are added with `send_offsets_to_transaction`; then the transaction commits. A crash
at any point therefore resumes from a checkpoint and the exact offsets it covers: dead
letters and results of the aborted transaction are never visible to `read_committed`
readers, and the replay recomputes them identically (see docs/detectors-service.md).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn

from confluent_kafka import (
    OFFSET_STORED,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from detectors.service.checkpoint import (
    Checkpoint,
    KafkaCheckpoints,
    chunk_records,
    ensure_checkpoint_topic,
)
from detectors.service.contexts import ContextRegistry, ProfileCache
from detectors.service.decisions import (
    Every,
    feedback_paused,
    loop_stalled,
    partition_lag,
    predictions_caught_up,
)
from detectors.service.exporter import (
    DetectorsCollector,
    ExportSnapshot,
    MetricsServer,
    ModelExport,
    VersionExport,
)
from detectors.service.kafka_errors import (
    AbortTransaction,
    kafka_boundary,
    kafka_error,
    reported_error,
)
from detectors.service.results import WindowResult, encode_result
from detectors.service.settings import ServiceSettings
from detectors.service.state import ConsumedRecord, DeadLetter, RecordColumns, ShardState
from driftwarden.errors import DriftwardenError, ExternalError, GiveUp, RetryLater, ServiceError
from driftwarden.kafka import (
    AUTH_ERRORS,
    admin_config,
    consumer_config,
    explain_access,
    producer_config,
)
from driftwarden.kafka_access import PasswordWatch, check_access

__all__ = ["DetectorService"]

#: librdkafka's names for a refused login (as opposed to a missing ACL).
LOGIN_ERRORS = frozenset({"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED"})

_log = logging.getLogger(__name__)

_CAUGHT_UP_CHECK_S = 0.1
_LAG_INTERVAL_S = 1.0


class DetectorService:
    """The detectors service. `run(stop)` blocks until `stop` is set (or SIGTERM via the
    CLI), then drains: checkpoints, commits and closes."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        registry: CollectorRegistry | None = None,
        contexts: ContextRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        cache_dir = settings.state_dir / "profiles" if settings.state_dir is not None else None
        self.contexts = contexts or ContextRegistry(
            settings.specs,
            cache=ProfileCache(cache_dir),
            max_categories=settings.max_categories,
            max_versions=settings.max_versions,
        )
        self.registry = registry if registry is not None else CollectorRegistry()
        self.collector = DetectorsCollector(
            self.export_snapshot, max_feature_series=settings.max_feature_series
        )
        self.registry.register(self.collector)
        self.clock = clock
        self.lock = threading.RLock()
        self.shards: dict[int, ShardState] = {}
        self.history: deque[WindowResult] = deque(maxlen=settings.history_size)
        self.windows_committed = 0
        self.committed: dict[tuple[str, int], int] = {}
        self.lag: dict[tuple[str, int], int] = {}
        self.started = threading.Event()  # Kafka clients up, loop running
        self.metrics_port: int | None = None
        self._heartbeat = clock()
        self._pending_results: list[WindowResult] = []
        self._paused: set[int] = set()
        self._caught_up_checked: dict[int, float] = {}
        self._closing = False  # closing the consumer in `_rejoin`: revoke commits nothing
        self._consumer: Any = None
        self._producer: Any = None
        self._checkpoints: KafkaCheckpoints | None = None
        self._password_watch = PasswordWatch.of(settings.kafka_security)
        self._login_refused_since: float | None = None
        # why the service stops (shown by /healthz); the loop raises it at the iteration's end
        self._failure: GiveUp | None = None
        topics = settings.topics
        self._pred_topic = topics.predictions
        self._fb_topic = topics.feedback
        self._dead_topic = topics.deadletter

    # --- lifecycle ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Load specs, serve /metrics, consume until `stop` is set, drain, close."""
        s = self.settings
        self.contexts.load()
        _log.info(
            "loaded %d model spec(s) from %s: %s",
            len(self.contexts.models),
            s.specs,
            ", ".join(sorted(self.contexts.models)) or "none",
        )
        server = MetricsServer(
            self.registry, self.health, host=s.metrics_host, port=s.metrics_port
        ).start()
        self.metrics_port = server.port
        _log.info("serving /metrics and /healthz on %s:%d", s.metrics_host, server.port)
        try:
            self._open_kafka(stop)
            _log.info(
                "replica %r of group %r on %s (transactional id %r)",
                s.instance_id,
                s.group_id,
                s.bootstrap,
                s.transactional_id,
            )
            if s.tune_gc:
                _tune_gc()
            if not stop.is_set():
                self.started.set()
                self._loop(stop)
                _log.info("stopping: draining the current batch, checkpointing and committing")
                with self.lock:
                    self._commit_or_recover()
        finally:
            self._close_kafka()
            server.close()
            _log.info("detectors stopped")

    def _open_kafka(self, stop: threading.Event) -> None:
        s = self.settings
        if s.kafka_security.protocol != "PLAINTEXT":  # refused credentials: one line, exit
            check_access(s.bootstrap, s.kafka_security, topics=(self._pred_topic, self._fb_topic))
        n_parts = self._partitions_of(self._pred_topic)
        try:
            n_ckpt = ensure_checkpoint_topic(
                s.bootstrap, s.checkpoint_topic, max(1, n_parts), security=s.kafka_security
            )
        except ExternalError as e:  # not retried here: the process exits and is restarted
            raise ServiceError(str(e)) from e
        self._checkpoints = KafkaCheckpoints(
            s.bootstrap,
            s.checkpoint_topic,
            s.group_id,
            n_ckpt,
            timeout=s.transaction_timeout_s * 2 + 30,
            security=s.kafka_security,
        )
        self._producer = Producer(
            producer_config(
                s.bootstrap,
                security=s.kafka_security,
                **{
                    "transactional.id": s.transactional_id,
                    "transaction.timeout.ms": int(s.transaction_timeout_s * 1000),
                    "linger.ms": 5,
                    "message.max.bytes": 1_000_000,
                    "logger": logging.getLogger("detectors.service.kafka"),
                },
            )
        )
        deadline = self.clock() + 120.0
        while True:
            try:
                with kafka_boundary("init_transactions"):
                    self._producer.init_transactions(30.0)
                break
            except RetryLater as e:
                if self.clock() > deadline or stop.is_set():
                    raise ServiceError(
                        f"Kafka transactions unavailable on {s.bootstrap}: {e}"
                    ) from e
                _log.warning("%s; retrying", e)
            except GiveUp as e:
                err = e.__cause__.args[0] if isinstance(e.__cause__, KafkaException) else None
                name = err.name() if err is not None and hasattr(err, "name") else ""
                if name in AUTH_ERRORS:  # e.g. no WRITE ACL on the transactional id
                    why = explain_access(name, s.kafka_security, s.transactional_id)
                    raise ServiceError(f"kafka {s.bootstrap}: {why}") from e
                raise ServiceError(f"Kafka transactions unavailable on {s.bootstrap}: {e}") from e
        self._producer.begin_transaction()
        self._subscribe()

    def _subscribe(self) -> None:
        s = self.settings
        self._consumer = Consumer(
            consumer_config(
                s.bootstrap,
                s.group_id,
                security=s.kafka_security,
                **{
                    # partition p of both topics to the same member: labels meet predictions
                    "partition.assignment.strategy": "range",
                    # static membership: a restarted replica (same instance id) takes its
                    # partitions back at once instead of after a session timeout
                    "group.instance.id": s.instance_id,
                    "isolation.level": "read_committed",
                    "max.poll.interval.ms": 300_000,
                    # bigger fetches: one partition at ~1 kB/event needs more than the
                    # default 1 MB per request to keep a core busy
                    "max.partition.fetch.bytes": 8 * 1024 * 1024,
                    "logger": logging.getLogger("detectors.service.kafka"),
                },
            )
        )
        self._consumer.subscribe(
            [self._pred_topic, self._fb_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _login_refused_while_running(self, err: Any) -> bool:
        """True for a refused login (not a missing ACL) after the service was running, for
        `login_grace_s`: a password rotation in progress, where the broker's credential and
        the mounted Secret change at different instants. librdkafka logs in again with the
        current password (`_follow_password`); after the grace the service stops."""
        if err.name() not in LOGIN_ERRORS or not self.started.is_set():
            return False
        now = self.clock()
        if self._login_refused_since is None:
            self._login_refused_since = now
            _log.warning(
                "kafka refused the login (%s): waiting up to %.0fs for it to pass (a password "
                "rotation in progress?)",
                err.str(),
                self.settings.login_grace_s,
            )
        return now - self._login_refused_since < self.settings.login_grace_s

    def _follow_password(self, now: float) -> None:
        """A rotated password file (a Secret) goes to every long-lived client, used at their
        next (re)authentication: no restart (docs/security.md)."""
        clients = (self._consumer, self._producer, self._checkpoints)
        if self._password_watch is not None and self._password_watch.rotate(now, clients):
            self._login_refused_since = None

    def _rejoin(self) -> None:
        """Close the consumer without committing and subscribe afresh (same static member
        id, so the group hands the same partitions back at once)."""
        consumer = self._consumer
        self._consumer = None
        self._closing = True
        try:
            consumer.close()
        except Exception as e:  # the consumer is being replaced anyway
            _log.warning("closing the consumer: %s", e)
        finally:
            self._closing = False
        with self.lock:
            self.shards.clear()
        self._subscribe()

    def _partitions_of(self, topic: str) -> int:
        s = self.settings
        admin = AdminClient(admin_config(s.bootstrap, security=s.kafka_security))
        try:
            meta = admin.list_topics(topic, timeout=30).topics.get(topic)
        except Exception as e:  # KafkaException for an unreachable broker
            raise ServiceError(f"Kafka at {self.settings.bootstrap} is unreachable: {e}") from e
        if meta is None or meta.error is not None:
            return 0
        return len(meta.partitions)

    def _close_kafka(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()  # leaves the group (on_revoke commits nothing new)
            except Exception as e:  # closing after a fatal error must not hide it
                _log.warning("closing the consumer: %s", e)
            self._consumer = None
        if self._producer is not None:
            with contextlib.suppress(Exception):  # nothing to abort is fine
                self._producer.abort_transaction(10.0)
            try:
                self._producer.flush(10.0)
            except Exception as e:  # a fenced producer raises its fatal error again: the
                _log.warning("flushing the producer: %s", e)  # one being raised is the news
            self._producer = None
        if self._checkpoints is not None:
            self._checkpoints.close()
            self._checkpoints = None

    # --- the loop ----------------------------------------------------------------------

    def _loop(self, stop: threading.Event) -> None:
        s = self.settings
        start = self.clock()
        lag_due = Every(_LAG_INTERVAL_S, start)
        commit_due = Every(s.checkpoint_interval_s, start)
        reload_due = Every(s.spec_reload_s, start)
        while not stop.is_set():
            t0 = self.clock()
            msgs = self._consumer.consume(num_messages=s.max_batch, timeout=s.poll_timeout_s)
            self._raise_failure()  # recorded by a rebalance callback inside `consume`
            now = t1 = self.clock()
            with self.lock:
                if msgs:
                    self._handle(msgs)
                t2 = self.clock()
                self._feedback_round()
                t3 = self.clock()
                if lag_due.due(now):
                    self._update_lag()
                rejoin = False
                if commit_due.due(now):
                    rejoin = not self._commit_or_recover()
                t4 = self.clock()
            if rejoin:
                self._rejoin()
            if t4 - t0 > 1.0:
                _log.warning(
                    "slow iteration: %.2fs (consume %.2fs for %d records, process %.2fs, "
                    "feedback %.2fs, commit %.2fs)",
                    t4 - t0,
                    t1 - t0,
                    len(msgs),
                    t2 - t1,
                    t3 - t2,
                    t4 - t3,
                )
            if reload_due.due(now):
                self._reload_specs()
            self._follow_password(now)
            self._heartbeat = now
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise ServiceError(str(self._failure)) from self._failure

    def _handle(self, msgs: list[Any]) -> None:
        by_tp = _one_partition(msgs)
        if by_tp is None:
            by_tp = self._by_partition(msgs)
            if by_tp is None:
                return
        if by_tp:
            self._login_refused_since = None  # records arrive: logged in again
        for (topic, p), recs in by_tp.items():
            shard = self.shards.get(p)
            if shard is None:
                continue  # a partition revoked while its records were in flight
            if topic == self._pred_topic:
                if shard.pred_offset is not None:
                    recs = recs.since(shard.pred_offset)
                results, dead = shard.process_predictions(recs)
                self._emit(results, dead)
            elif topic == self._fb_topic:
                floor = shard.fb_offset if shard.fb_offset is not None else -1
                if shard.pending_feedback:
                    floor = max(floor, shard.pending_feedback[-1].offset + 1)
                shard.queue_feedback(recs.since(floor).records())
                self._pace_feedback(p, shard)

    def _by_partition(self, msgs: list[Any]) -> dict[tuple[str, int], RecordColumns] | None:
        """The records of `msgs` by (topic, partition), message by message (errors
        reported; None after one that stops the service)."""
        by_tp: dict[tuple[str, int], list[ConsumedRecord]] = {}
        for m in msgs:
            err = m.error()
            if err is not None:
                failure = reported_error(err, "Kafka consumer")
                if isinstance(failure, GiveUp) and self._login_refused_while_running(err):
                    continue
                if isinstance(failure, GiveUp):
                    self._failure = self._failure or failure
                    return None
                if failure is not None:
                    _log.warning("%s", failure)
                continue
            ts = m.timestamp()
            by_tp.setdefault((m.topic(), m.partition()), []).append(
                ConsumedRecord(m.offset(), m.key(), m.value() or b"", ts[1] if ts[0] else 0)
            )
        return {tp: RecordColumns.of(recs) for tp, recs in by_tp.items()}

    def _feedback_round(self) -> None:
        """Process waiting feedback: first what the predictions frontier allows; for the
        rest, ask the broker (not the fetcher's cache, which can be stale) whether the
        predictions partition is caught up, at most every `_CAUGHT_UP_CHECK_S`."""
        now = self.clock()
        for p, shard in self.shards.items():
            if shard.pending_feedback:
                results, dead = shard.process_feedback(caught_up=False)
                self._emit(results, dead)
            if (
                shard.pending_feedback
                and now - self._caught_up_checked.get(p, -1e9) >= _CAUGHT_UP_CHECK_S
            ):
                self._caught_up_checked[p] = now
                tp = TopicPartition(self._pred_topic, p)
                try:
                    assert self._checkpoints is not None
                    hi = self._checkpoints.end_offset(self._pred_topic, p)
                except Exception as e:  # KafkaException: broker unreachable; retry next round
                    _log.debug("watermarks of %s[%d]: %s", self._pred_topic, p, e)
                    hi = -1
                nxt = shard.pred_offset
                if nxt is None:
                    pos = self._consumer.position([tp])[0].offset
                    nxt = pos if pos >= 0 else 0
                if predictions_caught_up(hi, nxt):
                    results, dead = shard.process_feedback(caught_up=True)
                    self._emit(results, dead)
            self._pace_feedback(p, shard)

    def _pace_feedback(self, p: int, shard: ShardState) -> None:
        """Pause or resume the shard's feedback partition (`decisions.feedback_paused`)."""
        paused = p in self._paused
        pause = feedback_paused(
            len(shard.pending_feedback), paused, self.settings.feedback_queue_max
        )
        if pause != paused:
            self._set_paused(p, pause)

    def _set_paused(self, p: int, paused: bool) -> None:
        tp = [TopicPartition(self._fb_topic, p)]
        if paused:
            self._consumer.pause(tp)
            self._paused.add(p)
        else:
            self._consumer.resume(tp)
            self._paused.discard(p)

    def _emit(self, results: list[WindowResult], dead: list[DeadLetter]) -> None:
        for d in dead:
            self._produce(
                self._dead_topic,
                d.key,
                d.value,
                headers=[
                    ("driftwarden.reason", d.reason.encode()),
                    ("driftwarden.detail", d.detail[:1000].encode()),
                    ("driftwarden.model", d.model.encode()),
                    ("driftwarden.source", f"{d.topic}:{d.partition}:{d.offset}".encode()),
                ],
            )
        for r in results:
            _log.info("%s", _describe(r))
            if self.settings.publish_results:
                self._produce(self.settings.results_topic, r.model.encode(), encode_result(r))
            self._pending_results.append(r)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, **kwargs: Any) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, **kwargs)
                return
            except BufferError:  # librdkafka's queue is full: let it drain
                self._producer.poll(0.05)
            except KafkaException as e:  # the producer is fenced or failed: stop
                self._give_up(str(kafka_error(e, f"producing to {topic}")), e)

    # --- checkpoints and transactions --------------------------------------------------

    def _commit_or_recover(self) -> bool:
        """Commit; when the transaction must be aborted, abort it and drop every shard.
        Returns False after an abort: the caller re-joins the group (`_rejoin`), and the
        shards come back from their checkpoints through the normal assignment path."""
        try:
            self._commit()
            return True
        except AbortTransaction as e:
            _log.warning("transaction aborted (%s); resuming from the last checkpoints", e)
            self._abort_and_drop()
            return False

    def _abort_and_drop(self) -> None:
        try:
            self._producer.abort_transaction(30.0)
        except Exception as e:  # nothing is left to try: the producer is unusable
            self._give_up(f"cannot abort the Kafka transaction: {e}", e)
        self._pending_results.clear()
        self._producer.begin_transaction()
        self.shards.clear()
        self._paused.clear()
        self.committed.clear()
        self.lag.clear()
        if self._checkpoints is not None:
            self._checkpoints.generations.clear()

    def _commit(self) -> None:
        """Checkpoint changed shards and commit them with their offsets (one transaction).

        Raises `AbortTransaction` when the transaction must be aborted, and `ServiceError`
        (after recording the `GiveUp`) when the producer cannot go on."""
        assert self._checkpoints is not None
        ckpt = self._checkpoints
        s = self.settings
        offsets: list[TopicPartition] = []
        written: dict[int, tuple[int, int]] = {}
        for p, shard in self.shards.items():
            if not shard.dirty:
                continue
            prev = ckpt.generations.get(p)
            gen = (prev[0] if prev else 0) + 1
            records = chunk_records(s.group_id, p, shard.state(), gen, previous=prev)
            part = ckpt.partition_of(p)
            for key, value in records:
                self._produce(s.checkpoint_topic, key.encode(), value, partition=part)
            chunk_prefix = f"{s.group_id}/{p}/{gen}/"
            written[p] = (
                gen,
                sum(1 for k, v in records if v is not None and k.startswith(chunk_prefix)),
            )
            if shard.pred_offset is not None:
                offsets.append(TopicPartition(self._pred_topic, p, shard.pred_offset))
            if shard.fb_offset is not None:
                offsets.append(TopicPartition(self._fb_topic, p, shard.fb_offset))
        if not written and not self._pending_results:
            return
        try:
            if offsets:
                self._retry(
                    "send_offsets_to_transaction",
                    lambda: self._producer.send_offsets_to_transaction(
                        offsets, self._consumer.consumer_group_metadata(), 30.0
                    ),
                )
            self._retry("commit_transaction", lambda: self._producer.commit_transaction(30.0))
        except GiveUp as e:
            self._give_up(f"Kafka transaction failed: {e}", e)
        for p, gen_chunks in written.items():
            ckpt.generations[p] = gen_chunks
            self.shards[p].dirty = False
        for tp in offsets:
            self.committed[(tp.topic, tp.partition)] = tp.offset
        self.history.extend(self._pending_results)
        self.windows_committed += len(self._pending_results)
        self._pending_results.clear()
        self._producer.begin_transaction()

    @staticmethod
    def _retry(what: str, call: Callable[[], Any], attempts: int = 10) -> None:
        """Call a transactional API, again while it fails with `RetryLater` (a timeout on a
        slow broker): `GiveUp` after `attempts`. `AbortTransaction` and `GiveUp` propagate."""
        for attempt in range(attempts):
            try:
                with kafka_boundary(what):
                    call()
                return
            except AbortTransaction:
                raise
            except RetryLater as e:
                if attempt == attempts - 1:
                    raise GiveUp(f"{e} (after {attempts} attempts)") from e
                _log.warning("%s; retrying", e)

    def _give_up(self, message: str, cause: BaseException) -> NoReturn:
        """Record why the service stops (/healthz shows it) and raise it as the one-line
        `ServiceError` of the entry point, chained: ServiceError <- GiveUp <- `cause`."""
        failure = GiveUp(message)
        failure.__cause__ = cause
        if self._failure is None:  # the first one is the news; later ones follow from it
            self._failure = failure
        raise ServiceError(message) from failure

    def _load_shards(self, partitions: list[int]) -> dict[int, ShardState]:
        """Shard states from their checkpoints (fresh ones where there is none)."""
        assert self._checkpoints is not None
        if not partitions:
            return {}
        deadline = self.clock() + self.settings.transaction_timeout_s * 2 + 30
        while True:
            try:
                found: dict[int, Checkpoint | None] = self._checkpoints.load_many(partitions)
                break
            except RetryLater as e:
                if self.clock() > deadline:
                    raise
                _log.warning("loading checkpoints of partitions %s: %s; retrying", partitions, e)
        shards: dict[int, ShardState] = {}
        for p, cp in sorted(found.items()):
            if cp is None:
                _log.info("partition %d: no checkpoint, starting from the group's offsets", p)
                shards[p] = ShardState(p, self.contexts)
                continue
            shard = ShardState.from_state(cp.state, self.contexts)
            _log.info(
                "partition %d: restored checkpoint %d (predictions offset %s, feedback offset %s, %d model(s))",
                p,
                cp.gen,
                shard.pred_offset,
                shard.fb_offset,
                len(shard.models),
            )
            shards[p] = shard
        return shards

    # --- rebalances ----------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        with self.lock:
            try:
                wanted = sorted({tp.partition for tp in partitions})
                self.shards.update(self._load_shards([p for p in wanted if p not in self.shards]))
                for tp in partitions:
                    shard = self.shards[tp.partition]
                    off = shard.pred_offset if tp.topic == self._pred_topic else shard.fb_offset
                    # no checkpoint: start from the group's committed offset
                    tp.offset = off if off is not None else OFFSET_STORED
                consumer.assign(partitions)
                _log.info("assigned partitions %s", wanted)
            except Exception as e:  # an exception in a librdkafka callback is lost otherwise
                if self._failure is None:
                    self._failure = GiveUp(f"partition assignment failed: {e}")
                    self._failure.__cause__ = e
                _log.exception("partition assignment failed")
                consumer.assign([])

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        with self.lock:
            revoked = {tp.partition for tp in partitions}
            try:
                if self._producer is not None and not self._closing:
                    self._commit_or_recover()
            except DriftwardenError as e:
                _log.error("checkpoint on revoke failed: %s", e)
            for p in revoked:
                self.shards.pop(p, None)
                self._paused.discard(p)
                if self._checkpoints is not None:
                    self._checkpoints.generations.pop(p, None)
            for key in [k for k in self.committed if k[1] in revoked]:
                self.committed.pop(key, None)
                self.lag.pop(key, None)
            if revoked:
                _log.info("revoked partitions %s", sorted(revoked))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions taken away without a revoke (session expired): everything since the
        last commit is void; the next assignment restores the checkpoints."""
        with self.lock:
            _log.warning(
                "lost partitions %s (session expired): dropping uncommitted work",
                sorted({tp.partition for tp in partitions}),
            )
            self._abort_and_drop()

    # --- specs -------------------------------------------------------------------------

    def _reload_specs(self) -> None:
        # under the lock: /healthz and the collector read the registry (a reload only
        # stats the files unless one changed)
        with self.lock:
            try:
                changed = self.contexts.reload()
            except DriftwardenError as e:
                _log.error("reloading specs: %s", e)
                return
            if not changed:
                return
            _log.info("specs changed: %s", ", ".join(sorted(changed)))
            for shard in self.shards.values():
                for model in changed:
                    shard.refresh(model)

    # --- observability -------------------------------------------------------------------

    def _update_lag(self) -> None:
        for p in self.shards:
            for topic in (self._pred_topic, self._fb_topic):
                lo, hi = self._consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
                lag = partition_lag(lo, hi, self.committed.get((topic, p)))
                if lag is not None:
                    self.lag[(topic, p)] = lag

    @property
    def windows_closed(self) -> int:
        """Windows evaluated (and exported) so far, committed or not yet committed."""
        return self.windows_committed + len(self._pending_results)

    def export_snapshot(self) -> ExportSnapshot:
        snap = ExportSnapshot()
        with self.lock:
            for shard in self.shards.values():
                for name, m in shard.models.items():
                    versions: dict[str, VersionExport] = {}
                    for code, w in m.windows.items():
                        versions[m.version_name(code)] = VersionExport(windows_total=w.seq)
                    for (version, kind), r in m.latest.items():
                        v = versions.setdefault(version, VersionExport())
                        setattr(v, kind, r)
                    me = ModelExport(name, m.processed, dict(m.invalid), m.labels_joined, versions)
                    if name in snap.models:
                        snap.models[name].merge(me)
                    else:
                        snap.models[name] = me
                for reason, n in shard.unknown_invalid.items():
                    snap.unknown_invalid[reason] = snap.unknown_invalid.get(reason, 0) + n
            snap.lag = dict(self.lag)
        return snap

    def health(self) -> tuple[bool, dict[str, Any]]:
        age = self.clock() - self._heartbeat
        failure = self._failure
        ok = failure is None and not loop_stalled(
            self.started.is_set(), age, self.settings.poll_timeout_s
        )
        with self.lock:
            models = {}
            for shard in self.shards.values():
                for name, m in shard.models.items():
                    models[name] = {
                        "partition": shard.partition,
                        "versions": m.windows_total,
                        "processed": m.processed,
                        "labels": m.join.counts.as_dict() if m.join is not None else None,
                        "pending_labels": len(m.join) if m.join is not None else 0,
                    }
            detail = {
                "status": "ok" if ok else "failing",
                "started": self.started.is_set(),
                "loop_age_s": round(age, 3),
                "error": str(failure) if failure is not None else None,
                "partitions": sorted(self.shards),
                "models": models,
                "specs": sorted(self.contexts.models),
                "spec_errors": dict(self.contexts.errors),
                "capped_features": dict(self.collector.capped),
                "max_feature_series": self.settings.max_feature_series,
                "windows_committed": self.windows_committed,
            }
        return ok, detail


_error = Message.error
_topic = Message.topic
_partition = Message.partition


def _one_partition(msgs: list[Any]) -> dict[tuple[str, int], RecordColumns] | None:
    """`msgs` as columns when they all come from one partition and none is an error (the
    usual batch), one C-level pass per field; None otherwise (`_by_partition`)."""
    n = len(msgs)
    if not n or any(map(_error, msgs)):  # (a KafkaError is true; comparing it fails)
        return None
    topics = list(map(_topic, msgs))
    parts = list(map(_partition, msgs))
    if topics.count(topics[0]) != n or parts.count(parts[0]) != n:
        return None
    values = list(map(Message.value, msgs))
    if not all(values):  # a tombstone (null value) is an empty, invalid event
        values = [v or b"" for v in values]
    stamps = [t if k else 0 for k, t in map(Message.timestamp, msgs)]
    offsets = list(map(Message.offset, msgs))
    keys = list(map(Message.key, msgs))
    return {(topics[0], parts[0]): RecordColumns(offsets, keys, values, stamps)}


def _tune_gc() -> None:
    """Keep Python's cyclic garbage collector off the hot path.

    The loop allocates and frees ~10 small objects per event (decoded events, tuples,
    Kafka messages), none of them in reference cycles; with the default thresholds that
    triggers collections that walk the millions of long-lived objects numpy, pandas and
    scipy created at import, measured at ~20 % of the service's CPU. Freezing what exists
    after start-up removes those objects from every later collection, and a larger young
    generation makes collections rarer. Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _describe(r: WindowResult) -> str:
    if r.kind == "performance":
        perf = ", ".join(f"{k} {v:.3f}" for k, v in r.performance.items() if v is not None)
        return f"labelled window {r.model}/{r.version} #{r.seq}: {r.rows} rows, {perf}"
    drifted = [f.name for f in r.features if f.drift_detected]
    share = f"{r.drift_share:.2f}" if r.drift_share is not None else "n/a"
    return f"window {r.model}/{r.version} #{r.seq}: {r.rows} rows, drift share {share}" + (
        f" ({', '.join(drifted)})" if drifted else ""
    )
