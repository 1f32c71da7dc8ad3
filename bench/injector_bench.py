"""Injector benchmark: the AdmissionReview round trip as the API server sees it.

    python -m bench.injector_bench [--requests 3000] [--runs 3]

`driftwarden injector run` (a real process, HTTPS with an ECDSA P-256 certificate) answers
reviews recorded from kube-apiserver (tests/unit/injector_reviews/): `plain.json` (opted
in: the sidecar is injected, a ~3 KiB patch) and `no_annotation.json` (the common case:
every pod of the cluster passes the annotation webhook, which answers without a patch).
The client sends one review at a time on a keep-alive TLS connection, as the API server's
webhook client does, and times each from the request's write to the response's last byte.
A fresh TLS connection per review (handshake included) is measured too: what a review costs
when the API server has no idle connection to reuse; and `GET /healthz` on the same
connection, a round trip that does no work, which shows what the machine itself adds.

With `--pin`, as in the collector's benchmark, the injector is pinned to CPU 0 and this
client to CPU 1 (on a machine shared with other work, pinning keeps both from moving away
from a busy core, and the tail gets worse: off by default). Each figure is the median over
`--runs` runs. Prints a table and writes
bench/results/injector.json. Target (issue 14): round-trip p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "injector.json"
REVIEWS = REPO / "tests" / "unit" / "injector_reviews"
INJECTOR_CPU = 0
CLIENT_CPU = 1


def _pin(pid: int, cpu: int) -> None:
    """Pin every thread of `pid` (0: this process) to `cpu`, when the machine has it."""
    if cpu >= (os.cpu_count() or 1):
        return
    tasks = os.listdir(f"/proc/{pid or os.getpid()}/task")
    for task in tasks:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task), {cpu})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(folder: Path, pin: bool) -> tuple[subprocess.Popen[bytes], int, ssl.SSLContext]:
    from collector.injector.certs import make_certs, write_certs

    write_certs(make_certs(["localhost"], ["127.0.0.1"]), folder)
    port = _free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "driftwarden", "injector", "run", "--host", "127.0.0.1"),
            *("--port", str(port), "--log-level", "warning"),
            *("--cert-file", str(folder / "tls.crt"), "--key-file", str(folder / "tls.key")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ctx = ssl.create_default_context(cafile=str(folder / "ca.crt"))
    if pin:
        _pin(proc.pid, INJECTOR_CPU)
        _pin(0, CLIENT_CPU)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return proc, port, ctx
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise SystemExit("injector did not start within 30 s")


def _quantiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3, "max_ms": samples[-1] * 1e3}


def _keep_alive(
    port: int, ctx: ssl.SSLContext, body: bytes, n: int, expect_patch: bool
) -> dict[str, float]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    headers = {"Content-Type": "application/json"}
    for _ in range(200):  # warm-up: connection, caches
        conn.request("POST", "/mutate?timeout=3s", body, headers)
        conn.getresponse().read()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/mutate?timeout=3s", body, headers)
        r = conn.getresponse()
        out = r.read()
        times.append(time.perf_counter() - t0)
    conn.close()
    answer = json.loads(out)["response"]
    assert r.status == 200 and ("patch" in answer) == expect_patch, answer
    return _quantiles(times)


def _healthz(port: int, ctx: ssl.SSLContext, n: int) -> dict[str, float]:
    """The same TLS round trip doing no work: what the machine adds to every request."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    times = []
    for i in range(n + 200):
        t0 = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        if i >= 200:
            times.append(time.perf_counter() - t0)
    conn.close()
    return _quantiles(times)


def _fresh_connections(port: int, ctx: ssl.SSLContext, body: bytes, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        conn.request("POST", "/mutate", body, {"Content-Type": "application/json"})
        conn.getresponse().read()
        times.append(time.perf_counter() - t0)
        conn.close()
    return _quantiles(times)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_benchmark(requests: int, runs: int, pin: bool = False) -> dict[str, Any]:
    bodies = {
        "injected": (REVIEWS / "plain.json").read_bytes(),
        "not_opted_in": (REVIEWS / "no_annotation.json").read_bytes(),
    }
    per_run: dict[str, list[dict[str, float]]] = {
        k: [] for k in (*bodies, "healthz", "fresh_connection")
    }
    cpu_per_review = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, ctx = _start(Path(tmp), pin)
        try:
            for _ in range(runs):
                cpu0 = _cpu_seconds(proc.pid)
                per_run["injected"].append(
                    _keep_alive(port, ctx, bodies["injected"], requests, expect_patch=True)
                )
                cpu_per_review.append((_cpu_seconds(proc.pid) - cpu0) / (requests + 200))
                per_run["not_opted_in"].append(
                    _keep_alive(port, ctx, bodies["not_opted_in"], requests, expect_patch=False)
                )
                per_run["healthz"].append(_healthz(port, ctx, requests))
                per_run["fresh_connection"].append(
                    _fresh_connections(port, ctx, bodies["injected"], max(requests // 10, 100))
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    result: dict[str, Any] = {
        name: {k: round(statistics.median(r[k] for r in runs_), 3) for k in runs_[0]}
        for name, runs_ in per_run.items()
    }
    result["cpu_us_per_injected_review"] = round(statistics.median(cpu_per_review) * 1e6, 1)
    result["requests_per_run"] = requests
    result["runs"] = runs
    result["pinned"] = pin
    result["load_average"] = os.getloadavg()
    result["target_p99_ms"] = 5.0
    return result


def print_results(r: dict[str, Any]) -> None:
    print(f"injector AdmissionReview round trip ({r['runs']} runs x {r['requests_per_run']})")
    print(f"{'case':<34}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    labels = {
        "injected": "keep-alive, injected (patch)",
        "not_opted_in": "keep-alive, not opted in",
        "healthz": "keep-alive, GET /healthz (no work)",
        "fresh_connection": "new TLS connection, injected",
    }
    for key, label in labels.items():
        q = r[key]
        print(f"{label:<34}{q['p50_ms']:>9.3f}{q['p99_ms']:>9.3f}{q['max_ms']:>9.2f}")
    print(f"injector CPU per injected review: {r['cpu_us_per_injected_review']} µs")
    print(f"load average during the run: {', '.join(f'{x:.2f}' for x in r['load_average'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Injector AdmissionReview round-trip benchmark")
    parser.add_argument("--requests", type=int, default=3000, help="reviews per case and run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pin", action="store_true", help="injector on CPU 0, client on CPU 1")
    args = parser.parse_args(argv)
    results = run_benchmark(args.requests, args.runs, args.pin)
    print_results(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
