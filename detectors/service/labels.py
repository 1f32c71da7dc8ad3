"""Delayed labels: feedback joined to its prediction by id, with a TTL and a bound.

`LabelJoin` keeps, for every prediction still waiting for its label, the few numbers the
performance metrics need (version code, score, predicted class, event time) in numpy
arrays, plus one dict entry id -> sequence number. Memory is therefore bounded by
`max_pending` entries (about 150 bytes each, the id string included): when full, the
oldest waiting prediction is evicted. A prediction whose event time is more than `ttl_s`
older than the clock expires. Every outcome is counted: joined, expired, evicted,
unmatched (a label whose prediction is not waiting: never seen, expired, evicted, or
already labelled), duplicate (a prediction id seen twice; the later one wins).

Time is passed in (`now`), the shard's event-time watermark in the service, any number in
tests; nothing here reads a clock.

`LabelledWindow` collects joined (prediction, label) pairs of one (model, version), in
label order, and closes after `rows` pairs and/or `duration_s` of label event time: the
"window of labelled predictions" the performance metrics are computed over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.service.windows import _pack, _unpack

__all__ = ["JoinCounts", "Joined", "LabelJoin", "LabelledData", "LabelledWindow"]


@dataclass(slots=True)
class JoinCounts:
    joined: int = 0
    expired: int = 0
    evicted: int = 0
    unmatched: int = 0
    duplicate: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "joined": self.joined,
            "expired": self.expired,
            "evicted": self.evicted,
            "unmatched": self.unmatched,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True, slots=True)
class Joined:
    """Predictions found for a batch of labels; `found[i]` says whether label i matched."""

    found: np.ndarray  # bool, one per label
    version: np.ndarray  # int32, one per matched label
    score: np.ndarray  # float64
    label: np.ndarray  # int32 predicted class code
    ts: np.ndarray  # float64 event time of the prediction


class LabelJoin:
    """Predictions waiting for their label (see the module docstring)."""

    def __init__(self, ttl_s: float, max_pending: int) -> None:
        if ttl_s <= 0 or max_pending < 1:
            raise ValueError("ttl_s must be > 0 and max_pending >= 1")
        self.ttl_s = float(ttl_s)
        self.max_pending = int(max_pending)
        self.counts = JoinCounts()
        self._reset()

    def _reset(self) -> None:
        self._index: dict[str, int] = {}  # id -> sequence number
        self._base = 0  # sequence number of array slot 0
        self._head = 0  # first sequence number that may still be waiting
        self._tail = 0  # next sequence number
        self._alloc(min(1024, self.max_pending))

    def _alloc(self, cap: int) -> None:
        self._version = np.empty(cap, dtype=np.int32)
        self._score = np.empty(cap, dtype=np.float64)
        self._label = np.empty(cap, dtype=np.int32)
        self._ts = np.empty(cap, dtype=np.float64)
        self._alive = np.zeros(cap, dtype=bool)
        self._ids = np.empty(cap, dtype=object)

    def __len__(self) -> int:
        return len(self._index)

    # --- storage -----------------------------------------------------------------------

    def _make_room(self, k: int) -> None:
        """Ensure slots for `k` more entries, compacting or growing the arrays."""
        used = self._tail - self._base
        cap = self._version.shape[0]
        if used + k <= cap:
            return
        live = self._tail - self._head
        start = self._head - self._base
        new_cap = cap
        while live + k > new_cap:
            new_cap *= 2
        if new_cap > cap or start > 0:
            arrays = (self._version, self._score, self._label, self._ts, self._alive, self._ids)
            self._alloc(new_cap)
            new = (self._version, self._score, self._label, self._ts, self._alive, self._ids)
            for old_a, new_a in zip(arrays, new, strict=True):
                new_a[:live] = old_a[start : start + live]
            self._base = self._head

    def _drop(self, seq_from: int, seq_to: int) -> int:
        """Forget entries [seq_from, seq_to); return how many were still waiting."""
        a, b = seq_from - self._base, seq_to - self._base
        alive = self._alive[a:b]
        dropped = 0
        if alive.any():
            for pid in self._ids[a:b][alive].tolist():
                del self._index[pid]
                dropped += 1
            self._alive[a:b] = False
        self._ids[a:b] = None
        return dropped

    # --- the join ----------------------------------------------------------------------

    def add(
        self,
        ids: list[str],
        version: np.ndarray,
        score: np.ndarray,
        label: np.ndarray,
        ts: np.ndarray,
    ) -> None:
        """Register predictions waiting for a label (in partition order)."""
        k = len(ids)
        if k == 0:
            return
        self._make_room(k)
        s = self._tail - self._base
        self._version[s : s + k] = version
        self._score[s : s + k] = score
        self._label[s : s + k] = label
        self._ts[s : s + k] = ts
        self._alive[s : s + k] = True
        self._ids[s : s + k] = ids
        index = self._index
        seq = self._tail
        for pid in ids:
            old = index.get(pid)
            if old is not None:
                self._alive[old - self._base] = False
                self._ids[old - self._base] = None
                self.counts.duplicate += 1
            index[pid] = seq
            seq += 1
        self._tail = seq
        over = len(index) - self.max_pending
        if over > 0:
            # evict exactly the `over` oldest waiting entries
            a, b = self._head - self._base, self._tail - self._base
            cum = np.cumsum(self._alive[a:b])
            end = self._head + int(np.searchsorted(cum, over)) + 1
            self.counts.evicted += self._drop(self._head, end)
            self._head = end

    def expire(self, now: float) -> int:
        """Drop predictions older than `now - ttl_s` (in arrival order); return how many."""
        if self._head == self._tail:
            return 0
        a, b = self._head - self._base, self._tail - self._base
        keep = self._ts[a:b] + self.ttl_s >= now
        first_kept = int(np.argmax(keep)) if keep.any() else b - a
        if first_kept == 0:
            return 0
        end = self._head + first_kept
        n = self._drop(self._head, end)
        self._head = end
        self.counts.expired += n
        return n

    def join(self, ids: list[str]) -> Joined:
        """Find (and remove) the predictions labelled by `ids`."""
        index = self._index
        seqs: list[int] = []
        found = np.zeros(len(ids), dtype=bool)
        pop = index.pop
        for i, pid in enumerate(ids):
            seq = pop(pid, None)
            if seq is not None:
                seqs.append(seq)
                found[i] = True
        slots = np.array(seqs, dtype=np.int64) - self._base
        self._alive[slots] = False
        self._ids[slots] = None
        self.counts.joined += len(seqs)
        self.counts.unmatched += len(ids) - len(seqs)
        # advance the head past a prefix of joined entries so expiry scans stay short
        while self._head < self._tail and not self._alive[self._head - self._base]:
            self._head += 1
        return Joined(
            found=found,
            version=self._version[slots],
            score=self._score[slots],
            label=self._label[slots],
            ts=self._ts[slots],
        )

    # --- checkpoint state --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        a, b = self._head - self._base, self._tail - self._base
        alive = self._alive[a:b]
        return {
            "ids": self._ids[a:b][alive].tolist(),
            "version": _pack(self._version[a:b][alive]),
            "score": _pack(self._score[a:b][alive]),
            "label": _pack(self._label[a:b][alive]),
            "ts": _pack(self._ts[a:b][alive]),
            "counts": self.counts.as_dict(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], ttl_s: float, max_pending: int) -> LabelJoin:
        j = cls(ttl_s, max_pending)
        j.counts = JoinCounts(**state["counts"])
        ids = state["ids"]
        if ids:
            # re-adding cannot evict or count duplicates: it is the same set as before
            counts = j.counts
            j.counts = JoinCounts()
            j.add(
                ids,
                _unpack(state["version"]),
                _unpack(state["score"]),
                _unpack(state["label"]),
                _unpack(state["ts"]),
            )
            j.counts = counts
        return j


@dataclass(frozen=True, slots=True)
class LabelledData:
    """The (prediction, label) pairs of one closed labelled window."""

    version: int
    seq: int
    score: np.ndarray  # float64 predicted score (probability / regression value)
    predicted: np.ndarray  # int32 predicted class code
    actual: np.ndarray  # int32 label class code
    actual_value: np.ndarray  # float64 label value (regression)

    @property
    def rows(self) -> int:
        return int(self.score.shape[0])


class LabelledWindow:
    """Joined pairs of one (model, version): closes after `rows` pairs, or before the first
    label whose event time is `duration_s` or more past the window's first label."""

    def __init__(self, version: int, rows: int | None, duration_s: float | None = None) -> None:
        if rows is None and duration_s is None:
            raise ValueError("a labelled window needs rows or duration_s")
        self.version = version
        self.rows = rows
        self.duration_s = duration_s
        self.seq = 0
        self.start = math.nan
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.length = 0

    def _emit(self) -> LabelledData:
        cols = [np.concatenate(c) for c in zip(*self.parts, strict=True)]
        self.seq += 1
        self.parts, self.length, self.start = [], 0, math.nan
        return LabelledData(self.version, self.seq, *cols[:4])

    def add(
        self,
        score: np.ndarray,
        predicted: np.ndarray,
        actual: np.ndarray,
        actual_value: np.ndarray,
        ts: np.ndarray,
    ) -> list[LabelledData]:
        """Add pairs in label order; return the windows that closed."""
        closed: list[LabelledData] = []
        i, n = 0, int(score.shape[0])
        while i < n:
            if self.length == 0:
                self.start = float(ts[i])
            take = n - i
            if self.rows is not None:
                take = min(take, self.rows - self.length)
            by_time = False
            if self.duration_s is not None:
                marks = np.maximum.accumulate(ts[i : i + take])
                cut = int(np.searchsorted(marks, self.start + self.duration_s, side="left"))
                if cut < take:
                    take, by_time = cut, True
            if take:
                sl = slice(i, i + take)
                self.parts.append((score[sl], predicted[sl], actual[sl], actual_value[sl], ts[sl]))
                self.length += take
                i += take
            if by_time or (self.rows is not None and self.length >= self.rows):
                closed.append(self._emit())
        return closed

    def state(self) -> dict[str, Any]:
        if self.parts:
            cols = [np.concatenate(c) for c in zip(*self.parts, strict=True)]
        else:
            cols = [
                np.empty(0, t) for t in (np.float64, np.int32, np.int32, np.float64, np.float64)
            ]
        return {
            "version": self.version,
            "seq": self.seq,
            "start": self.start,
            "cols": [_pack(c) for c in cols],
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], rows: int | None, duration_s: float | None
    ) -> LabelledWindow:
        w = cls(state["version"], rows, duration_s)
        w.seq = state["seq"]
        w.start = state["start"]
        cols = tuple(_unpack(c) for c in state["cols"])
        if cols[0].shape[0]:
            w.parts = [cols]
            w.length = int(cols[0].shape[0])
        return w
