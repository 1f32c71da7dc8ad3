"""The state of one shard (one partition number of the predictions and feedback topics):
every model seen there, its windows per version, its label join, its counters.

Pure: records in, window results and dead letters out; Kafka, HTTP and disk live in
`consumer.py`. Everything here is a function of the partitions' record order, which is
what makes a checkpoint plus a replay equal to an uninterrupted run.

With the spec's `drift.sequential.enabled` (and calibrated thresholds), each (model,
version) also has a `detectors.sequential.SequentialDetector` fed with every closed drift
window's feature scores; its view after the window is put on the window's result
(`sequential_score`, `sequential_drift`) and its state (a few floats per feature) is part
of the model's checkpoint state, so a restore plus a replay equals an uninterrupted run.

A shard's state is serialised by `ShardState.state()` into plain msgpack-able values
(numpy arrays as dtype/shape/bytes) and restored by `ShardState.from_state()`; the
checkpoint store writes it together with the offsets it corresponds to.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import msgspec
import numpy as np

from detectors.sequential import SequentialDetector
from detectors.service.columns import Invalid, ModelCodec
from detectors.service.labels import LabelJoin, LabelledData, LabelledWindow
from detectors.service.results import WindowResult, decode_result, encode_result
from detectors.service.windows import EventClock, VersionWindow, WindowData, WindowPolicy
from driftwarden.schema import EventError, decode_feedback, decode_prediction
from driftwarden.spec import ModelSpec

if TYPE_CHECKING:
    from detectors.calibration import Calibration
    from detectors.drift import DriftConfig

__all__ = [
    "UNKNOWN_MODEL",
    "ConsumedRecord",
    "Contexts",
    "DeadLetter",
    "ModelContext",
    "ModelState",
    "RecordColumns",
    "ShardState",
]

_log = logging.getLogger(__name__)

#: `model` label of invalid events whose model cannot be told (bounded cardinality).
UNKNOWN_MODEL = "unknown"


class ConsumedRecord(NamedTuple):
    """One record consumed from the predictions or feedback topic, as the shard sees it
    (a tuple: one is built per record; not the collector's record to produce)."""

    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int = 0


class RecordColumns:
    """Consecutive records of one partition as columns (one list per field): what the
    consumer hands over without building a `ConsumedRecord` per record. Indexing gives a
    `ConsumedRecord` (for the few that become dead letters)."""

    __slots__ = ("keys", "offsets", "timestamps_ms", "values")

    def __init__(
        self,
        offsets: list[int],
        keys: list[bytes | None],
        values: list[bytes],
        timestamps_ms: list[int],
    ) -> None:
        self.offsets = offsets
        self.keys = keys
        self.values = values
        self.timestamps_ms = timestamps_ms

    @classmethod
    def of(cls, records: Sequence[ConsumedRecord]) -> RecordColumns:
        if not records:
            return cls([], [], [], [])
        offsets, keys, values, ts = (list(c) for c in zip(*records, strict=True))
        return cls(offsets, keys, values, ts)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> ConsumedRecord:
        return ConsumedRecord(self.offsets[i], self.keys[i], self.values[i], self.timestamps_ms[i])

    def records(self) -> list[ConsumedRecord]:
        return list(map(ConsumedRecord, self.offsets, self.keys, self.values, self.timestamps_ms))

    def since(self, offset: int) -> RecordColumns:
        """The records at `offset` or later."""
        offsets = self.offsets
        if not offsets or offsets[0] >= offset:
            return self
        keep = [i for i, o in enumerate(offsets) if o >= offset]
        return RecordColumns(
            [offsets[i] for i in keep],
            [self.keys[i] for i in keep],
            [self.values[i] for i in keep],
            [self.timestamps_ms[i] for i in keep],
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record to send to the dead-letter topic (original key and value kept)."""

    topic: str  # "predictions" or "feedback": which input it came from
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    model: str
    reason: str
    detail: str


class ModelContext(Protocol):
    """What the shard needs from the statistics side for one model (see evaluate.py)."""

    spec: ModelSpec
    fingerprint: str
    config: DriftConfig  # its `calibration` feeds the sequential detector

    def new_codec(self) -> ModelCodec: ...

    def evaluate_window(
        self, codec: ModelCodec, data: WindowData, partition: int
    ) -> WindowResult: ...

    def evaluate_labelled(
        self, codec: ModelCodec, data: LabelledData, partition: int
    ) -> WindowResult: ...


class Contexts(Protocol):
    def get(self, model: str) -> ModelContext | None: ...


class ModelState:
    """One model inside one shard."""

    def __init__(self, ctx: ModelContext, partition: int) -> None:
        self.ctx = ctx
        self.partition = partition
        spec = ctx.spec
        self.codec = ctx.new_codec()
        self.policy = WindowPolicy.from_spec(spec.window)
        self.windows: dict[int, VersionWindow] = {}
        self.join: LabelJoin | None = (
            LabelJoin(spec.labels.join_ttl_s, spec.labels.max_pending)
            if self.codec.keep_ids
            else None
        )
        self.labelled: dict[int, LabelledWindow] = {}
        self.processed = 0
        self.invalid: Counter[str] = Counter()
        self.latest: dict[tuple[str, str], WindowResult] = {}  # (version, kind) -> result
        self.calibration = _sequential_calibration(ctx)
        self.sequential: dict[int, SequentialDetector] = {}  # version code -> detector

    @property
    def model(self) -> str:
        return self.ctx.spec.model

    def version_name(self, code: int) -> str:
        return self.codec.versions.values[code]

    def window(self, version: int) -> VersionWindow:
        w = self.windows.get(version)
        if w is None:
            w = VersionWindow(
                version, self.policy, len(self.codec.numerical), len(self.codec.categorical)
            )
            self.windows[version] = w
        return w

    def labelled_window(self, version: int) -> LabelledWindow:
        w = self.labelled.get(version)
        if w is None:
            w = LabelledWindow(version, self.policy.rows, self.ctx.spec.window.duration_s)
            self.labelled[version] = w
        return w

    def sequential_detector(self, version: int) -> SequentialDetector | None:
        if self.calibration is None:
            return None
        d = self.sequential.get(version)
        if d is None:
            d = SequentialDetector(
                self.calibration, allowance=self.ctx.spec.drift.sequential.allowance
            )
            self.sequential[version] = d
        return d

    def with_sequential(self, data: WindowData, result: WindowResult) -> WindowResult:
        """Feed the window's feature scores to its version's sequential detector (when the
        spec enables it) and return the result with the detector's view added."""
        det = self.sequential_detector(data.version)
        if det is None or not result.features:
            return result
        tested = _values_tested(self.codec, data)
        det.update(
            {
                f.name: (f.score, tested[f.name])
                for f in result.features
                if f.skipped is None and f.score is not None and f.name in tested
            }
        )
        scores, alarms = det.scores, det.alarms
        features = [
            msgspec.structs.replace(
                f, sequential_score=scores[f.name], sequential_drift=alarms[f.name]
            )
            if f.name in scores
            else f
            for f in result.features
        ]
        return msgspec.structs.replace(
            result,
            features=features,
            sequential_score=det.dataset_score,
            sequential_drift=det.dataset_alarm,
        )

    @property
    def windows_total(self) -> dict[str, int]:
        return {self.version_name(v): w.seq for v, w in self.windows.items() if w.seq}

    @property
    def labels_joined(self) -> int:
        return self.join.counts.joined if self.join is not None else 0

    # --- checkpoint state --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "fingerprint": self.ctx.fingerprint,
            "vocab": self.codec.vocab_state(),
            "windows": [w.state() for w in self.windows.values()],
            "join": self.join.state() if self.join is not None else None,
            "labelled": [w.state() for w in self.labelled.values()],
            "processed": self.processed,
            "invalid": dict(self.invalid),
            "latest": [encode_result(r) for r in self.latest.values()],
            "sequential": [{"version": v, "state": d.state()} for v, d in self.sequential.items()],
        }

    @classmethod
    def from_state(cls, ctx: ModelContext, partition: int, state: dict[str, Any]) -> ModelState:
        """Restore; when the spec changed since, keep counters, window numbers and the last
        results, and start the open windows and the label join afresh."""
        m = cls(ctx, partition)
        m.processed = state["processed"]
        m.invalid = Counter(state["invalid"])
        for raw in state["latest"]:
            r = decode_result(raw)
            m.latest[(r.version, r.kind)] = r
        versions = state["vocab"]["versions"]
        if state["fingerprint"] == ctx.fingerprint:
            m.codec.restore_vocab(state["vocab"])
            n_num, n_cat = len(m.codec.numerical), len(m.codec.categorical)
            for ws in state["windows"]:
                w = VersionWindow.from_state(ws, m.policy, n_num, n_cat)
                m.windows[w.version] = w
            if state["join"] is not None and m.join is not None:
                spec = ctx.spec
                m.join = LabelJoin.from_state(
                    state["join"], spec.labels.join_ttl_s, spec.labels.max_pending
                )
            for ls in state["labelled"]:
                lw = LabelledWindow.from_state(ls, m.policy.rows, ctx.spec.window.duration_s)
                m.labelled[lw.version] = lw
            for ss in state.get("sequential", ()):  # absent in checkpoints of older releases
                det = m.sequential_detector(ss["version"])
                if det is not None:
                    det.restore(ss["state"])
        else:
            # a new spec: same version names, same window numbering, empty windows and
            # sequential detectors started afresh (their calibration may have changed)
            for ws in state["windows"]:
                code = m.codec.versions.code(versions[ws["version"]])
                m.window(code).seq = ws["seq"]
            for ls in state["labelled"]:
                code = m.codec.versions.code(versions[ls["version"]])
                m.labelled_window(code).seq = ls["seq"]
            if state["join"] is not None and m.join is not None:
                m.join.counts.joined = state["join"]["counts"]["joined"]
        return m


class ShardState:
    """All models of one shard, plus the positions its checkpoint records.

    `pred_offset` / `fb_offset` are the next offsets to process in the predictions and
    feedback partitions: a checkpoint of this state pairs with exactly those offsets.
    Feedback records wait (`pending_feedback`, not checkpointed) until the predictions
    partition has been processed past their timestamp or is caught up, so a label is
    processed after its prediction whatever the consumer's fetch order was.
    """

    def __init__(self, partition: int, contexts: Contexts) -> None:
        self.partition = partition
        self.contexts = contexts
        self.models: dict[str, ModelState] = {}
        self.clock = EventClock()
        self.pred_offset: int | None = None  # None: no checkpoint, start where the group says
        self.fb_offset: int | None = None
        self.frontier_ms = -1  # largest predictions record timestamp processed
        self.unknown_invalid: Counter[str] = Counter()  # invalid events of unknown models
        self.pending_feedback: deque[ConsumedRecord] = deque()
        self.dirty = False

    # --- models ------------------------------------------------------------------------

    def model_state(self, model: str) -> ModelState | None:
        m = self.models.get(model)
        if m is not None:
            return m
        ctx = self.contexts.get(model)
        if ctx is None:
            return None
        m = ModelState(ctx, self.partition)
        self.models[model] = m
        return m

    def refresh(self, model: str) -> None:
        """The model's spec changed (or was removed): rebuild its state from the new spec."""
        m = self.models.get(model)
        if m is None:
            return
        ctx = self.contexts.get(model)
        if ctx is None:
            del self.models[model]
            return
        if ctx.fingerprint != m.ctx.fingerprint:
            self.models[model] = ModelState.from_state(ctx, self.partition, m.state())
            self.dirty = True

    # --- predictions -------------------------------------------------------------------

    def process_predictions(
        self, records: Sequence[ConsumedRecord] | RecordColumns
    ) -> tuple[list[WindowResult], list[DeadLetter]]:
        """Process consecutive records of the predictions partition."""
        if not isinstance(records, RecordColumns):
            records = RecordColumns.of(records)
        if not records:
            return [], []
        n = len(records)
        dead: list[DeadLetter] = []
        groups: dict[str, list[int]] = {}
        unknown: list[int] = []
        known: dict[bytes | None, str | None] = {}

        def resolve(key: bytes | None) -> str | None:
            if key not in known:
                model = _key_model(key)
                known[key] = model if model is not None and self.model_state(model) else None
            return known[key]

        keys = records.keys
        values = records.values
        single = resolve(keys[0]) if len(set(keys)) == 1 else None
        if single is not None:  # the usual case: one model per partition
            groups[single] = list(range(n))
        else:
            for pos, key in enumerate(keys):
                model = resolve(key)
                if model is not None:
                    groups.setdefault(model, []).append(pos)
                else:
                    unknown.append(pos)
        # records whose key is not a known model: find the model in the event itself
        for pos in unknown:
            self._route_unkeyed(records, pos, groups, dead)
        ts_all = np.full(n, -np.inf)
        decoded: list[tuple[ModelState, Any, np.ndarray]] = []
        while groups:
            model, positions = groups.popitem()
            state = self.model_state(model)
            if state is None:  # a foreign event named a model without a spec
                for pos in positions:
                    self._dead(
                        dead,
                        "predictions",
                        records[pos],
                        model,
                        "unknown_model",
                        f"no spec for model {model!r}",
                    )
                continue
            batch, invalid, foreign = state.codec.decode(
                values if len(positions) == n else [values[p] for p in positions]
            )
            pos_arr = np.asarray(positions, dtype=np.int64)
            for bad in invalid:
                self._invalid(dead, state, records[positions[bad.index]], bad)
            for idx, other in foreign:
                self._dead(
                    dead,
                    "predictions",
                    records[positions[idx]],
                    state.model,
                    "key_mismatch",
                    f"record key is {model!r} but the event is for model {other!r}",
                )
            if batch.rows:
                shard_pos = pos_arr[batch.index]
                ts_all[shard_pos] = batch.ts
                decoded.append((state, batch, shard_pos))
        marks = self.clock.advance(ts_all)
        offsets_all = np.array(records.offsets, dtype=np.int64)
        results: list[WindowResult] = []
        fed: set[tuple[str, int]] = set()
        for state, batch, shard_pos in decoded:
            state.processed += batch.rows
            versions = np.unique(batch.version)
            for v in versions.tolist():
                rows = (
                    np.flatnonzero(batch.version == v)
                    if versions.shape[0] > 1
                    else np.arange(batch.rows)
                )
                positions = shard_pos[rows]
                closed = state.window(v).feed(batch, rows, positions, offsets_all[positions], marks)
                fed.add((state.model, v))
                results.extend(self._evaluate(state, w) for w in closed)
            if state.join is not None and batch.ids is not None:
                state.join.add(batch.ids, batch.version, batch.score, batch.label, batch.ts)
        for state in self.models.values():
            for v, w in state.windows.items():
                if (state.model, v) not in fed:
                    results.extend(self._evaluate(state, c) for c in w.tick(marks))
            if state.join is not None:
                # memory reclamation only; whether a label joins is decided by event times
                state.join.expire(self.clock.now - _EXPIRY_GRACE_S)
        self.pred_offset = records.offsets[-1] + 1
        self.frontier_ms = max(self.frontier_ms, max(records.timestamps_ms))
        self.dirty = True
        return results, dead

    def _route_unkeyed(
        self,
        records: RecordColumns,
        pos: int,
        groups: dict[str, list[int]],
        dead: list[DeadLetter],
    ) -> None:
        rec = records[pos]
        try:
            ev = decode_prediction(rec.value)
        except EventError as e:
            model = _key_model(rec.key)
            label = model if model is not None and model in self.models else UNKNOWN_MODEL
            self._dead(dead, "predictions", rec, label, e.reason, e.detail)
            return
        if self.model_state(ev.model) is None:
            self._dead(
                dead,
                "predictions",
                rec,
                UNKNOWN_MODEL,
                "unknown_model",
                f"no spec for model {ev.model!r}",
            )
            return
        groups.setdefault(ev.model, []).append(pos)
        groups[ev.model].sort()

    def _evaluate(self, state: ModelState, data: WindowData) -> WindowResult:
        result = state.ctx.evaluate_window(state.codec, data, self.partition)
        result = state.with_sequential(data, result)
        state.latest[(result.version, result.kind)] = result
        return result

    # --- feedback ----------------------------------------------------------------------

    def queue_feedback(self, records: Sequence[ConsumedRecord]) -> None:
        self.pending_feedback.extend(records)

    def process_feedback(self, caught_up: bool) -> tuple[list[WindowResult], list[DeadLetter]]:
        """Process waiting feedback records whose predictions have been processed: those
        with a timestamp at or before the predictions frontier, or all when the predictions
        partition is caught up."""
        ready: list[ConsumedRecord] = []
        q = self.pending_feedback
        while q and (caught_up or q[0].timestamp_ms <= self.frontier_ms):
            ready.append(q.popleft())
        if not ready:
            return [], []
        results: list[WindowResult] = []
        dead: list[DeadLetter] = []
        by_model: dict[str, list[tuple[ConsumedRecord, Any]]] = {}
        for rec in ready:
            try:
                ev = decode_feedback(rec.value)
            except EventError as e:
                model = _key_model(rec.key)
                label = model if model is not None and model in self.models else UNKNOWN_MODEL
                self._dead(dead, "feedback", rec, label, e.reason, e.detail)
                continue
            state = self.model_state(ev.model)
            if state is None:
                self._dead(
                    dead,
                    "feedback",
                    rec,
                    UNKNOWN_MODEL,
                    "unknown_model",
                    f"no spec for model {ev.model!r}",
                )
                continue
            if state.join is None:
                self._dead(
                    dead,
                    "feedback",
                    rec,
                    ev.model,
                    "label_unmatched",
                    f"model {ev.model!r} has no target/prediction in its spec: labels are not joined",
                )
                continue
            by_model.setdefault(ev.model, []).append((rec, ev))
        for model, items in by_model.items():
            state = self.models[model]
            results.extend(self._join(state, items, dead))
        self.fb_offset = ready[-1].offset + 1
        self.dirty = True
        return results, dead

    def _join(
        self, state: ModelState, items: list[tuple[ConsumedRecord, Any]], dead: list[DeadLetter]
    ) -> list[WindowResult]:
        join = state.join
        assert join is not None
        found = join.join([ev.id for _, ev in items])
        results: list[WindowResult] = []
        k = 0
        ttl = join.ttl_s
        pairs: dict[int, list[tuple[float, int, int, float, float]]] = {}
        for (rec, ev), ok in zip(items, found.found.tolist(), strict=True):
            if not ok:
                self._dead(
                    dead,
                    "feedback",
                    rec,
                    state.model,
                    "label_unmatched",
                    f"no prediction {ev.id!r} waiting for a label",
                )
                continue
            pred_ts = float(found.ts[k])
            if ev.ts - pred_ts > ttl:
                join.counts.joined -= 1
                join.counts.unmatched += 1
                self._dead(
                    dead,
                    "feedback",
                    rec,
                    state.model,
                    "label_expired",
                    f"label for {ev.id!r} came {ev.ts - pred_ts:.0f}s after its prediction (ttl {ttl:.0f}s)",
                )
                k += 1
                continue
            code, value = state.codec.encode_label(ev.label)
            state.processed += 1  # a label that joined; the others are dead letters
            v = int(found.version[k])
            pairs.setdefault(v, []).append(
                (float(found.score[k]), int(found.label[k]), code, value, float(ev.ts))
            )
            k += 1
        for v, rows in pairs.items():
            score, predicted, actual, value, ts = (np.array(c) for c in zip(*rows, strict=True))
            closed = state.labelled_window(v).add(
                score.astype(np.float64),
                predicted.astype(np.int32),
                actual.astype(np.int32),
                value.astype(np.float64),
                ts.astype(np.float64),
            )
            for data in closed:
                result = state.ctx.evaluate_labelled(state.codec, data, self.partition)
                state.latest[(result.version, result.kind)] = result
                results.append(result)
        return results

    # --- dead letters ------------------------------------------------------------------

    def _invalid(
        self, dead: list[DeadLetter], state: ModelState, rec: ConsumedRecord, bad: Invalid
    ) -> None:
        self._dead(dead, "predictions", rec, state.model, bad.reason, bad.detail)

    def _dead(
        self,
        dead: list[DeadLetter],
        topic: str,
        rec: ConsumedRecord,
        model: str,
        reason: str,
        detail: str,
    ) -> None:
        state = self.models.get(model)
        if state is not None:
            state.invalid[reason] += 1
        else:
            self.unknown_invalid[reason] += 1
        dead.append(
            DeadLetter(topic, self.partition, rec.offset, rec.key, rec.value, model, reason, detail)
        )

    # --- checkpoint state --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "pred_offset": self.pred_offset,
            "fb_offset": self.fb_offset,
            "watermark": self.clock.now,
            "frontier_ms": self.frontier_ms,
            "unknown_invalid": dict(self.unknown_invalid),
            "models": {name: m.state() for name, m in self.models.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], contexts: Contexts) -> ShardState:
        s = cls(state["partition"], contexts)
        s.pred_offset = state["pred_offset"]
        s.fb_offset = state["fb_offset"]
        s.clock = EventClock(state["watermark"])
        s.frontier_ms = state["frontier_ms"]
        s.unknown_invalid = Counter(state["unknown_invalid"])
        for name, ms in state["models"].items():
            ctx = contexts.get(name)
            if ctx is None:
                _log.warning(
                    "checkpoint of partition %d has model %r, which has no spec any more; "
                    "dropping its state",
                    s.partition,
                    name,
                )
                continue
            s.models[name] = ModelState.from_state(ctx, s.partition, ms)
        return s


#: Predictions stay in the label join this long past their TTL (by the predictions'
#: event-time watermark) before their memory is reclaimed, so that a label processed a
#: little after the prediction stream moved on is still judged by event times alone.
_EXPIRY_GRACE_S = 60.0


def _sequential_calibration(ctx: ModelContext) -> Calibration | None:
    """The calibration the sequential detector uses: None unless the spec enables it (the
    spec requires calibrated thresholds then) and the model has a reference."""
    if not ctx.spec.drift.sequential.enabled:
        return None
    cal = getattr(ctx.config, "calibration", None)
    return cal if cal is not None and cal.columns else None


def _values_tested(codec: ModelCodec, data: WindowData) -> dict[str, int]:
    """Values each feature's window test saw: finite numbers (a wrong type is NaN in
    `num`), present categories; the `n` the calibration's tail probability is scaled by."""
    out: dict[str, int] = {}
    if codec.numerical:
        n = np.count_nonzero(np.isfinite(data.num), axis=1)
        out.update(zip(codec.numerical, n.tolist(), strict=True))
    if codec.categorical:
        n = np.count_nonzero(data.cat >= 0, axis=1)
        out.update(zip(codec.categorical, n.tolist(), strict=True))
    return out


def _key_model(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None
