"""The on-disk spool: frame format, order, restart, torn and corrupt files, the size cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.errors import SpoolError
from collector.events import Record
from collector.spool import HEADER, MAGIC, Spool, decode_frames, encode_frame


def rec(i: int, model: str = "m", size: int = 100) -> Record:
    return Record("driftwarden.predictions", model.encode(), f"{i:08d}".encode().ljust(size, b"."))


def drain(spool: Spool, batch: int = 7) -> list[Record]:
    out: list[Record] = []
    while True:
        b = spool.read(max_records=batch)
        if not b.records:
            return out
        out.extend(b.records)
        spool.commit(b.ends[-1])


record = st.builds(
    Record,
    st.text(min_size=1, max_size=30).filter(lambda t: len(t.encode()) <= 255),
    st.binary(max_size=50),
    st.binary(max_size=500),
)


@settings(max_examples=200, deadline=None)
@given(records=st.lists(record, max_size=20), cut=st.integers(0, 10_000))
def test_property_frames_round_trip_and_a_cut_never_yields_garbage(records, cut) -> None:
    data = b"".join(encode_frame(r) for r in records)
    frames, end, corrupt = decode_frames(data)
    assert [r for r, _ in frames] == records and end == len(data) and not corrupt
    # a torn tail: only complete frames come back, in order
    part, _, corrupt = decode_frames(data[: min(cut, len(data))])
    assert [r for r, _ in part] == records[: len(part)] and not corrupt


def test_append_read_commit_in_order_across_segments(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=4096, max_bytes=1 << 20) as spool:
        spool.append([rec(i) for i in range(100)])
        assert len(spool.segments) > 2
        assert spool.pending_bytes > 100 * 100
        first = spool.read(max_records=10)
        assert [r.value[:8] for r in first.records] == [f"{i:08d}".encode() for i in range(10)]
        assert spool.read(max_records=10).records == first.records  # no commit, no move
        spool.commit(first.ends[-1])
        rest = drain(spool)
        assert [int(r.value[:8]) for r in rest] == list(range(10, 100))
        assert spool.empty and len(spool.segments) == 1  # consumed segments deleted


def test_restart_replays_only_what_was_not_committed(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=4096, max_bytes=1 << 20) as spool:
        spool.append([rec(i) for i in range(50)])
        batch = spool.read(max_records=20)
        spool.commit(batch.ends[-1])
    with Spool(tmp_path, segment_bytes=4096, max_bytes=1 << 20) as again:
        assert [int(r.value[:8]) for r in drain(again)] == list(range(20, 50))
        again.append([rec(99)])
        assert [int(r.value[:8]) for r in drain(again)] == [99]


def test_a_torn_tail_is_truncated_on_open(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append([rec(i) for i in range(5)])
        tail = tmp_path / f"{spool.segments[-1]:020d}.seg"
    with open(tail, "ab") as f:
        f.write(encode_frame(rec(5))[:-10])  # a crash in the middle of a write
    with Spool(tmp_path) as spool:
        assert spool.truncated_bytes > 0
        spool.append([rec(6)])
        assert [int(r.value[:8]) for r in drain(spool)] == [0, 1, 2, 3, 4, 6]


def test_a_corrupt_frame_ends_its_segment_only(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=4096, max_bytes=1 << 20) as spool:
        spool.append([rec(i) for i in range(100)])
        first_seg = tmp_path / f"{spool.segments[0]:020d}.seg"
    data = bytearray(first_seg.read_bytes())
    pos = HEADER + 3 * len(encode_frame(rec(0)))  # the 4th frame of the first segment
    data[pos + 20] ^= 0xFF
    first_seg.write_bytes(bytes(data))
    with Spool(tmp_path, segment_bytes=4096, max_bytes=1 << 20) as spool:
        got = [int(r.value[:8]) for r in drain(spool)]
        assert got[:3] == [0, 1, 2]
        assert 3 not in got and got[-1] == 99 and got == sorted(got)
        assert spool.corrupt_bytes > 0


def test_size_cap_drop_oldest_counts_what_it_dropped(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=4096, max_bytes=4 * 4096, drop_policy="oldest") as spool:
        dropped: list[Record] = []
        for i in range(400):
            dropped += spool.append([rec(i)]).dropped
        assert spool.pending_bytes <= 4 * 4096
        kept = drain(spool)
        assert len(kept) + len(dropped) == 400
        assert sorted(int(r.value[:8]) for r in kept + dropped) == list(range(400))
        assert [int(r.value[:8]) for r in kept] == list(range(400 - len(kept), 400))  # newest kept


def test_size_cap_drop_newest_refuses_incoming(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=4096, max_bytes=2 * 4096, drop_policy="newest") as spool:
        result = spool.append([rec(i) for i in range(200)])
        assert result.written + len(result.dropped) == 200 and result.dropped
        kept = drain(spool)
        assert [int(r.value[:8]) for r in kept] == list(range(result.written))


def test_one_process_per_spool_directory(tmp_path: Path) -> None:
    with Spool(tmp_path), pytest.raises(SpoolError, match="in use by another process"):
        Spool(tmp_path).open()


def test_unusable_directory_is_a_spool_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SpoolError):
        Spool(blocker / "spool").open()


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_fsync_policies_keep_the_data(tmp_path: Path, policy: str) -> None:
    clock = [0.0]
    with Spool(tmp_path, fsync=policy, fsync_interval_s=1.0, clock=lambda: clock[0]) as spool:  # type: ignore[arg-type]
        spool.append([rec(1)])
        clock[0] = 2.0
        spool.maybe_sync()
        spool.append([rec(2)])
    with Spool(tmp_path) as spool:
        assert [int(r.value[:8]) for r in drain(spool)] == [1, 2]


def test_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path, segment_bytes=100)
    with pytest.raises(ValueError):
        Spool(tmp_path, segment_bytes=8192, max_bytes=8192)
    with pytest.raises(ValueError):
        Spool(tmp_path, fsync="sometimes")  # type: ignore[arg-type]


def test_segment_files_start_with_the_magic(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append([rec(1)])
        names = sorted(os.listdir(tmp_path))
    segs = [n for n in names if n.endswith(".seg")]
    assert segs and (tmp_path / segs[0]).read_bytes()[:HEADER] == MAGIC
