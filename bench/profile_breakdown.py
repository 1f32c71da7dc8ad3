"""Where the detectors service's CPU time goes, from py-spy's collapsed stacks.

    python -m bench.profile_breakdown PROFILE [--events N --cpu-seconds S]

Folds the stacks `bench.detectors_bench --profile` recorded (py-spy `record -f raw`: one
line per distinct stack, root first, frames `function (file:line)`, then a sample count)
into the stages of the service loop. Only samples of the service loop
(`DetectorService._loop`) count: start-up, the final drain and the bench's own threads are
outside the measurement. A sample goes to the first bucket below that any of its frames
matches, so an outer stage (a checkpoint, a window's statistics) keeps what it calls:

    checkpoint  DetectorService._commit*, checkpoint.py: shard state, msgpack, chunks,
                checkpoint records produced, offsets sent, transaction committed
    statistics  ShardState._evaluate and below: window summaries, drift tests, quality,
                sequential detection, the window's result
    results     DetectorService._emit: window results and dead letters produced
    columns     ModelCodec._columns, CategoryVocab: decoded rows to numpy columns and codes
    decode      ModelCodec.decode: JSON to typed structs (msgspec)
    windows     windows.py, labels.py: event clock, window buffers, the label join
    consume     leaf frame in `_loop`: Consumer.consume (librdkafka, C) and its messages
    records     the rest of `_handle` / `process_predictions`: per-record bookkeeping
    other       the rest of the loop (feedback round, lag, spec reload)

Percentages are of the loop's samples. With `--events` and `--cpu-seconds` (the service
thread's CPU over the measurement, which `detectors_bench` records), each bucket is also
given in microseconds per event. Python frames only (py-spy without `--native`): time in C
(numpy, msgspec, librdkafka) counts for the Python line that called it, and freeing the
objects a function returns counts for the caller's line.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

__all__ = ["BUCKETS", "fold", "format_breakdown"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

Frame = tuple[str, str]  # (function, file)


def _func(*names: str, file: str | None = None) -> Callable[[Frame], bool]:
    wanted = set(names)

    def match(frame: Frame) -> bool:
        func, path = frame
        name = func.rsplit(".", 1)[-1]
        short = func if "." in func else name
        hit = name in wanted or short in wanted or func in wanted
        return hit and (file is None or path.endswith(file))

    return match


def _file(*suffixes: str) -> Callable[[Frame], bool]:
    return lambda frame: frame[1].endswith(suffixes)


#: (bucket, predicate on a frame); the first bucket any frame of a stack matches wins
BUCKETS: list[tuple[str, Callable[[Frame], bool]]] = [
    (
        "checkpoint",
        lambda f: (
            _func("_commit", "_commit_or_recover", file="service/consumer.py")(f)
            or _file("service/checkpoint.py")(f)
        ),
    ),
    ("statistics", _func("ShardState._evaluate", file="service/state.py")),
    ("results", _func("DetectorService._emit", file="service/consumer.py")),
    (
        "columns",
        lambda f: (
            _func("ModelCodec._columns", file="service/columns.py")(f)
            or f[0].startswith("CategoryVocab.")
        ),
    ),
    ("decode", _func("ModelCodec.decode", file="service/columns.py")),
    ("windows", _file("service/windows.py", "service/labels.py")),
]
ORDER = [b for b, _ in BUCKETS] + ["consume", "records", "other"]


def _parse(frame: str) -> Frame:
    m = _FRAME.match(frame)
    if m is None:
        return frame, ""
    return m.group("func"), m.group("file")


def _bucket(frames: list[Frame]) -> str:
    for name, match in BUCKETS:
        if any(match(f) for f in frames):
            return name
    func, path = frames[-1]
    if func.endswith("_loop") and path.endswith("service/consumer.py"):
        return "consume"
    if any(f[0].endswith(("._handle", ".process_predictions")) for f in frames):
        return "records"
    return "other"


def fold(profile: str | Path) -> dict[str, int]:
    """Samples per bucket of the service loop, plus `outside` (samples not in the loop)."""
    counts: Counter[str] = Counter()
    for raw in Path(profile).read_text().splitlines():
        stack, _, n = raw.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [_parse(f) for f in stack.split(";")]
        if not any(
            f[0].endswith("._loop") and f[1].endswith("service/consumer.py") for f in frames
        ):
            counts["outside"] += int(n)
            continue
        counts[_bucket(frames)] += int(n)
    return {k: counts.get(k, 0) for k in [*ORDER, "outside"]}


def breakdown(
    profile: str | Path, events: int | None = None, cpu_seconds: float | None = None
) -> dict[str, dict[str, float]]:
    """{bucket: {"share": fraction of the loop's samples, "us_per_event": ...}}."""
    counts = fold(profile)
    total = sum(v for k, v in counts.items() if k != "outside") or 1
    out: dict[str, dict[str, float]] = {}
    for k in ORDER:
        share = counts[k] / total
        row = {"samples": float(counts[k]), "share": share}
        if events and cpu_seconds:
            row["us_per_event"] = share * cpu_seconds / events * 1e6
        out[k] = row
    return out


def format_breakdown(rows: dict[str, dict[str, float]]) -> list[str]:
    lines = []
    for k, row in rows.items():
        us = f"{row['us_per_event']:6.2f} us/event" if "us_per_event" in row else ""
        lines.append(f"{k:<11} {100 * row['share']:5.1f} %  {us}")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.profile_breakdown", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("profile")
    p.add_argument("--events", type=int, help="events processed in the measurement")
    p.add_argument("--cpu-seconds", type=float, help="service loop thread CPU seconds")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = breakdown(args.profile, args.events, args.cpu_seconds)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("\n".join(format_breakdown(rows)))


if __name__ == "__main__":
    main()
