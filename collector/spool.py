"""The on-disk spool: where events wait while Kafka is unreachable or slow.

Layout of a spool directory:

    LOCK                       flock'ed by the one process that owns the spool
    cursor                     {"segment": n, "offset": o}: everything before it was delivered
    00000000000000000007.seg   append-only segment files, replayed in name order

A segment starts with the 8-byte magic `DWSPOOL1`, then frames:

    u32 body length | u32 CRC-32 of body | body = u8 topic length, u16 key length, topic, key, value

(little-endian). A crash can leave a torn frame only at the end of the newest segment;
`open()` truncates it. A frame whose CRC does not match elsewhere ends that segment's
replay (the rest is counted as corrupt, never delivered half-read).

Durability is the `fsync` policy: `always` (fsync after every append and cursor move:
survives power loss, slowest), `interval` (fsync at most every `fsync_interval_s`: a
process crash loses nothing, a power loss at most that interval), `never` (the OS decides).
The spool is bounded by `max_bytes`; when full, `drop_policy` `oldest` deletes the oldest
segment (its records counted as dropped) and `newest` refuses the incoming records.

Not thread-safe: one thread (the delivery thread) owns a spool.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from collector.errors import SpoolError
from collector.events import Record

FsyncPolicy = Literal["always", "interval", "never"]
DropPolicy = Literal["oldest", "newest"]

MAGIC: Final = b"DWSPOOL1"
HEADER: Final = len(MAGIC)
_FRAME = struct.Struct("<II")
_BODY = struct.Struct("<BH")
FRAME_OVERHEAD: Final = _FRAME.size + _BODY.size
MAX_FRAME_BODY: Final = 64 * 1024 * 1024
_SUFFIX: Final = ".seg"


# --- the frame format (pure) -------------------------------------------------------------


def encode_frame(record: Record) -> bytes:
    topic = record.topic.encode()
    key = record.key
    if len(topic) > 255 or len(key) > 65535:
        raise ValueError("topic or key too long for a spool frame")
    body = b"".join((_BODY.pack(len(topic), len(key)), topic, key, record.value))
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


class CorruptFrame(ValueError):
    """A frame whose length or checksum is wrong."""


def decode_frames(
    buf: bytes | memoryview, start: int = 0, max_records: int | None = None
) -> tuple[list[tuple[Record, int]], int, bool]:
    """Complete frames of `buf` from `start`: ([(record, end offset)], offset after the last
    complete frame, corrupt?). An incomplete frame at the end is not an error (more may come)."""
    out: list[tuple[Record, int]] = []
    pos = start
    n = len(buf)
    view = memoryview(buf)
    while n - pos >= _FRAME.size and (max_records is None or len(out) < max_records):
        length, crc = _FRAME.unpack_from(view, pos)
        if length < _BODY.size or length > MAX_FRAME_BODY:
            return out, pos, True
        end = pos + _FRAME.size + length
        if end > n:
            break
        body = view[pos + _FRAME.size : end]
        if zlib.crc32(body) != crc:
            return out, pos, True
        tlen, klen = _BODY.unpack_from(body, 0)
        o = _BODY.size
        if o + tlen + klen > length:
            return out, pos, True
        topic = bytes(body[o : o + tlen]).decode("utf-8", "replace")
        key = bytes(body[o + tlen : o + tlen + klen])
        value = bytes(body[o + tlen + klen :])
        out.append((Record(topic, key, value), end))
        pos = end
    return out, pos, False


def frame_length_at(buf: bytes | memoryview, pos: int) -> int | None:
    """Total length of the frame starting at `pos`, if its header is there."""
    if len(buf) - pos < _FRAME.size:
        return None
    return _FRAME.size + _FRAME.unpack_from(buf, pos)[0]


# --- positions and batches ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass(slots=True)
class ReadBatch:
    """Records read from the cursor on; `ends[i]` is the position after `records[i]`."""

    records: list[Record] = field(default_factory=list)
    ends: list[Position] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


@dataclass(slots=True)
class AppendResult:
    written: int = 0
    #: Records dropped to stay under the size cap (the incoming ones for `newest`,
    #: the oldest waiting ones for `oldest`), for the caller to count by model.
    dropped: list[Record] = field(default_factory=list)
    #: Bytes of frames that could not be decoded when deleted (no key to count them by).
    dropped_corrupt_bytes: int = 0


def _segment_name(seq: int) -> str:
    return f"{seq:020d}{_SUFFIX}"


# --- the spool ---------------------------------------------------------------------------


class Spool:
    """Append-only, size-bounded, crash-safe queue of Kafka records on disk."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        segment_bytes: int = 8 * 1024 * 1024,
        fsync: FsyncPolicy = "interval",
        fsync_interval_s: float = 1.0,
        drop_policy: DropPolicy = "oldest",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if segment_bytes < 4096:
            raise ValueError("spool segment_bytes must be at least 4096")
        if max_bytes < 2 * segment_bytes:
            raise ValueError("spool max_bytes must be at least twice segment_bytes")
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"unknown fsync policy {fsync!r} (always, interval, never)")
        if drop_policy not in ("oldest", "newest"):
            raise ValueError(f"unknown drop policy {drop_policy!r} (oldest, newest)")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self.drop_policy = drop_policy
        self._clock = clock
        self._lock_fd: int | None = None
        self._sizes: dict[int, int] = {}  # segment seq -> file size
        self._cursor = Position(0, HEADER)
        self._tail_fd: int | None = None
        self._read_fd: tuple[int, int] | None = None  # (seq, fd)
        self._dirty = False
        self._last_sync = clock()
        #: Frames found corrupt while reading (their bytes), for logs and tests.
        self.corrupt_bytes = 0
        self.truncated_bytes = 0

    # -- lifecycle --

    def open(self) -> Spool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise SpoolError(f"spool directory {self.directory}: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise SpoolError(
                    f"spool directory {self.directory} is in use by another process"
                ) from e
            raise SpoolError(f"spool directory {self.directory}: cannot lock ({e})") from e
        self._lock_fd = fd
        try:
            self._load()
        except BaseException:
            self.close()
            raise
        return self

    def _load(self) -> None:
        seqs = sorted(
            int(p.name[: -len(_SUFFIX)])
            for p in self.directory.glob(f"*{_SUFFIX}")
            if p.name[: -len(_SUFFIX)].isdigit()
        )
        self._sizes = {s: (self.directory / _segment_name(s)).stat().st_size for s in seqs}
        cursor = self._read_cursor()
        # Drop segments that the cursor has passed (a crash between commit and delete).
        for s in [s for s in seqs if cursor is not None and s < cursor.segment]:
            self._unlink(s)
        seqs = sorted(self._sizes)
        for s in seqs:  # a segment without its magic was never written: remove it
            if self._sizes[s] < HEADER or self._magic(s) != MAGIC:
                self._unlink(s)
        seqs = sorted(self._sizes)
        if not seqs:
            seq = (cursor.segment if cursor else 0) + 1
            self._cursor = Position(seq, HEADER)
            self._new_segment(seq)
        else:
            if cursor is None or cursor.segment not in self._sizes:
                cursor = Position(seqs[0], HEADER)
            self._cursor = Position(cursor.segment, max(HEADER, cursor.offset))
            self._recover_tail(seqs[-1])
            self._tail_fd = os.open(self._path(seqs[-1]), os.O_WRONLY | os.O_APPEND)
        if self._cursor.offset > self._sizes.get(self._cursor.segment, HEADER):
            self._cursor = Position(self._cursor.segment, self._sizes[self._cursor.segment])

    def _recover_tail(self, seq: int) -> None:
        path = self._path(seq)
        data = path.read_bytes()
        _, end, _corrupt = decode_frames(data, HEADER)
        if end < len(data):
            self.truncated_bytes += len(data) - end
            with open(path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
            self._sizes[seq] = end

    def close(self) -> None:
        if self._tail_fd is not None:
            if self._dirty and self.fsync != "never":
                os.fsync(self._tail_fd)
            os.close(self._tail_fd)
            self._tail_fd = None
        self._close_reader()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Spool:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state --

    @property
    def pending_bytes(self) -> int:
        """Bytes of frames after the cursor (what a replay still has to send)."""
        cur = self._cursor
        total = 0
        for seq, size in self._sizes.items():
            if seq > cur.segment:
                total += size - HEADER
            elif seq == cur.segment:
                total += size - cur.offset
        return total

    @property
    def empty(self) -> bool:
        return self.pending_bytes == 0

    @property
    def cursor(self) -> Position:
        return self._cursor

    @property
    def segments(self) -> list[int]:
        return sorted(self._sizes)

    # -- appending --

    def append(self, records: Iterable[Record]) -> AppendResult:
        result = AppendResult()
        pending: list[bytes] = []
        pending_len = 0
        tail = max(self._sizes)
        for record in records:
            frame = encode_frame(record)
            flen = len(frame)
            if not self._make_room(flen + pending_len, result):
                result.dropped.append(record)
                continue
            if self._sizes[tail] + pending_len + flen > self.segment_bytes and (
                self._sizes[tail] + pending_len > HEADER
            ):
                self._write(pending, pending_len)
                pending, pending_len = [], 0
                tail = self._roll()
            pending.append(frame)
            pending_len += flen
            result.written += 1
        self._write(pending, pending_len)
        self._after_write()
        return result

    def _make_room(self, need: int, result: AppendResult) -> bool:
        while self.pending_bytes + need > self.max_bytes:
            if self.drop_policy == "newest" or len(self._sizes) < 2:
                return False
            head = self._cursor.segment
            if head == max(self._sizes):
                return False
            self._drop_segment(head, result)
        return True

    def _drop_segment(self, seq: int, result: AppendResult) -> None:
        data = self._path(seq).read_bytes()
        frames, end, _ = decode_frames(data, max(HEADER, self._cursor.offset))
        result.dropped.extend(r for r, _ in frames)
        result.dropped_corrupt_bytes += len(data) - end
        following = min(s for s in self._sizes if s > seq)
        self._cursor = Position(following, HEADER)
        self._unlink(seq)
        self._write_cursor()

    def _write(self, frames: list[bytes], length: int) -> None:
        if not frames:
            return
        assert self._tail_fd is not None, "spool is not open"
        data = b"".join(frames) if len(frames) > 1 else frames[0]
        view = memoryview(data)
        while view:
            n = os.write(self._tail_fd, view)
            view = view[n:]
        self._sizes[max(self._sizes)] += length
        self._dirty = True

    def _after_write(self) -> None:
        if self.fsync == "always":
            self.sync()
        elif self.fsync == "interval":
            self.maybe_sync()

    def _roll(self) -> int:
        tail = max(self._sizes)
        if self._tail_fd is not None:
            if self.fsync != "never":
                os.fsync(self._tail_fd)
            os.close(self._tail_fd)
            self._tail_fd = None
        self._new_segment(tail + 1)
        return tail + 1

    def _new_segment(self, seq: int) -> None:
        path = self._path(seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(fd, MAGIC)
        if self.fsync != "never":
            os.fsync(fd)
            self._sync_dir()
        self._tail_fd = fd
        self._sizes[seq] = HEADER

    def sync(self) -> None:
        """fsync the newest segment now."""
        if self._tail_fd is not None and self._dirty:
            os.fsync(self._tail_fd)
        self._dirty = False
        self._last_sync = self._clock()

    def maybe_sync(self) -> None:
        """fsync if the `interval` policy is due (called by the owner's loop, too)."""
        if (
            self._dirty
            and self.fsync == "interval"
            and self._clock() - self._last_sync >= self.fsync_interval_s
        ):
            self.sync()

    # -- reading and committing --

    def read(self, max_records: int = 1000, max_bytes: int = 1024 * 1024) -> ReadBatch:
        """Records after the cursor, oldest first (the cursor does not move: `commit`).

        Unreadable bytes (a corrupt frame) end their segment: when the batch would start
        there, the cursor skips to the segment's end and `corrupt_bytes` grows.
        """
        batch = ReadBatch()
        pos = self._cursor
        budget = max_bytes
        while len(batch) < max_records and budget > 0:
            size = self._sizes.get(pos.segment)
            if size is None:
                break
            if pos.offset >= size:
                later = [s for s in self._sizes if s > pos.segment]
                if not later:
                    break
                pos = Position(min(later), HEADER)
                continue
            fd = self._reader(pos.segment)
            remaining = size - pos.offset
            buf = os.pread(fd, min(remaining, max(budget, 64 * 1024)), pos.offset)
            flen = frame_length_at(buf, 0)
            if flen is not None and len(buf) < flen <= remaining:
                buf = os.pread(fd, flen, pos.offset)
            frames, used, corrupt = decode_frames(buf, 0, max_records - len(batch))
            for record, end in frames:
                batch.records.append(record)
                batch.ends.append(Position(pos.segment, pos.offset + end))
            budget -= used
            pos = Position(pos.segment, pos.offset + used)
            if frames and not corrupt:
                continue
            if batch.records:
                break  # deliver what came before the bad spot first
            # Nothing readable from here to the end of this segment: skip it.
            self.corrupt_bytes += size - pos.offset
            pos = Position(pos.segment, size)
            self._cursor = pos
            self._write_cursor()
        return batch

    def commit(self, position: Position) -> None:
        """Everything before `position` was delivered; delete fully consumed segments."""
        if position <= self._cursor:
            return
        if position.segment not in self._sizes:
            return  # its segment was dropped meanwhile (size cap)
        self._cursor = position
        tail = max(self._sizes)
        if position.segment < tail and position.offset >= self._sizes[position.segment]:
            self._cursor = Position(min(s for s in self._sizes if s > position.segment), HEADER)
        for seq in [s for s in self._sizes if s < self._cursor.segment]:
            self._unlink(seq)
        self._write_cursor()

    # -- files --

    def _path(self, seq: int) -> Path:
        return self.directory / _segment_name(seq)

    def _magic(self, seq: int) -> bytes:
        with open(self._path(seq), "rb") as f:
            return f.read(HEADER)

    def _reader(self, seq: int) -> int:
        if self._read_fd is not None and self._read_fd[0] == seq:
            return self._read_fd[1]
        self._close_reader()
        fd = os.open(self._path(seq), os.O_RDONLY)
        self._read_fd = (seq, fd)
        return fd

    def _close_reader(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd[1])
            self._read_fd = None

    def _unlink(self, seq: int) -> None:
        if self._read_fd is not None and self._read_fd[0] == seq:
            self._close_reader()
        with contextlib.suppress(FileNotFoundError):
            self._path(seq).unlink()
        self._sizes.pop(seq, None)

    def _read_cursor(self) -> Position | None:
        try:
            data = json.loads((self.directory / "cursor").read_text())
            return Position(int(data["segment"]), int(data["offset"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _write_cursor(self) -> None:
        tmp = self.directory / "cursor.tmp"
        payload = json.dumps({"segment": self._cursor.segment, "offset": self._cursor.offset})
        with open(tmp, "w") as f:
            f.write(payload)
            if self.fsync == "always":
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.directory / "cursor")
        if self.fsync == "always":
            self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
