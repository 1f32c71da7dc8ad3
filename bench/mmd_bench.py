"""Benchmark of the kernel MMD permutation test: wall time and peak memory per sample size.

    python -m bench.mmd_bench                       # n = 5k, 20k, 50k per side, d = 25, B = 200
    python -m bench.mmd_bench --sizes 5000 --permutations 50 --devices cpu --json out.json

Each (device, n) runs in a fresh subprocess so its peak memory is its own: peak RSS growth
over the process after warm-up (CPU), or ``torch.cuda.max_memory_allocated`` (CUDA). Data are
two Gaussian samples with a small mean shift in every column. The timed call is one
``MMDTest.test`` after a small warm-up call; one repetition (a 50k run takes minutes on two
CPU cores).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

MiB = 2**20


def _one(n: int, d: int, permutations: int, device: str, dtype: str, seed: int) -> dict:
    import numpy as np
    import torch

    from detectors.mmd import MMDTest

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, d)) + 0.02
    test = MMDTest(
        n_permutations=permutations, seed=seed, device=device, dtype=getattr(torch, dtype)
    )
    test.test(x[:256], y[:256])  # warm-up: thread pools, CUDA context, kernels
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    result = test.test(x, y)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    row = {
        "n_per_side": n,
        "d": d,
        "permutations": permutations,
        "device": result.device,
        "dtype": dtype,
        "seconds": round(seconds, 3),
        "peak_rss_growth_mib": round((rss_after - rss_before) / MiB, 1),
        "estimate_mib": round(test.memory_estimate(n, n, d) / MiB, 1),
        "full_kernel_mib": round((2 * n) ** 2 * 8 / MiB, 1),
        "chunk": result.chunk_size,
        "mmd2": result.mmd2,
        "p_value": result.p_value,
        "threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        row["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / MiB, 1)
        row["gpu"] = torch.cuda.get_device_name()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mmd_bench", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 50_000])
    parser.add_argument("--d", type=int, default=25, help="features (default 25)")
    parser.add_argument("--permutations", type=int, default=200, help="B (default 200)")
    parser.add_argument(
        "--devices", nargs="+", default=None, help="default: cpu, plus cuda when available"
    )
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:  # child process: one configuration, one JSON line
        row = _one(args.sizes[0], args.d, args.permutations, args.devices[0], args.dtype, args.seed)
        print(json.dumps(row))
        return 0

    devices = args.devices
    if devices is None:
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    header = (
        f"{'device':<8} {'dtype':<8} {'n/side':>7} {'d':>3} {'B':>4} {'seconds':>9} "
        f"{'peak MiB':>9} {'est MiB':>8} {'N^2 MiB':>9} {'chunk':>6} {'p':>7}"
    )
    print(f"# {platform.node()} {platform.processor() or platform.machine()}", flush=True)
    print(header, flush=True)
    for device in devices:
        for n in args.sizes:
            cmd = [
                sys.executable,
                "-m",
                "bench.mmd_bench",
                "--one",
                "--sizes",
                str(n),
                "--d",
                str(args.d),
                "--permutations",
                str(args.permutations),
                "--devices",
                device,
                "--dtype",
                args.dtype,
                "--seed",
                str(args.seed),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            peak = row.get("gpu_peak_mib", row["peak_rss_growth_mib"])
            print(
                f"{row['device']:<8} {row['dtype']:<8} {n:>7} {args.d:>3} {args.permutations:>4} "
                f"{row['seconds']:>9.2f} {peak:>9.1f} {row['estimate_mib']:>8.1f} "
                f"{row['full_kernel_mib']:>9.0f} {row['chunk']:>6} {row['p_value']:>7.4f}",
                flush=True,
            )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
