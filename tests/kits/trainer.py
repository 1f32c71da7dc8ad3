"""Helpers for the trainer, model-server and dataset-export tests, and their benchmark.

    credit_frame(n, seed, drifted)   the demo's credit features (driftwarden.demo.data) with
                                     labels; drifted=True also moves the concept (see below)
    write_spec(path)                 the demo's credit spec, without a reference file
    train_artifact(...)              run `python -m retrain_trigger.train` as a subprocess
    ServerProcess(artifact)          `python -m retrain_trigger.serve` on a free port

Benchmarks: `python -m tests.kits.trainer [--rows N] [--seconds S]` prints the trainer's
rows/s on the CPU and the server's requests/s on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import yaml

from driftwarden.demo import data as demo
from driftwarden.services.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def credit_frame(n: int, seed: int, drifted: bool = False) -> pd.DataFrame:
    """n rows of the demo's credit features and their true outcome `target`, drawn by the
    demo's own generator (driftwarden.demo.data): the reference world, or the drifted one,
    where the inputs move and the concept changes too (high utilisation lowers the risk),
    so a model trained before the drift is wrong on drifted rows and retraining helps."""
    rng = np.random.default_rng(seed)
    drift = demo.Drift() if drifted else demo.NO_DRIFT
    cols = demo.sample_rows(rng, n, drift)
    frame = pd.DataFrame(cols)
    frame["target"] = demo.labels_for(demo.true_probability(cols, drift), rng)
    return frame


def spec_document() -> dict[str, Any]:
    doc = demo.spec_document("unused.parquet", 500)
    doc.pop("reference")
    return doc


def write_spec(path: Path) -> Path:
    path.write_text(yaml.safe_dump(spec_document(), sort_keys=False), encoding="utf-8")
    return path


def train_artifact(
    *args: str | Path, in_process: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the trainer's command line with `args`: in this process by default (torch is
    imported once per test session, not once per run), or as `python -m
    retrain_trigger.train` in a subprocess. Returns the exit status and captured output."""
    argv = [str(a) for a in args]
    if not in_process:
        return subprocess.run(
            [sys.executable, "-m", "retrain_trigger.train", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    from retrain_trigger.train.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's flag errors
            code = int(e.code or 0)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


class ServerProcess:
    """`python -m retrain_trigger.serve` on 127.0.0.1 and a free port; stopped by its PID."""

    def __init__(self, artifact: Path, *extra: str, start_timeout: float = 60.0) -> None:
        self.artifact = artifact
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def __enter__(self) -> ServerProcess:
        self.log_path = self.artifact.parent / f"serve-{self.port}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "retrain_trigger.serve",
                "--artifact",
                str(self.artifact),
                "--port",
                str(self.port),
                *self.extra,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(
            f"model server did not become ready: {self.log_path.read_text(errors='replace')[-2000:]}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- benchmarks ---------------------------------------------------------------------------


def bench_trainer(rows: int, epochs: int = 3) -> float:
    """Training rows per second on the CPU (forward + backward + step), one process."""
    import torch

    from driftwarden.spec import parse_spec
    from retrain_trigger.train.fit import FitSettings
    from retrain_trigger.train.trainer import TrainSettings, train

    torch.set_num_threads(1)  # as the trainer's --threads default
    frame = credit_frame(rows, seed=1)
    spec = parse_spec(spec_document())
    settings = TrainSettings(fit=FitSettings(epochs=epochs, patience=epochs))
    outcome = train(frame, spec, "target", settings, torch.device("cpu"))
    return outcome.fit.rows_per_s


async def _load(url: str, body: bytes, seconds: float, concurrency: int) -> tuple[int, int]:
    import aiohttp

    done = errors = 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal done, errors
            while time.monotonic() < stop:
                async with session.post(url, data=body) as r:
                    await r.read()
                    done += 1
                    errors += r.status != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, errors


def bench_server(artifact: Path, seconds: float, rows_per_request: int = 1) -> dict[str, float]:
    frame = credit_frame(rows_per_request, seed=2).drop(columns="target")
    import json

    body = json.dumps({"instances": frame.to_dict("records")}).encode()
    with ServerProcess(artifact) as server:
        # the server pinned to core 0; this load generator to core 1 (where there are two)
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(server.proc.pid, {0})  # type: ignore[union-attr]
            os.sched_setaffinity(0, {1})
        url = f"{server.url}/v1/models/{demo.MODEL}:predict"
        asyncio.run(_load(url, body, 1.0, 8))  # warm-up
        done, errors = asyncio.run(_load(url, body, seconds, 16))
    return {
        "requests_per_s": done / seconds,
        "errors": errors,
        "rows_per_request": rows_per_request,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="trainer and model-server benchmarks")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/driftwarden-trainer-bench"))
    args = parser.parse_args()
    print(f"trainer: {bench_trainer(args.rows):.0f} rows/s on the CPU ({args.rows} rows)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / "data.parquet"
    credit_frame(5_000, seed=3).to_parquet(data)
    spec = write_spec(args.workdir / "spec.yaml")
    out = args.workdir / "artifact"
    run = train_artifact("--data", data, "--spec", spec, "--out", out, "--epochs", "3")
    if run.returncode != 0:
        raise SystemExit(run.stderr)
    for n in (1, 32):
        r = bench_server(out, args.seconds, n)
        print(f"server: {r['requests_per_s']:.0f} req/s, {n} row(s)/request, errors {r['errors']}")


if __name__ == "__main__":
    main()
