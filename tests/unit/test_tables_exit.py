"""Reading a parquet file must not abort the process at exit.

`pd.read_parquet(path)` opens the file as a Python object and hands it to pyarrow; when the
interpreter exits, an arrow worker thread could drop the last reference to it, need the GIL
that is already gone, and abort with "terminate called without an active exception" — about
one run in six on two cores, after the command's output was written. Each run here is a
fresh interpreter; with the old read, sixteen runs catch it most times (3 of 4 tried)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCRIPT = "import sys\nfrom driftwarden.tables import read_table\nread_table(sys.argv[1])\n"


def test_processes_that_read_parquet_exit_cleanly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "reference.parquet"
    pq.write_table(
        pa.table({"age": rng.normal(size=1000), "country": rng.choice(["DE", "US"], 1000)}),
        path,
    )

    def run(_: int) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", SCRIPT, str(path)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, range(16)))
    failed = [(r.returncode, r.stderr.strip()[-200:]) for r in results if r.returncode != 0]
    assert not failed, failed
