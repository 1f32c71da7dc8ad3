"""Windows over one (model, version) stream: row count and/or event-time duration,
tumbling (default) or sliding. Pure state machines; no I/O, no wall clock.

Time is *event time*: each partition (a "shard") has a watermark, the largest event `ts`
seen so far in partition order. A window opened when the watermark was `s` closes *before*
the first row, of any model of the shard, that brings the watermark to `s + duration_s` or
later, or right after its `rows`-th row, whichever comes first. Both rules depend only on
the order of records in the partition, never on how records were batched or when they were
processed, so a replay from a checkpoint closes exactly the same windows with exactly the
same rows (the restart-safety guarantee rests on this).

Sliding windows (`mode: sliding`) keep the last `rows` rows of the stream and are evaluated
every `step_rows` rows once `rows` rows have been seen; they are bounded by rows only (a
`duration_s` in a sliding spec is ignored, and the service logs that it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.service.columns import Batch
from driftwarden.spec import WindowSpec

__all__ = ["EventClock", "VersionWindow", "WindowBuffer", "WindowData", "WindowPolicy"]


class EventClock:
    """The watermark of one shard: the largest event time seen, in partition order.

    `advance(ts)` returns the watermark *at* each row (running maximum, starting from the
    current watermark) and moves the clock to the last one. Tests inject times through it.
    """

    __slots__ = ("now",)

    def __init__(self, now: float = -math.inf) -> None:
        self.now = now

    def advance(self, ts: np.ndarray) -> np.ndarray:
        if ts.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            marks = np.maximum.accumulate(np.maximum(ts, self.now))
        self.now = float(marks[-1])
        return marks


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    rows: int | None
    duration_s: float | None
    sliding: bool = False
    step_rows: int = 0

    @classmethod
    def from_spec(cls, spec: WindowSpec) -> WindowPolicy:
        if spec.mode == "sliding":
            return cls(rows=spec.rows, duration_s=None, sliding=True, step_rows=spec.step_rows or 1)
        return cls(rows=spec.rows, duration_s=spec.duration_s)


class WindowBuffer:
    """Columnar rows of one window, grown geometrically; `take` copies a range out."""

    def __init__(self, n_num: int, n_cat: int, capacity: int = 1024) -> None:
        self.n_num, self.n_cat = n_num, n_cat
        self.length = 0
        self._alloc(max(16, capacity))
        self.type_errors: np.ndarray | None = None

    def _alloc(self, cap: int) -> None:
        self.cap = cap
        self.num = np.empty((self.n_num, cap), dtype=np.float64)
        self.cat = np.empty((self.n_cat, cap), dtype=np.int32)
        self.ts = np.empty(cap, dtype=np.float64)
        self.score = np.empty(cap, dtype=np.float64)
        self.label = np.empty(cap, dtype=np.int32)
        self.offset = np.empty(cap, dtype=np.int64)

    def _grow(self, need: int) -> None:
        cap = self.cap
        while cap < need:
            cap *= 2
        old = (self.num, self.cat, self.ts, self.score, self.label, self.offset)
        n = self.length
        self._alloc(cap)
        self.num[:, :n] = old[0][:, :n]
        self.cat[:, :n] = old[1][:, :n]
        self.ts[:n] = old[2][:n]
        self.score[:n] = old[3][:n]
        self.label[:n] = old[4][:n]
        self.offset[:n] = old[5][:n]
        if self.type_errors is not None:
            te = np.zeros((self.n_num, cap), dtype=bool)
            te[:, :n] = self.type_errors[:, :n]
            self.type_errors = te

    def append(self, batch: Batch, rows: np.ndarray, offsets: np.ndarray) -> None:
        """Append `batch` rows `rows` (indices) whose partition offsets are `offsets`."""
        k = int(rows.shape[0])
        if k == 0:
            return
        n = self.length
        if n + k > self.cap:
            self._grow(n + k)
        end = n + k
        self.num[:, n:end] = batch.num[:, rows]
        self.cat[:, n:end] = batch.cat[:, rows]
        self.ts[n:end] = batch.ts[rows]
        self.score[n:end] = batch.score[rows]
        self.label[n:end] = batch.label[rows]
        self.offset[n:end] = offsets
        if batch.type_errors is not None:
            part = batch.type_errors[:, rows]
            if part.any():
                if self.type_errors is None:
                    self.type_errors = np.zeros((self.n_num, self.cap), dtype=bool)
                self.type_errors[:, n:end] = part
            elif self.type_errors is not None:
                self.type_errors[:, n:end] = False
        elif self.type_errors is not None:
            self.type_errors[:, n:end] = False
        self.length = end

    def drop_front(self, k: int) -> None:
        """Forget the oldest `k` rows (sliding windows)."""
        if k <= 0:
            return
        n = self.length - k
        for arr in (self.num, self.cat):
            arr[:, :n] = arr[:, k : self.length].copy()
        for arr in (self.ts, self.score, self.label, self.offset):
            arr[:n] = arr[k : self.length].copy()
        if self.type_errors is not None:
            self.type_errors[:, :n] = self.type_errors[:, k : self.length].copy()
        self.length = n

    def clear(self) -> None:
        self.length = 0
        self.type_errors = None

    def view(self, start: int = 0) -> dict[str, np.ndarray]:
        """Copies of the rows from `start` to the end."""
        s, e = start, self.length
        out = {
            "num": self.num[:, s:e].copy(),
            "cat": self.cat[:, s:e].copy(),
            "ts": self.ts[s:e].copy(),
            "score": self.score[s:e].copy(),
            "label": self.label[s:e].copy(),
            "offset": self.offset[s:e].copy(),
        }
        out["type_errors"] = None if self.type_errors is None else self.type_errors[:, s:e].copy()
        return out

    # --- checkpoint state --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        v = self.view()
        te = v.pop("type_errors")
        out: dict[str, Any] = {k: _pack(a) for k, a in v.items()}
        out["type_errors"] = None if te is None else _pack(te)
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any], n_num: int, n_cat: int) -> WindowBuffer:
        ts = _unpack(state["ts"])
        buf = cls(n_num, n_cat, capacity=max(16, ts.shape[0]))
        n = ts.shape[0]
        buf.num[:, :n] = _unpack(state["num"]).reshape(n_num, n)
        buf.cat[:, :n] = _unpack(state["cat"]).reshape(n_cat, n)
        buf.ts[:n] = ts
        buf.score[:n] = _unpack(state["score"])
        buf.label[:n] = _unpack(state["label"])
        buf.offset[:n] = _unpack(state["offset"])
        if state.get("type_errors") is not None:
            buf.type_errors = np.zeros((n_num, buf.cap), dtype=bool)
            buf.type_errors[:, :n] = _unpack(state["type_errors"]).reshape(n_num, n)
        buf.length = n
        return buf


def _pack(a: np.ndarray) -> list[Any]:
    a = np.ascontiguousarray(a)
    return [a.dtype.str, list(a.shape), a.tobytes()]


def _unpack(p: list[Any]) -> np.ndarray:
    dtype, shape, data = p
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape).copy()


@dataclass(frozen=True, slots=True)
class WindowData:
    """The rows of one closed window (copies), ready for the statistics."""

    version: int  # version code
    seq: int  # 1-based number of this window for (model, version)
    num: np.ndarray
    cat: np.ndarray
    ts: np.ndarray
    score: np.ndarray
    label: np.ndarray
    offset: np.ndarray
    type_errors: np.ndarray | None
    start_watermark: float

    @property
    def rows(self) -> int:
        return int(self.ts.shape[0])


class VersionWindow:
    """The open window of one (model, version) stream and its closed-window count."""

    def __init__(self, version: int, policy: WindowPolicy, n_num: int, n_cat: int) -> None:
        self.version = version
        self.policy = policy
        cap = min(policy.rows or 1024, 1 << 16)
        self.buffer = WindowBuffer(n_num, n_cat, capacity=cap)
        self.seq = 0  # windows closed so far
        self.start = math.nan  # watermark when the open window received its first row
        self.seen = 0  # rows ever appended (sliding: drives evaluations)

    @property
    def open_rows(self) -> int:
        return self.buffer.length

    def _emit(self, start: int = 0) -> WindowData:
        self.seq += 1
        v = self.buffer.view(start)
        return WindowData(
            version=self.version,
            seq=self.seq,
            num=v["num"],
            cat=v["cat"],
            ts=v["ts"],
            score=v["score"],
            label=v["label"],
            offset=v["offset"],
            type_errors=v["type_errors"],
            start_watermark=self.start,
        )

    def feed(
        self,
        batch: Batch,
        rows: np.ndarray,
        positions: np.ndarray,
        offsets: np.ndarray,
        marks: np.ndarray,
    ) -> list[WindowData]:
        """Add this stream's rows of one shard batch; return the windows that closed.

        `rows` index `batch`; `positions` are those rows' positions in the shard batch,
        `offsets` their partition offsets, and `marks` the shard watermark at every
        position of the shard batch (all models, non-decreasing).
        """
        if self.policy.sliding:
            return self._feed_sliding(batch, rows, offsets)
        closed: list[WindowData] = []
        limit_rows = self.policy.rows
        duration = self.policy.duration_s
        n = int(rows.shape[0])
        n_marks = int(marks.shape[0])
        i = 0
        while True:
            if self.buffer.length == 0:
                if i >= n:
                    break
                self.start = float(marks[positions[i]])
            take = n - i
            if limit_rows is not None:
                take = min(take, limit_rows - self.buffer.length)
            cut = n_marks  # shard position before which the window closes by time
            if duration is not None:
                # marks[positions[i]] == start < start + duration for a window opened here,
                # so a new window always takes its first row.
                cut = int(np.searchsorted(marks, self.start + duration, side="left"))
                take = min(take, int(np.searchsorted(positions, cut, side="left")) - i)
            if take > 0:
                sel = rows[i : i + take]
                self.buffer.append(batch, sel, offsets[i : i + take])
                i += take
            if (limit_rows is not None and self.buffer.length >= limit_rows) or cut < n_marks:
                closed.append(self._emit())
                self.buffer.clear()
                self.start = math.nan
                continue
            break
        return closed

    def tick(self, marks: np.ndarray) -> list[WindowData]:
        """Close the open window when the shard's watermark passed its end (no new rows)."""
        if self.policy.sliding or self.policy.duration_s is None or self.buffer.length == 0:
            return []
        if marks.shape[0] and marks[-1] >= self.start + self.policy.duration_s:
            w = self._emit()
            self.buffer.clear()
            self.start = math.nan
            return [w]
        return []

    def _feed_sliding(
        self, batch: Batch, rows: np.ndarray, offsets: np.ndarray
    ) -> list[WindowData]:
        size = self.policy.rows or 1
        step = self.policy.step_rows
        closed: list[WindowData] = []
        n = int(rows.shape[0])
        i = 0
        while i < n:
            # rows until the next evaluation point: seen == size + k * step
            nxt = size if self.seen < size else size + ((self.seen - size) // step + 1) * step
            take = min(n - i, nxt - self.seen)
            if self.buffer.length == 0:
                self.start = math.nan
            self.buffer.append(batch, rows[i : i + take], offsets[i : i + take])
            self.seen += take
            i += take
            if self.buffer.length > size:
                self.buffer.drop_front(self.buffer.length - size)
            if self.seen == nxt:
                closed.append(self._emit())
        return closed

    # --- checkpoint state --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "seq": self.seq,
            "start": self.start,
            "seen": self.seen,
            "buffer": self.buffer.state(),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], policy: WindowPolicy, n_num: int, n_cat: int
    ) -> VersionWindow:
        w = cls(state["version"], policy, n_num, n_cat)
        w.seq = state["seq"]
        w.start = state["start"]
        w.seen = state["seen"]
        w.buffer = WindowBuffer.from_state(state["buffer"], n_num, n_cat)
        return w
