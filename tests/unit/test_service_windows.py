"""Windows of the detectors service: row counts, event-time durations (with an injected
clock), sliding windows, and the property that batching never changes which rows a window
gets (what makes a replay from a checkpoint equal to an uninterrupted run)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.service.columns import Batch
from detectors.service.windows import EventClock, VersionWindow, WindowData, WindowPolicy


def _batch(values: np.ndarray, ts: np.ndarray) -> Batch:
    n = values.shape[0]
    return Batch(
        index=np.arange(n, dtype=np.int64),
        version=np.zeros(n, dtype=np.int32),
        ts=ts.astype(np.float64),
        num=values.reshape(1, n).astype(np.float64),
        cat=np.zeros((1, n), dtype=np.int32),
        score=values.astype(np.float64),
        label=np.zeros(n, dtype=np.int32),
        type_errors=None,
        ids=None,
    )


def _run(policy: WindowPolicy, ts: np.ndarray, splits: list[int]) -> list[WindowData]:
    """Feed one stream (all rows of one version) in the given batch sizes."""
    values = np.arange(ts.shape[0], dtype=np.float64)
    window = VersionWindow(0, policy, n_num=1, n_cat=1)
    clock = EventClock()
    closed: list[WindowData] = []
    start = 0
    for size in [*splits, ts.shape[0]]:
        end = min(ts.shape[0], start + size)
        if end <= start:
            continue
        b = _batch(values[start:end], ts[start:end])
        marks = clock.advance(b.ts)
        rows = np.arange(end - start)
        closed += window.feed(b, rows, rows, np.arange(start, end), marks)
        start = end
    return closed


def _contents(windows: list[WindowData]) -> list[tuple[int, list[int]]]:
    return [(w.seq, w.offset.tolist()) for w in windows]


def test_tumbling_rows_close_every_n_rows() -> None:
    ts = np.arange(25, dtype=np.float64)
    closed = _run(WindowPolicy(rows=10, duration_s=None), ts, [7, 7])
    assert _contents(closed) == [(1, list(range(10))), (2, list(range(10, 20)))]
    assert [w.rows for w in closed] == [10, 10]


def test_duration_closes_before_the_row_that_reaches_the_end() -> None:
    ts = np.array([0, 1, 2, 5, 6, 9, 10, 11, 20], dtype=np.float64)
    closed = _run(WindowPolicy(rows=None, duration_s=5.0), ts, [2, 3])
    # [0, 5): rows 0-2; [5, 10): rows 3-5; [10, 15): rows 6-7; row 8 (ts 20) opens the next
    assert _contents(closed) == [(1, [0, 1, 2]), (2, [3, 4, 5]), (3, [6, 7])]


def test_rows_or_duration_whichever_first() -> None:
    ts = np.array([0, 0.1, 0.2, 0.3, 10, 10.1], dtype=np.float64)
    closed = _run(WindowPolicy(rows=3, duration_s=5.0), ts, [])
    assert _contents(closed) == [(1, [0, 1, 2]), (2, [3])]


def test_watermark_of_other_models_closes_an_idle_window() -> None:
    """A window closes when the shard's event-time clock passes its end, even when its
    own stream has no new rows (`tick`)."""
    policy = WindowPolicy(rows=None, duration_s=60.0)
    window = VersionWindow(0, policy, n_num=1, n_cat=1)
    clock = EventClock()
    b = _batch(np.array([1.0, 2.0]), np.array([100.0, 110.0]))
    rows = np.arange(2)
    assert window.feed(b, rows, rows, rows, clock.advance(b.ts)) == []
    # another model's rows move the clock (the injected time) to 159 and then 161
    assert window.tick(clock.advance(np.array([159.0]))) == []
    closed = window.tick(clock.advance(np.array([161.0])))
    assert [w.rows for w in closed] == [2]
    assert window.open_rows == 0


def test_event_clock_is_a_running_maximum() -> None:
    clock = EventClock()
    marks = clock.advance(np.array([5.0, 3.0, -np.inf, 7.0, 6.0]))
    assert marks.tolist() == [5.0, 5.0, 5.0, 7.0, 7.0]
    assert clock.now == 7.0
    assert clock.advance(np.array([1.0])).tolist() == [7.0]


def test_sliding_windows_every_step_over_the_last_rows() -> None:
    ts = np.arange(12, dtype=np.float64)
    closed = _run(WindowPolicy(rows=5, duration_s=None, sliding=True, step_rows=3), ts, [4, 1, 2])
    assert _contents(closed) == [(1, [0, 1, 2, 3, 4]), (2, [3, 4, 5, 6, 7]), (3, [6, 7, 8, 9, 10])]


@settings(max_examples=60, deadline=None)
@given(
    ts_steps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=120),
    splits=st.lists(st.integers(1, 40), max_size=10),
    rows=st.one_of(st.none(), st.integers(1, 25)),
    duration=st.one_of(st.none(), st.floats(0.5, 20.0)),
)
def test_batching_never_changes_windows(
    ts_steps: list[float], splits: list[int], rows: int | None, duration: float | None
) -> None:
    if rows is None and duration is None:
        rows = 7
    ts = np.cumsum(ts_steps)
    policy = WindowPolicy(rows=rows, duration_s=duration)
    one = _run(policy, ts, [])
    many = _run(policy, ts, splits)
    assert _contents(one) == _contents(many)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 100),
    cut=st.integers(0, 100),
    rows=st.integers(1, 20),
    sliding=st.booleans(),
)
def test_checkpoint_mid_window_then_continue_equals_uninterrupted(
    n: int, cut: int, rows: int, sliding: bool
) -> None:
    cut = min(cut, n)
    ts = np.arange(n, dtype=np.float64)
    policy = WindowPolicy(
        rows=rows, duration_s=None, sliding=sliding, step_rows=3 if sliding else 0
    )
    whole = _run(policy, ts, [])

    values = np.arange(n, dtype=np.float64)
    w = VersionWindow(0, policy, n_num=1, n_cat=1)
    clock = EventClock()
    closed: list[WindowData] = []
    for lo, hi in ((0, cut), (cut, n)):
        if hi > lo:
            b = _batch(values[lo:hi], ts[lo:hi])
            r = np.arange(hi - lo)
            closed += w.feed(b, r, r, np.arange(lo, hi), clock.advance(b.ts))
        if lo == 0:
            w = VersionWindow.from_state(w.state(), policy, n_num=1, n_cat=1)
            clock = EventClock(clock.now)
    assert _contents(closed) == _contents(whole)
    for a, b in zip(closed, whole, strict=True):
        np.testing.assert_array_equal(a.num, b.num)


def test_type_errors_travel_with_their_rows() -> None:
    b = _batch(np.arange(4.0), np.arange(4.0))
    b.type_errors = np.array([[False, True, False, True]])
    w = VersionWindow(0, WindowPolicy(rows=2, duration_s=None), n_num=1, n_cat=1)
    r = np.arange(4)
    closed = w.feed(b, r, r, r, EventClock().advance(b.ts))
    assert [c.type_errors.tolist() for c in closed] == [[[False, True]], [[False, True]]]


@pytest.mark.parametrize("spec_mode", ["tumbling", "sliding"])
def test_policy_from_spec(spec_mode: str) -> None:
    from driftwarden.spec import WindowSpec

    spec = WindowSpec(
        rows=100, duration_s=30.0, mode=spec_mode, step_rows=10 if spec_mode == "sliding" else None
    )
    p = WindowPolicy.from_spec(spec)
    assert p.sliding == (spec_mode == "sliding")
    assert p.duration_s == (None if p.sliding else 30.0)
