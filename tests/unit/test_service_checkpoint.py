"""Checkpoint records: chunked, headed, tombstoned; reassembled from any tail of the
partition that holds the latest complete generation."""

from __future__ import annotations

import pytest

from detectors.service.checkpoint import Checkpoint, CheckpointError, assemble, chunk_records


def _state(size: int) -> dict:
    return {
        "pred_offset": 41,
        "fb_offset": None,
        "blob": b"x" * size,
        "models": {"m": [1, 2.5, "a"]},
    }


def test_round_trip_in_chunks() -> None:
    records = chunk_records("g", 3, _state(2500), gen=7, chunk_bytes=1000)
    keys = [k for k, _ in records]
    assert keys == ["g/3/7/0", "g/3/7/1", "g/3/7/2", "g/3"]
    found = assemble("g", 3, records)
    assert isinstance(found, Checkpoint)
    assert (found.gen, found.chunks) == (7, 3)
    assert found.state == _state(2500)


def test_previous_generation_is_tombstoned_and_latest_wins() -> None:
    old = chunk_records("g", 0, _state(10), gen=1, chunk_bytes=1000)
    new = chunk_records("g", 0, _state(1500), gen=2, previous=(1, 1), chunk_bytes=1000)
    assert ("g/0/1/0", None) in new
    found = assemble("g", 0, old + new)
    assert isinstance(found, Checkpoint) and found.gen == 2


def test_other_shards_and_groups_are_ignored() -> None:
    records = chunk_records("g", 1, _state(5), gen=1) + chunk_records("h", 0, _state(6), gen=9)
    records += chunk_records("g", 10, _state(7), gen=4)
    assert assemble("g", 0, records) is None
    found = assemble("g", 1, records)
    assert isinstance(found, Checkpoint) and found.state["blob"] == b"x" * 5


def test_missing_chunks_ask_to_read_further_back() -> None:
    records = chunk_records("g", 0, _state(3000), gen=5, chunk_bytes=1000)
    assert assemble("g", 0, records[2:]) is False
    assert assemble("g", 0, []) is None


def test_corrupt_length_is_an_error() -> None:
    records = chunk_records("g", 0, _state(3000), gen=5, chunk_bytes=1000)
    records[0] = (records[0][0], b"short")
    with pytest.raises(CheckpointError):
        assemble("g", 0, records)
