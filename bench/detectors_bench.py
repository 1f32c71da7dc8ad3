"""Detectors benchmark: events/s from Kafka to published metrics on one core.

    python -m bench.detectors_bench [--events 300000] [--window 10000] [--reference 10000] [--cpu 0]

Set-up (2-core machine): one Kafka broker (pinned to the other CPU) holds `--events` prediction
events of one model with 25 features (20 numerical, 5 categorical: the columns of
`bench/datasets.py`; the second half drifted), produced before the measurement. The
detectors service then runs in a fresh process pinned to `--cpu` (`os.sched_setaffinity`
before any thread starts, so librdkafka's threads share the core) and consumes them:
columnar decoding, windows of `--window` rows, per-feature drift (Evidently defaults),
dataset and prediction drift, data quality, checkpoints and transactional commits, results
written to Kafka. Timing starts when the first event has been processed and stops when the
last window's metrics are published (evaluated and readable on /metrics; its transaction
commits with the next checkpoint).

Reported: events/s (wall clock, one core), events per CPU-second of the service's threads
(the loop, librdkafka's, the metrics server; the bench's own main and RSS-sampler threads in
the same process are left out, and the figure with them is printed too), per-window
statistics time, and the process's peak RSS (VmHWM). Where
the CPU went, over the measurement: per thread group (the service loop, librdkafka's
threads, the rest) from /proc, and the service loop per stage (consume, records, decode,
columns, windows, statistics, results, checkpoint, feedback, other) from thread CPU clocks
around the stages' methods (`StageTimers`, exclusive of nested stages), in microseconds
per event. `--profile FILE` also records the worker with py-spy (collapsed stacks, Python
frames; `--profile-native` adds native ones) and folds the loop's samples into the same
stages by line (`bench/profile_breakdown.py`, which also re-folds a saved file). Prints a
table and writes bench/results/detectors.json. Target (issue 6): >= 50,000 events/s per
core; issue 19: >= 120,000 events per CPU-second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "detectors.json"
MODEL = "bench"


def _pin_all_threads(pid: int, cpus: set[int]) -> None:
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task), cpus)


def _rss_mib(field: str = "VmRSS") -> float:
    """Resident memory of this process, MiB; "VmHWM" is its peak. (Not ru_maxrss: Linux
    carries that across exec, so a child forked from a big parent reports the parent's.)"""
    with open("/proc/self/status") as f:
        return int(f.read().split(f"{field}:")[1].split()[0]) / 1024


def _cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


#: The bench's own threads in the service's process.
HARNESS_THREADS = frozenset({"MainThread", "bench-rss"})


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads so far, by group: the service loop (thread
    "detectors"), librdkafka's threads ("rdk:*"), the bench's own (its main thread waiting
    for the windows, its RSS sampler: not the service's work) and the rest (the metrics
    server)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {
        "service loop": 0.0,
        "kafka client threads": 0.0,
        "other threads": 0.0,
        "bench harness": 0.0,
    }
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/schedstat") as f:
                    ns = int(f.read().split()[0])
                with open(f"/proc/self/task/{task}/comm") as f:
                    comm = f.read().strip()
            except OSError:  # the thread ended
                continue
            if names.get(int(task)) == "detectors":
                group = "service loop"
            elif names.get(int(task)) in HARNESS_THREADS:
                group = "bench harness"
            elif comm.startswith("rdk:"):
                group = "kafka client threads"
            else:
                group = "other threads"
            out[group] += ns / 1e9
    return out


# --- data ---------------------------------------------------------------------------------


def write_spec(directory: Path, reference_rows: int, window: int) -> Path:
    import yaml

    from bench.datasets import make_frames

    directory.mkdir(parents=True, exist_ok=True)
    reference, _ = make_frames(reference_rows, seed=1)
    reference.to_parquet(directory / "bench.reference.parquet", index=False)
    features = [c for c in reference.columns if c not in ("prediction", "target")]
    spec = {
        "model": MODEL,
        "features": [
            {"name": c, "type": "categorical" if c.startswith("c") else "numerical"}
            for c in features
        ],
        "prediction": {"column": "prediction", "type": "probability"},
        "target": {"column": "target", "type": "class"},
        "reference": {"path": "bench.reference.parquet"},
        "window": {"rows": window},
    }
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def events(n: int) -> list[bytes]:
    """`n` prediction events: the first half like the reference, the second half drifted."""
    import msgspec
    import numpy as np

    from bench.datasets import make_frames

    half = n // 2
    normal, drifted = make_frames(max(half, n - half), seed=2)
    encoder = msgspec.json.Encoder()
    out: list[bytes] = []
    i = 0
    for frame, k in ((normal, half), (drifted, n - half)):
        names = [c for c in frame.columns if c not in ("prediction", "target")]
        cols = []
        for c in names:
            values = frame[c].to_numpy()[:k]
            cols.append(
                [None if isinstance(v, float) and np.isnan(v) else v for v in values.tolist()]
            )
        preds = frame["prediction"].to_numpy()[:k].tolist()
        for j in range(k):
            out.append(
                encoder.encode(
                    {
                        "schema": "driftwarden.prediction/v1",
                        "id": f"e{i}",
                        "model": MODEL,
                        "version": "v1",
                        "ts": 1_700_000_000.0 + i * 0.001,
                        "features": {c: col[j] for c, col in zip(names, cols, strict=True)},
                        "prediction": preds[j],
                        "latency_ms": 2.5,
                        "meta": {"namespace": "default", "pod": "bench-0"},
                    }
                )
            )
            i += 1
    return out


# --- the measured process -----------------------------------------------------------------

#: Stages of the service loop timed by `StageTimers`: (stage, module, class, method).
#: Time is exclusive: a stage called inside another (columns inside decode) is its own.
STAGES: list[tuple[str, str, str, str]] = [
    ("consume", "confluent_kafka", "Consumer", "consume"),  # a subclass, see install()
    ("records", "detectors.service.consumer", "DetectorService", "_handle"),
    ("decode", "detectors.service.columns", "ModelCodec", "decode"),
    ("columns", "detectors.service.columns", "ModelCodec", "_columns"),
    ("windows", "detectors.service.windows", "VersionWindow", "feed"),
    ("windows", "detectors.service.windows", "VersionWindow", "tick"),
    ("windows", "detectors.service.windows", "EventClock", "advance"),
    ("windows", "detectors.service.labels", "LabelJoin", "add"),
    ("windows", "detectors.service.labels", "LabelJoin", "expire"),
    ("statistics", "detectors.service.state", "ShardState", "_evaluate"),
    ("results", "detectors.service.consumer", "DetectorService", "_emit"),
    ("checkpoint", "detectors.service.consumer", "DetectorService", "_commit_or_recover"),
    ("feedback", "detectors.service.consumer", "DetectorService", "_feedback_round"),
]


class StageTimers:
    """Thread CPU time (`time.thread_time`) per stage of the service loop, exclusive of
    nested stages. Wraps the methods of `STAGES` in place; costs two clock reads per call
    (a few calls per batch of 1000 records)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {s: 0.0 for s, *_ in STAGES}
        self._stack: list[str] = []
        self._last = 0.0
        self.ident: int | None = None  # the service thread's

    def install(self) -> None:
        import importlib

        from confluent_kafka import Consumer

        import detectors.service.consumer as consumer_module

        timers = self

        class _TimedConsumer(Consumer):  # type: ignore[misc]
            def consume(self, *a: Any, **k: Any) -> Any:
                return super().consume(*a, **k)

        consumer_module.Consumer = _TimedConsumer  # type: ignore[misc]
        for stage, module, cls, name in STAGES:
            owner = (
                _TimedConsumer
                if cls == "Consumer"
                else getattr(importlib.import_module(module), cls)
            )
            original = getattr(owner, name)
            setattr(owner, name, timers._wrap(stage, original))

    def _wrap(self, stage: str, fn: Any) -> Any:
        import functools

        timers = self
        clock = time.thread_time

        @functools.wraps(fn)
        def timed(*a: Any, **k: Any) -> Any:
            if threading.get_ident() != timers.ident:  # only the service loop's thread
                return fn(*a, **k)
            stack = timers._stack
            t = clock()
            if stack:
                timers.seconds[stack[-1]] += t - timers._last
            stack.append(stage)
            timers._last = t
            try:
                return fn(*a, **k)
            finally:
                t = clock()
                timers.seconds[stack.pop()] += t - timers._last
                timers._last = t

        return timed

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)


def worker(args: argparse.Namespace) -> None:
    """Runs in the pinned subprocess: the service, timed; prints one JSON line."""
    os.sched_setaffinity(0, {args.cpu})
    import logging

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from detectors.service import ServiceSettings, start_service
    from detectors.service.evaluate import StatsContext

    eval_time = [0.0]
    original = StatsContext.evaluate_window

    def timed(self: Any, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            eval_time[0] += time.perf_counter() - t

    StatsContext.evaluate_window = timed  # type: ignore[method-assign]
    stages = StageTimers()
    stages.install()
    settings = ServiceSettings(
        specs=Path(args.specs),
        bootstrap=args.bootstrap,
        topic_prefix=args.prefix,
        group_id=f"{args.prefix}-bench",
        instance_id="bench",
        metrics_port=0,
        metrics_host="127.0.0.1",
        checkpoint_interval_s=args.checkpoint_interval,
    )
    expected = args.events // args.window
    began = time.monotonic()
    peak = [0.0, 0.0]  # RSS MiB, seconds after start-up began

    def sample_rss() -> None:
        while True:
            r = _rss_mib()
            if r > peak[0]:
                peak[:] = [r, time.monotonic() - began]
            time.sleep(0.01)

    threading.Thread(target=sample_rss, name="bench-rss", daemon=True).start()
    stop = threading.Event()
    service, thread = start_service(settings, stop, timeout=120)
    stages.ident = thread.ident

    def processed() -> int:
        with service.lock:
            return sum(m.processed for s in service.shards.values() for m in s.models.values())

    deadline = time.monotonic() + args.timeout
    while processed() == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    t0, c0 = time.monotonic(), time.process_time()
    threads0 = _thread_cpu()
    stages0 = stages.snapshot()
    first = processed()
    rss_start = _rss_mib()
    while service.windows_closed < expected and time.monotonic() < deadline:
        time.sleep(0.005)
    t1, c1 = time.monotonic(), time.process_time()
    threads1 = _thread_cpu()
    stages1 = stages.snapshot()
    done = service.windows_closed
    harness = threads1["bench harness"] - threads0["bench harness"]
    stop.set()
    thread.join(60)
    errors = [repr(e) for e in getattr(thread, "error", [])]
    for e in errors:
        print(f"service failed: {e}", file=sys.stderr)
    n = args.events - first
    print(
        json.dumps(
            {
                "events": args.events,
                "first_batch": first,
                "window_rows": args.window,
                "windows": done,
                "windows_expected": expected,
                "seconds": t1 - t0,
                "cpu_seconds": c1 - c0,
                "events_per_second": n / (t1 - t0),
                "events_per_cpu_second": n / (c1 - c0 - harness),
                "events_per_process_cpu_second": n / (c1 - c0),
                "stats_seconds_per_window": eval_time[0] / max(done, 1),
                "peak_rss_mib": _rss_mib("VmHWM"),
                "rss_at_start_mib": rss_start,
                "rss_peak_sampled_mib": peak[0],
                "rss_peak_at_s": peak[1],
                "measurement_from_s": t0 - began,
                "rss_at_end_mib": _rss_mib(),
                "thread_cpu_seconds": {k: threads1[k] - threads0[k] for k in threads1},
                "stage_cpu_seconds": {k: stages1[k] - stages0[k] for k in stages1},
                "cpus": sorted(os.sched_getaffinity(0)),
                "errors": errors,
            }
        ),
        flush=True,
    )


# --- the driver -------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from confluent_kafka import Producer

    from driftwarden.kafka import producer_config
    from driftwarden.services import KafkaBroker

    pin = len(_cpus()) > 1
    with tempfile.TemporaryDirectory(prefix="detectors-bench-") as tmp:
        tmpdir = Path(tmp)
        broker = KafkaBroker(tmpdir / "kafka").start()
        try:
            other = (_cpus() - {args.cpu}) or {args.cpu}
            if pin:
                _pin_all_threads(broker.pid, other)
                os.sched_setaffinity(0, other)
            prefix = "bench"
            broker.create_topic(f"{prefix}.predictions", partitions=1)
            broker.create_topic(f"{prefix}.feedback", partitions=1)
            specs = tmpdir / "specs"
            write_spec(specs, args.reference, args.window)
            t = time.monotonic()
            payloads = events(args.events)
            producer = Producer(producer_config(broker.bootstrap, **{"linger.ms": 50}))
            key = MODEL.encode()
            for value in payloads:
                while True:
                    try:
                        producer.produce(f"{prefix}.predictions", value=value, key=key)
                        break
                    except BufferError:
                        producer.poll(0.05)
            assert producer.flush(120) == 0
            del producer
            size = sum(len(p) for p in payloads)
            print(
                f"produced {len(payloads):,} events ({size / len(payloads):.0f} B each) "
                f"in {time.monotonic() - t:.1f}s",
                file=sys.stderr,
            )
            del payloads
            cmd = [
                sys.executable, "-m", "bench.detectors_bench", "--worker",
                "--bootstrap", broker.bootstrap, "--specs", str(specs), "--prefix", prefix,
                "--events", str(args.events), "--window", str(args.window),
                "--timeout", str(args.timeout), "--cpu", str(args.cpu),
                "--checkpoint-interval", str(args.checkpoint_interval),
            ]  # fmt: skip
            if args.profile:
                # py-spy samples the worker's Python threads (with `--profile-native`, native
                # frames too: slower to sample, and it has hung at the worker's exit here)
                spy = Path(sys.executable).with_name("py-spy")
                if not spy.exists():
                    raise RuntimeError(f"--profile needs py-spy ({spy} is missing)")
                cmd = [
                    str(spy), "record", "-r", str(args.profile_rate), "-f", "raw",
                    "-o", args.profile, *(["--native"] if args.profile_native else []),
                    "--", *cmd,
                ]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=args.timeout + 180
            )
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.with_suffix(".log").write_text(proc.stderr)
            if proc.returncode != 0:
                raise RuntimeError(f"benchmark worker failed:\n{proc.stderr[-3000:]}")
            # the worker's last line (py-spy writes its own lines after it)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if not lines:
                raise RuntimeError(f"benchmark worker printed no result:\n{proc.stdout[-3000:]}")
            result = json.loads(lines[-1])
        finally:
            broker.stop()
    result["pinned"] = pin
    if args.profile:
        from bench.profile_breakdown import breakdown

        n = result["events"] - result.get("first_batch", 0)
        result["breakdown"] = breakdown(
            args.profile, n, result["thread_cpu_seconds"]["service loop"]
        )
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.detectors_bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--window", type=int, default=10_000)
    p.add_argument(
        "--checkpoint-interval",
        type=float,
        default=5.0,
        help="seconds between checkpoints (the service's default: 5; shorter puts their "
        "cost inside the measured seconds)",
    )
    p.add_argument("--reference", type=int, default=10_000, help="reference rows")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--cpu", type=int, default=0, help="the core the service is pinned to")
    p.add_argument(
        "--profile", help="record the service with py-spy into this file (collapsed stacks)"
    )
    p.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument(
        "--profile-native", action="store_true", help="py-spy with native frames (slower)"
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bootstrap", help=argparse.SUPPRESS)
    p.add_argument("--specs", help=argparse.SUPPRESS)
    p.add_argument("--prefix", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return
    result = run(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["events_per_second"] >= 50_000
    rows = [
        (
            "events",
            f"{result['events']:,} ({result['windows']} windows of {result['window_rows']:,} rows)",
        ),
        (
            "events/s (one core)",
            f"{result['events_per_second']:,.0f}  target >= 50,000 {'ok' if ok else 'MISSED'}",
        ),
        (
            "events per CPU-second",
            f"{result['events_per_cpu_second']:,.0f} (the service's threads; with the bench's "
            f"own: {result.get('events_per_process_cpu_second', 0):,.0f})",
        ),
        ("statistics per window", f"{result['stats_seconds_per_window'] * 1000:.1f} ms"),
        ("peak RSS", f"{result['peak_rss_mib']:.0f} MiB"),
        ("service CPUs", ",".join(map(str, result["cpus"]))),
    ]
    n = result["events"] - result.get("first_batch", 0)
    threads = result.get("thread_cpu_seconds", {})
    for k, sec in threads.items():
        rows.append((f"  CPU: {k}", f"{sec / n * 1e6:.2f} us/event"))
        if k == "service loop" and "stage_cpu_seconds" in result:
            stages = dict(result["stage_cpu_seconds"])
            stages["other"] = sec - sum(stages.values())
            for stage, st in stages.items():
                rows.append(
                    (f"    {stage}", f"{st / n * 1e6:.2f} us/event  {100 * st / sec:4.1f} %")
                )
    width = max(len(k) for k, _ in rows)
    print("detectors benchmark")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    if "breakdown" in result:
        from bench.profile_breakdown import format_breakdown

        print("  service loop by stage (py-spy samples; us per event of the loop thread's CPU)")
        for line in format_breakdown(result["breakdown"]):
            print(f"    {line}")
    print(f"  written to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
