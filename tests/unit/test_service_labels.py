"""The label join: predictions first, labels later (some never), a TTL judged on event
times, a memory bound, and labelled windows; with explicit (injected) times."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.service.labels import LabelJoin, LabelledWindow


def _add(join: LabelJoin, ids: list[str], ts: list[float], version: int = 0) -> None:
    n = len(ids)
    join.add(
        ids,
        np.full(n, version, dtype=np.int32),
        np.linspace(0.1, 0.9, n) if n > 1 else np.full(n, 0.5),
        np.arange(n, dtype=np.int32),
        np.asarray(ts, dtype=np.float64),
    )


def test_join_finds_and_removes_predictions() -> None:
    join = LabelJoin(ttl_s=100.0, max_pending=10)
    _add(join, ["a", "b", "c"], [1.0, 2.0, 3.0])
    got = join.join(["c", "x", "a"])
    assert got.found.tolist() == [True, False, True]
    assert got.label.tolist() == [2, 0]
    assert got.ts.tolist() == [3.0, 1.0]
    assert len(join) == 1
    again = join.join(["a"])  # a label is joined once
    assert again.found.tolist() == [False]
    assert join.counts.as_dict() == {
        "joined": 2,
        "expired": 0,
        "evicted": 0,
        "unmatched": 2,
        "duplicate": 0,
    }


def test_expiry_by_injected_time() -> None:
    join = LabelJoin(ttl_s=10.0, max_pending=100)
    _add(join, ["a", "b", "c"], [0.0, 5.0, 20.0])
    assert join.expire(now=12.0) == 1  # a: 0 + 10 < 12
    assert join.expire(now=12.0) == 0
    assert join.expire(now=31.0) == 2
    assert len(join) == 0
    assert join.counts.expired == 3
    assert join.join(["b"]).found.tolist() == [False]


def test_bounded_memory_evicts_the_oldest() -> None:
    join = LabelJoin(ttl_s=1e9, max_pending=3)
    _add(join, [f"p{i}" for i in range(5)], [float(i) for i in range(5)])
    assert len(join) == 3
    assert join.counts.evicted == 2
    assert join.join(["p0", "p1", "p2", "p4"]).found.tolist() == [False, False, True, True]
    # bound holds across many batches, joined entries leave room
    for k in range(50):
        _add(join, [f"q{k}-{i}" for i in range(4)], [100.0 + k] * 4)
        assert len(join) <= 3
    assert join.counts.evicted == 2 + 50 * 4 - 2


def test_duplicate_ids_keep_the_latest() -> None:
    join = LabelJoin(ttl_s=100.0, max_pending=10)
    _add(join, ["a", "b"], [1.0, 2.0])
    join.add(
        ["a"], np.array([1], np.int32), np.array([0.99]), np.array([7], np.int32), np.array([3.0])
    )
    got = join.join(["a"])
    assert got.version.tolist() == [1] and got.label.tolist() == [7]
    assert join.counts.duplicate == 1
    assert len(join) == 1


def test_state_round_trip_keeps_waiting_predictions_and_counts() -> None:
    join = LabelJoin(ttl_s=100.0, max_pending=50)
    _add(join, [f"p{i}" for i in range(30)], [float(i) for i in range(30)])
    join.join(["p3", "p4"])
    restored = LabelJoin.from_state(join.state(), ttl_s=100.0, max_pending=50)
    assert len(restored) == 28
    assert restored.counts == join.counts
    a, b = join.join(["p5", "p29", "p3"]), restored.join(["p5", "p29", "p3"])
    assert a.found.tolist() == b.found.tolist()
    np.testing.assert_array_equal(a.score, b.score)


def test_growth_and_compaction_keep_lookups_right() -> None:
    join = LabelJoin(ttl_s=1e9, max_pending=100_000)
    for k in range(30):
        ids = [f"b{k}-{i}" for i in range(200)]
        _add(join, ids, [float(k)] * 200)
        got = join.join(ids[::2])
        assert got.found.all()
    assert len(join) == 30 * 100
    assert join.join(["b0-1", "b29-199"]).found.all()


def _pairs(n: int, start_ts: float = 0.0) -> tuple[np.ndarray, ...]:
    score = np.linspace(0, 1, n)
    return (
        score,
        (score >= 0.5).astype(np.int32),
        np.ones(n, dtype=np.int32),
        np.zeros(n),
        start_ts + np.arange(n, dtype=np.float64),
    )


def test_labelled_window_by_rows() -> None:
    w = LabelledWindow(version=0, rows=4)
    closed = w.add(*_pairs(3)) + w.add(*_pairs(7, 3.0))
    assert [c.rows for c in closed] == [4, 4]
    assert [c.seq for c in closed] == [1, 2]
    assert w.length == 2


def test_labelled_window_by_label_time() -> None:
    w = LabelledWindow(version=0, rows=None, duration_s=5.0)
    closed = w.add(*_pairs(12))  # label times 0..11: windows [0,5), [5,10), 10.. open
    assert [c.rows for c in closed] == [5, 5]
    restored = LabelledWindow.from_state(w.state(), rows=None, duration_s=5.0)
    assert restored.length == 2 and restored.start == 10.0


def test_labelled_window_needs_a_bound() -> None:
    with pytest.raises(ValueError):
        LabelledWindow(version=0, rows=None, duration_s=None)


def test_delayed_labels_replay_accuracy() -> None:
    """Predictions first, labels later in another order, 30 % never labelled: the
    accuracy of the labelled window equals the accuracy over the labelled pairs."""
    rng = np.random.default_rng(3)
    n = 1000
    score = rng.random(n)
    truth = (rng.random(n) < score).astype(np.int32)
    join = LabelJoin(ttl_s=3600.0, max_pending=10_000)
    ids = [f"id{i}" for i in range(n)]
    join.add(
        ids,
        np.zeros(n, np.int32),
        score,
        (score >= 0.5).astype(np.int32),
        np.arange(n, dtype=float),
    )
    labelled = rng.permutation(n)[: int(0.7 * n)]
    got = join.join([ids[i] for i in labelled.tolist()])
    assert got.found.all()
    w = LabelledWindow(version=0, rows=len(labelled))
    (closed,) = w.add(
        got.score,
        got.label,
        truth[labelled],
        np.zeros(len(labelled)),
        np.arange(len(labelled), dtype=float),
    )
    accuracy = float(np.mean(closed.predicted == closed.actual))
    expected = float(np.mean((score[labelled] >= 0.5) == truth[labelled]))
    assert accuracy == pytest.approx(expected)
    assert len(join) == n - len(labelled)
