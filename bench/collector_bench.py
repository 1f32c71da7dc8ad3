"""Collector benchmark: the proxy's added latency and its throughput on one core.

    python -m bench.collector_bench [--runs 3] [--duration 10] [--rates 200,1000]

Set-up (2-core machine): the collector (`driftwarden collector run`, capture and Kafka
delivery on, kserve-v1, one named row per request, unique X-Request-ID) is pinned to
CPU 0; the trivial model (`python -m tests.kits.collector`), the Kafka broker and this
load generator share CPU 1.

- Latency: an open-loop (fixed-rate) generator sends at 200 and 1,000 requests/s on
  keep-alive connections, first to the model directly, then through the proxy; latency
  is from the request's write to its response's last byte. Added latency = proxied minus
  direct, at p50 and p99; each figure is the median of `--runs` runs.
- CPU per request: the collector process's CPU time (all its threads: event loop,
  delivery, librdkafka) during a 1,000 req/s run, divided by the requests.
- Max throughput: a closed loop with 64 connections through the proxy for a few
  seconds; requests/s and the collector's CPU share. When the collector is below 100%
  of its core, the load generator (on the other core, with the model and Kafka) was the
  limit, and requests/s divided by the share estimates what the proxy's core could carry.

Prints a table and writes bench/results/collector.json. Targets (issue 5): p50 overhead
<= 0.5 ms and p99 <= 2 ms at 1,000 req/s; >= 4,000 req/s on one core; CPU <= 400 µs/request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httptools

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "collector.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CPU = 0
LOAD_CPU = 1


# --- processes ----------------------------------------------------------------------------


def _pin_all_threads(pid: int, cpus: set[int]) -> None:
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task), cpus)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _process(
    argv: list[str], cpus: set[int], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=REPO,  # `python -m tests.kits.collector` imports from the repository root
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- load generation --------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    def __init__(self, gen: _LoadGen) -> None:
        self.gen = gen
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.t_send = 0.0
        self.status = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.gen.done(self, time.perf_counter() - self.t_send, self.parser.get_status_code())

    def connection_lost(self, exc: BaseException | None) -> None:
        self.gen.lost(self)

    def send(self, data: bytes) -> None:
        self.t_send = time.perf_counter()
        self.transport.write(data)


class _LoadGen:
    def __init__(self, port: int, make_request: Callable[[int], bytes], connections: int) -> None:
        self.port = port
        self.make_request = make_request
        self.connections = connections
        self.idle: deque[_Conn] = deque()
        self.latencies: list[float] = []
        self.errors = 0
        self.outstanding = 0
        self.record = True
        self.completed = 0
        self._drained: asyncio.Event | None = None
        self._closed = 0
        self.closed_mode = False
        self.stop_at = 0.0
        self.counter = 10_000_000

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.connections):
            _, conn = await loop.create_connection(lambda: _Conn(self), "127.0.0.1", self.port)
            self.idle.append(conn)

    def done(self, conn: _Conn, latency: float, status: int) -> None:
        self.outstanding -= 1
        self.completed += 1
        if status != 200:
            self.errors += 1
        if self.record:
            self.latencies.append(latency)
        if self.closed_mode and time.perf_counter() < self.stop_at:
            self.outstanding += 1
            self.counter += 1
            conn.send(self.make_request(self.counter))
            return
        self.idle.append(conn)
        if self.outstanding == 0 and self._drained is not None:
            self._drained.set()

    def lost(self, conn: _Conn) -> None:
        self._closed += 1

    async def open_loop(self, rate: float, duration: float, warmup: float = 1.0) -> list[float]:
        """Send at a fixed rate for warmup + duration seconds; latencies after warm-up."""
        interval = 1.0 / rate
        n_warm = int(rate * warmup)
        n_total = n_warm + int(rate * duration)
        start = time.perf_counter() + 0.01
        i = 0
        self.record = False
        make = self.make_request
        while i < n_total:
            now = time.perf_counter()
            due = start + i * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            while i < n_total and start + i * interval <= now:
                if i == n_warm:
                    self.record = True
                if not self.idle:
                    await self._add_connection()
                conn = self.idle.popleft()
                self.outstanding += 1
                conn.send(make(i))
                i += 1
        await self._drain()
        return list(self.latencies)

    async def closed_loop(self, duration: float) -> int:
        """Every connection sends again as soon as it has its answer; returns completions."""
        self.record = False
        self.stop_at = time.perf_counter() + duration
        self.closed_mode = True
        before = self.completed
        while self.idle:
            conn = self.idle.popleft()
            self.outstanding += 1
            self.counter += 1
            conn.send(self.make_request(self.counter))
        await asyncio.sleep(duration)
        self.closed_mode = False
        await self._drain()
        return self.completed - before

    async def _add_connection(self) -> None:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Conn(self), "127.0.0.1", self.port)
        self.idle.append(conn)

    async def _drain(self, timeout: float = 30.0) -> None:
        if self.outstanding:
            self._drained = asyncio.Event()
            await asyncio.wait_for(self._drained.wait(), timeout)
            self._drained = None

    def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()


def _request_maker(model: str) -> Callable[[int], bytes]:
    run = uuid.uuid4().hex[:8]
    path = f"/v1/models/{model}:predict".encode()

    def make(i: int) -> bytes:
        body = (
            b'{"instances": [{"amount": %d.5, "age": %d, "score": 0.%d, "country": "DE",'
            b' "device": "ios", "new_user": false, "items": %d, "hour": %d}]}'
            % (i % 1000, 18 + i % 60, i % 97, i % 7, i % 24)
        )
        return (
            b"POST %b HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"X-Request-ID: %b-%d\r\nContent-Length: %d\r\n\r\n%b"
            % (path, run.encode(), i, len(body), body)
        )

    return make


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _latency_run(port: int, rate: float, duration: float, model: str) -> dict[str, float]:
    gen = _LoadGen(port, _request_maker(model), connections=max(16, int(rate // 50)))
    await gen.open()
    try:
        lat = await gen.open_loop(rate, duration)
    finally:
        gen.close()
    return {
        "p50_ms": _pct(lat, 0.50) * 1000,
        "p99_ms": _pct(lat, 0.99) * 1000,
        "n": len(lat),
        "errors": gen.errors,
    }


async def _throughput_run(port: int, duration: float, model: str) -> tuple[int, int]:
    gen = _LoadGen(port, _request_maker(model), connections=64)
    await gen.open()
    try:
        n = await gen.closed_loop(duration)
    finally:
        gen.close()
    return n, gen.errors


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


def _metric(admin_port: int, name: str) -> float:
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    )
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- the benchmark ------------------------------------------------------------------------


def run_benchmark(
    runs: int, duration: float, rates: list[float], throughput_s: float
) -> dict[str, Any]:
    from driftwarden.services.kafka import KafkaBroker

    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("the collector benchmark needs 2 CPUs (proxy on one, load on the other)")
    os.sched_setaffinity(0, {LOAD_CPU})
    work = Path(tempfile.mkdtemp(prefix="dw-collector-bench-"))
    model = "bench"
    broker = KafkaBroker(work / "kafka").start()
    try:
        assert broker.pid is not None
        _pin_all_threads(broker.pid, {LOAD_CPU})
        broker.create_topic("driftwarden.predictions", partitions=3)
        model_port = _free_port()
        port, admin_port = _free_port(), _free_port()
        py = sys.executable
        with (
            _process([py, "-m", "tests.kits.collector", "--port", str(model_port)], {LOAD_CPU}, work / "model.log"),
            _process(
                [
                    py, "-m", "driftwarden", "collector", "run",
                    "--model", model, "--model-port", str(model_port),
                    "--port", str(port), "--admin-port", str(admin_port), "--host", "127.0.0.1",
                    "--bootstrap", broker.bootstrap, "--spool-dir", str(work / "spool"),
                    "--log-level", "warning",
                ],
                {PROXY_CPU},
                work / "collector.log",
            ) as collector,
        ):  # fmt: skip
            _wait_port(model_port)
            _wait_port(port)
            _wait_port(admin_port)
            _pin_all_threads(collector.pid, {PROXY_CPU})
            # Warm-up until Kafka acknowledges events: the idempotent producer's start (its
            # producer id from a fresh broker) must not fall into a measured run.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                _run(_latency_run(port, 200, 2, model))
                if _metric(admin_port, "driftwarden_collector_events_sent_total") > 0:
                    break
            _run(_latency_run(port, 1000, 2, model))
            _pin_all_threads(collector.pid, {PROXY_CPU})
            results: dict[str, Any] = {
                "rates": {},
                "runs": runs,
                "duration_s": duration,
            }
            for rate in rates:
                direct, proxied, cpu_us = [], [], []
                for _ in range(runs):
                    direct.append(_run(_latency_run(model_port, rate, duration, model)))
                    c0 = cpu_seconds(collector.pid)
                    r = _run(_latency_run(port, rate, duration, model))
                    c1 = cpu_seconds(collector.pid)
                    proxied.append(r)
                    # warm-up requests are included in the CPU time: count them too
                    cpu_us.append((c1 - c0) * 1e6 / (rate * (duration + 1.0)))
                over50 = [p["p50_ms"] - d["p50_ms"] for p, d in zip(proxied, direct, strict=True)]
                over99 = [p["p99_ms"] - d["p99_ms"] for p, d in zip(proxied, direct, strict=True)]
                results["rates"][str(int(rate))] = {
                    "direct_p50_ms": statistics.median(d["p50_ms"] for d in direct),
                    "direct_p99_ms": statistics.median(d["p99_ms"] for d in direct),
                    "proxy_p50_ms": statistics.median(p["p50_ms"] for p in proxied),
                    "proxy_p99_ms": statistics.median(p["p99_ms"] for p in proxied),
                    "overhead_p50_ms": statistics.median(over50),
                    "overhead_p99_ms": statistics.median(over99),
                    "overhead_p50_ms_runs": over50,
                    "overhead_p99_ms_runs": over99,
                    "collector_cpu_us_per_request": statistics.median(cpu_us),
                    "errors": sum(p["errors"] for p in proxied),
                }
            tput, shares = [], []
            for _ in range(runs):
                c0, t0 = cpu_seconds(collector.pid), time.perf_counter()
                n, _errors = _run(_throughput_run(port, throughput_s, model))
                c1, t1 = cpu_seconds(collector.pid), time.perf_counter()
                tput.append(n / (t1 - t0))
                shares.append((c1 - c0) / (t1 - t0))
            results["max_rps"] = statistics.median(tput)
            results["max_rps_collector_cpu_share"] = statistics.median(shares)
            # what the proxy's core could carry if the load generator (on the other core,
            # with the model and Kafka) were not the limit
            results["max_rps_core_estimate"] = statistics.median(
                t / s for t, s in zip(tput, shares, strict=True) if s > 0
            )
            results["cpu_us_per_request_at_max"] = statistics.median(
                s * 1e6 / t for t, s in zip(tput, shares, strict=True) if t > 0
            )
            # every captured request must have reached Kafka
            deadline = time.monotonic() + 60
            requests = _metric(admin_port, "driftwarden_collector_requests_total")
            while time.monotonic() < deadline:
                sent = _metric(admin_port, "driftwarden_collector_events_sent_total")
                if sent >= requests:
                    break
                time.sleep(0.5)
            results["requests"] = requests
            results["events_sent"] = _metric(admin_port, "driftwarden_collector_events_sent_total")
            results["events_dropped"] = _metric(
                admin_port, "driftwarden_collector_events_dropped_total"
            )
            results["events_spooled"] = _metric(
                admin_port, "driftwarden_collector_events_spooled_total"
            )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


def print_results(results: dict[str, Any]) -> None:
    print(f"\ncollector benchmark (median of {results['runs']} runs, {results['duration_s']:g}s each; "
          f"proxy pinned to one core, capture + Kafka delivery on)")  # fmt: skip
    print(f"{'rate':>6} {'direct p50':>11} {'proxy p50':>10} {'+p50':>8} {'direct p99':>11} "
          f"{'proxy p99':>10} {'+p99':>8} {'cpu/req':>9}")  # fmt: skip
    for rate, r in results["rates"].items():
        print(
            f"{rate:>6} {r['direct_p50_ms']:>9.3f}ms {r['proxy_p50_ms']:>8.3f}ms "
            f"{r['overhead_p50_ms']:>6.3f}ms {r['direct_p99_ms']:>9.3f}ms {r['proxy_p99_ms']:>8.3f}ms "
            f"{r['overhead_p99_ms']:>6.3f}ms {r['collector_cpu_us_per_request']:>6.0f} µs"
        )
    print(
        f"max throughput through the proxy: {results['max_rps']:,.0f} req/s with the collector "
        f"at {results['max_rps_collector_cpu_share']:.0%} of its core "
        f"({results['cpu_us_per_request_at_max']:.0f} µs CPU/request; a full core: "
        f"~{results['max_rps_core_estimate']:,.0f} req/s)"
    )
    print(
        f"requests {results['requests']:.0f}, events sent {results['events_sent']:.0f}, "
        f"dropped {results['events_dropped']:.0f}, spooled {results['events_spooled']:.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Collector proxy benchmark")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per latency run")
    parser.add_argument("--rates", default="200,1000")
    parser.add_argument("--throughput-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    results = run_benchmark(args.runs, args.duration, rates, args.throughput_seconds)
    print_results(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
