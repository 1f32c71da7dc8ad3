"""Benchmark: `driftwarden drift` against Evidently's ``Report([DataDriftPreset()])``.

    python -m bench.drift_bench                          # 10k, 100k and 1M rows per side
    python -m bench.drift_bench --sizes 10000 100000     # a subset
    python -m bench.drift_bench --evidently-max-rows 100000   # bound the run (see below)
    python -m bench.drift_bench --json out.json          # also write the rows as JSON

The data (bench/datasets.py) has 27 columns: 20 numerical (one with missing values, two
integer counts), 5 categorical (one with categories the reference never saw), a prediction
and a target. Both sides are written to parquet once per size; then every measurement runs
in a fresh subprocess, so its peak memory (``ru_maxrss``) is its own.

Whole processes (what a user waits for; the headline ratio):

* ``evidently``: a script that imports Evidently, reads both files with pandas and runs
  ``Report([DataDriftPreset()]).run(current, reference)``: one run (minutes at 1M rows).
* ``cli``: ``driftwarden drift -r REF -c CUR --format json -o FILE``: interpreter start,
  imports, file reads, tests, JSON; the best of `--repeat` runs.

Both are timed from outside: wall clock, and CPU time (user + sys of the child, all its
threads, from ``wait4``), which a busy machine disturbs far less than wall time. The
ratio is Evidently's figure over ours, measured in the same run on the same files.

In-process (the compute after the files are read; labelled as such, never the headline):

* ``evidently`` again: the ``Report.run`` call alone, from the same child.
* ``build``: read both files, time what ``driftwarden drift`` computes: summarise the
  reference and the current data, run the tests, render the JSON.
* ``build-1t``: the same on one thread (the CLI uses the machine's CPUs by default).
* ``loaded``: the reference profile is loaded from its ``.npz`` file instead of built.

Driftwarden's in-process times are the best of `--repeat` runs in one process. Verdicts
(test name and drift per column, dataset drift) of the CLI and of the in-process runs are
compared with Evidently's column by column, with the largest relative score difference.

Run time: dominated by Evidently at 1M rows (about 3 minutes on a quiet 2-core machine);
``--evidently-max-rows`` skips Evidently above that size (``--no-evidently``: everywhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

MiB = 2**20
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
RESULTS = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------- children


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MiB


def _child_evidently(ref_path: str, cur_path: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import Report
        from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
        from evidently.presets import DataDriftPreset

    from driftwarden.tables import read_table

    t = time.perf_counter()
    ref, cur = read_table(ref_path), read_table(cur_path)
    read_s = time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        snap = Report([DataDriftPreset()], include_tests=True).run(cur, ref)
        compute_s = time.perf_counter() - t
        doc = snap.dict()
    display = {t.display_name: n for n, d in _registered_stat_tests.items() for t in d.values()}
    columns: dict[str, dict[str, Any]] = {}
    share = None
    for m in doc["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            columns[cfg["column"]] = {
                "test": display.get(cfg["method"], cfg["method"]),
                "score": float(m["value"]),
            }
        elif cfg["type"].endswith("DriftedColumnsCount"):
            share = m["value"]["share"]
    for t_ in doc["tests"]:
        if t_["id"] == "drift":
            columns[t_["metric_config"]["params"]["column"]]["drift"] = t_["status"] == "FAIL"
    return {
        "read_s": read_s,
        "compute_s": compute_s,
        "peak_mib": _peak_mib(),
        "columns": columns,
        "dataset_drift": share is not None and share >= 0.5,
    }


def _child_driftwarden(
    ref_path: str, cur_path: str, profile_path: str | None, workers: int, repeat: int
) -> dict[str, Any]:
    """What ``driftwarden drift --format json`` does, in the same order (so the same peak
    memory): read the reference, summarise it (or load its profile), drop the reference
    data, read and summarise the current data, test, render. Later repeats only refine
    the time."""
    from detectors.drift import DriftConfig
    from detectors.profile import ReferenceProfile
    from driftwarden.cli.drift import drift_of_profiles
    from driftwarden.report import render_json
    from driftwarden.tables import read_columns

    def summarise(path: str, reference: bool) -> tuple[float, float, ReferenceProfile]:
        t = time.perf_counter()
        data = read_columns(path)
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        profile = ReferenceProfile.from_frame(
            data, workers=workers, text_columns=data.text, with_std=reference
        )
        return read_s, time.perf_counter() - t, profile

    def once() -> tuple[float, float, str]:
        if profile_path is None:
            read_s, compute_s, ref = summarise(ref_path, reference=True)
        else:
            t = time.perf_counter()
            read_s, ref = 0.0, ReferenceProfile.load(profile_path)
            compute_s = time.perf_counter() - t
        cur_read_s, cur_compute_s, cur = summarise(cur_path, reference=False)
        t = time.perf_counter()
        text = render_json(drift_of_profiles(ref, cur, DriftConfig(), None, None, workers))
        compute_s += cur_compute_s + time.perf_counter() - t
        return read_s + cur_read_s, compute_s, text

    read_s, best, text = once()
    peak = _peak_mib()
    for _ in range(repeat - 1):
        best = min(best, once()[1])
    doc = json.loads(text)
    return {
        "read_s": read_s,
        "compute_s": best,
        "peak_mib": peak,
        "columns": {
            c["column"]: {"test": c["test"], "score": c["score"], "drift": c["drift_detected"]}
            for c in doc["columns"]
        },
        "dataset_drift": doc["dataset_drift"],
    }


# --------------------------------------------------------------------------- parent


def _run_process(cmd: list[str]) -> tuple[str, dict[str, float]]:
    """Run `cmd` to completion: (its stdout, its wall time, CPU time and peak RSS). The
    child's own rusage (``wait4``) counts all its threads and nothing else."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, cwd=Path(__file__).resolve().parent.parent
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{stderr[-3000:]}")
    return stdout, {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "peak_mib": usage.ru_maxrss * 1024 / MiB,
    }


def _run_child(args: list[str]) -> dict[str, Any]:
    out, process = _run_process([sys.executable, "-m", "bench.drift_bench", *args])
    result = json.loads(out.strip().splitlines()[-1])
    result["process"] = process
    return result


def _run_cli(ref: Path, cur: Path, out: Path, repeat: int) -> dict[str, Any]:
    """The whole ``driftwarden drift`` process, `repeat` times: the best wall and the best
    CPU time (each its own minimum), the verdicts of the last run."""
    exe = Path(sys.executable).with_name("driftwarden")
    cmd = [str(exe), "drift", "-r", str(ref), "-c", str(cur), "-f", "json", "-o", str(out)]
    runs = [_run_process(cmd)[1] for _ in range(max(1, repeat))]
    doc = json.loads(out.read_text())
    return {
        "wall_s": min(r["wall_s"] for r in runs),
        "cpu_s": min(r["cpu_s"] for r in runs),
        "peak_mib": max(r["peak_mib"] for r in runs),
        "runs": runs,
        "columns": {
            c["column"]: {"test": c["test"], "score": c["score"], "drift": c["drift_detected"]}
            for c in doc["columns"]
        },
        "dataset_drift": doc["dataset_drift"],
    }


def _compare(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    diffs, max_rel = [], 0.0
    for name, e in theirs["columns"].items():
        o = ours["columns"].get(name)
        if o is None or (o["test"], o["drift"]) != (e["test"], e["drift"]):
            diffs.append(name)
            continue
        if e["score"] != 0:
            max_rel = max(max_rel, abs(o["score"] - e["score"]) / abs(e["score"]))
    if set(ours["columns"]) != set(theirs["columns"]):
        diffs.extend(sorted(set(ours["columns"]) ^ set(theirs["columns"])))
    return {
        "identical_verdicts": not diffs and ours["dataset_drift"] == theirs["dataset_drift"],
        "differing_columns": diffs,
        "max_rel_score_diff": max_rel,
    }


def _child_prepare(n: int, ref: str, cur: str, profile: str | None, wide: int) -> dict[str, Any]:
    from bench.datasets import make_frames, make_wide_frames
    from detectors.profile import ReferenceProfile

    ref_frame, cur_frame = make_wide_frames(n, wide) if wide else make_frames(n)
    ref_frame.to_parquet(ref, index=False)
    cur_frame.to_parquet(cur, index=False)
    if profile:
        ReferenceProfile.from_frame(ref_frame).save(profile)
    return {}


def measure_wide(
    n: int, n_columns: int, workdir: Path, repeat: int, evidently: bool
) -> dict[str, Any]:
    """Wide data: the whole `driftwarden drift` process (which reads and tests the columns
    in groups, so its memory does not grow with the number of columns) against Evidently's
    whole process, same files, same run."""
    ref, cur = workdir / f"wide_ref_{n}.parquet", workdir / f"wide_cur_{n}.parquet"
    sizes = ["--rows", str(n), "--wide", str(n_columns)]
    _run_child(["--one", "prepare", *sizes, "--ref", str(ref), "--cur", str(cur)])
    row: dict[str, Any] = {"rows": n, "columns": n_columns}
    row["cli"] = _run_cli(ref, cur, workdir / f"wide_out_{n}.json", repeat)
    if evidently:
        row["evidently"] = _run_child(["--one", "evidently", "--ref", str(ref), "--cur", str(cur)])
        row["check_cli"] = _compare(row["cli"], row["evidently"])
    for key in ("cli", "evidently"):
        if key in row:
            row[key].pop("columns", None)
    return row


def _fmt_wide(r: dict[str, Any], machine: str) -> str:
    cli, ev = r["cli"], r.get("evidently")
    head = (
        f"Wide data, whole processes measured from outside in the same run on {machine}: "
        f"{r['rows']:,} rows x {r['columns']:,} columns per side.\n\n"
        "| | wall | CPU | peak RSS | verdicts |\n|---|---:|---:|---:|:---|\n"
        f"| driftwarden drift (best of repeats) | {cli['wall_s']:.1f} s | {cli['cpu_s']:.1f} s "
        f"| {cli['peak_mib']:,.0f} MiB | |\n"
    )
    if ev is None:
        return head + "| Evidently | skipped | | | |"
    p, check = ev["process"], r["check_cli"]
    verdict = (
        f"identical (max rel score diff {check['max_rel_score_diff']:.1e})"
        if check["identical_verdicts"]
        else f"DIFFER: {check['differing_columns'][:5]}"
    )
    return head + (
        f"| Evidently DataDriftPreset script | {p['wall_s']:.1f} s | {p['cpu_s']:.1f} s "
        f"| {p['peak_mib']:,.0f} MiB | {verdict} |\n"
        f"| ratio | {p['wall_s'] / cli['wall_s']:.0f}x | {p['cpu_s'] / cli['cpu_s']:.0f}x "
        f"| {p['peak_mib'] / cli['peak_mib']:.1f}x lower | |"
    )


def measure(n: int, workdir: Path, repeat: int, evidently: bool, workers: int) -> dict[str, Any]:
    # Linux keeps a process's peak RSS across fork and exec, so the children are started by
    # this small parent, which never holds the data: their ru_maxrss is then their own.
    ref, cur = workdir / f"ref_{n}.parquet", workdir / f"cur_{n}.parquet"
    profile = workdir / f"ref_{n}.npz"
    _run_child(
        [
            "--one",
            "prepare",
            "--rows",
            str(n),
            "--ref",
            str(ref),
            "--cur",
            str(cur),
            "--profile",
            str(profile),
        ]
    )
    row: dict[str, Any] = {"rows": n, "profile_mib": profile.stat().st_size / MiB}
    common = ["--ref", str(ref), "--cur", str(cur), "--repeat", str(repeat)]
    row["build"] = _run_child(["--one", "build", *common, "--workers", str(workers)])
    row["build-1t"] = _run_child(["--one", "build", *common, "--workers", "1"])
    row["loaded"] = _run_child(
        ["--one", "loaded", *common, "--profile", str(profile), "--workers", str(workers)]
    )
    row["cli"] = _run_cli(ref, cur, workdir / f"out_{n}.json", repeat)
    if evidently:
        row["evidently"] = _run_child(["--one", "evidently", *common])
        row["check"] = _compare(row["build"], row["evidently"])
        row["check_loaded"] = _compare(row["loaded"], row["evidently"])
        row["check_cli"] = _compare(row["cli"], row["evidently"])
    for key in ("build", "build-1t", "loaded", "evidently", "cli"):
        if key in row:
            row[key].pop("columns", None)
    return row


def _fmt_whole(rows: list[dict[str, Any]], machine: str) -> str:
    """The headline: whole processes, same run, same files."""
    lines = [
        "Whole processes (interpreter start, imports, file reads, tests, output), measured "
        f"from outside in the same run on {machine}: "
        "`driftwarden drift --format json` (best of the repeats) vs an Evidently 0.7 "
        "DataDriftPreset script (one run). CPU = user + sys of the process, all threads.",
        "",
        "| rows/side | Evidently wall / CPU | driftwarden drift wall / CPU | x faster, wall (CPU) "
        "| peak RSS Evidently / ours | verdicts (CLI vs Evidently) |",
        "|---:|---:|---:|---:|---:|:---|",
    ]
    for r in rows:
        cli, ev = r["cli"], r.get("evidently")
        ours = f"{cli['wall_s']:.2f} s / {cli['cpu_s']:.2f} s"
        if ev is None:
            lines.append(
                f"| {r['rows']:,} | skipped | {ours} | - | - / {cli['peak_mib']:,.0f} MiB | - |"
            )
            continue
        p = ev["process"]
        check = r["check_cli"]
        verdict = (
            f"identical (max rel score diff {check['max_rel_score_diff']:.1e})"
            if check["identical_verdicts"]
            else f"DIFFER: {check['differing_columns']}"
        )
        lines.append(
            f"| {r['rows']:,} | {p['wall_s']:.2f} s / {p['cpu_s']:.2f} s | {ours} "
            f"| {p['wall_s'] / cli['wall_s']:.0f}x ({p['cpu_s'] / cli['cpu_s']:.0f}x) "
            f"| {p['peak_mib']:,.0f} / {cli['peak_mib']:,.0f} MiB | {verdict} |"
        )
    return "\n".join(lines)


def _fmt_table(rows: list[dict[str, Any]], workers: int) -> str:
    lines = [
        f"In-process (compute after the files are read; not what a user waits for): "
        f"driftwarden on {workers} thread(s) vs Evidently's Report.run, same run, same files",
        "",
        "| rows/side | Evidently compute | ours, built (x faster) | ours, 1 thread (x) | ours, loaded profile (x) "
        "| Evidently peak | ours built peak (x lower) | ours loaded peak (x) | CLI process wall / peak | verdicts |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for r in rows:
        ev = r.get("evidently")
        b, b1, lo, cli = r["build"], r["build-1t"], r["loaded"], r["cli"]

        def ratio(a: float | None, b_: float) -> str:
            return f" ({a / b_:.0f}x)" if a else ""

        def mem_ratio(a: float | None, b_: float) -> str:
            return f" ({a / b_:.1f}x)" if a else ""

        ev_t = ev["compute_s"] if ev else None
        ev_m = ev["peak_mib"] if ev else None
        check = r.get("check")
        verdict = "-"
        if check:
            verdict = (
                f"identical (max rel score diff {check['max_rel_score_diff']:.1e})"
                if check["identical_verdicts"] and r["check_loaded"]["identical_verdicts"]
                else f"DIFFER: {check['differing_columns']}"
            )
        lines.append(
            f"| {r['rows']:,} | {f'{ev_t:.2f} s' if ev else 'skipped'} "
            f"| {b['compute_s']:.3f} s{ratio(ev_t, b['compute_s'])} "
            f"| {b1['compute_s']:.3f} s{ratio(ev_t, b1['compute_s'])} "
            f"| {lo['compute_s']:.3f} s{ratio(ev_t, lo['compute_s'])} "
            f"| {f'{ev_m:,.0f} MiB' if ev else '-'} "
            f"| {b['peak_mib']:,.0f} MiB{mem_ratio(ev_m, b['peak_mib'])} "
            f"| {lo['peak_mib']:,.0f} MiB{mem_ratio(ev_m, lo['peak_mib'])} "
            f"| {cli['wall_s']:.2f} s / {cli['peak_mib']:,.0f} MiB | {verdict} |"
        )
    return "\n".join(lines)


def _machine(load_before: tuple[float, float, float]) -> str:
    load_after = os.getloadavg()
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"load average {load_before[0]:.1f} before / {load_after[0]:.1f} after"
    )


def _main_wide(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    out = []
    with tempfile.TemporaryDirectory(prefix="drift-bench-wide-") as tmp:
        for n in args.sizes:
            print(f"measuring {n:,} rows x {args.wide:,} columns ...", file=sys.stderr, flush=True)
            row = measure_wide(n, args.wide, Path(tmp), args.repeat, not args.no_evidently)
            out.append(row)
            print(_fmt_wide(row, _machine(load_before)), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument(
        "--repeat", type=int, default=3, help="driftwarden runs per child (best kept)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="driftwarden threads (default: CPUs, max 8)"
    )
    parser.add_argument("--no-evidently", action="store_true", help="measure driftwarden only")
    parser.add_argument(
        "--evidently-max-rows",
        type=int,
        default=max(DEFAULT_SIZES),
        help="run Evidently only up to this many rows per side (it takes minutes at 1M)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--wide",
        type=int,
        metavar="COLUMNS",
        help="instead: wide data, --sizes rows (e.g. 100000) x COLUMNS (e.g. 1000) per side",
    )
    # internal: one measurement in this (fresh) process
    parser.add_argument(
        "--one", choices=["prepare", "evidently", "build", "loaded"], help=argparse.SUPPRESS
    )
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ref", help=argparse.SUPPRESS)
    parser.add_argument("--cur", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one == "prepare":
        print(json.dumps(_child_prepare(args.rows, args.ref, args.cur, args.profile, args.wide)))
        return
    if args.one == "evidently":
        print(json.dumps(_child_evidently(args.ref, args.cur)))
        return
    if args.one in ("build", "loaded"):
        print(
            json.dumps(
                _child_driftwarden(args.ref, args.cur, args.profile, args.workers or 1, args.repeat)
            )
        )
        return

    from driftwarden.cli.drift import default_workers

    if args.wide:
        _main_wide(args)
        return
    workers = args.workers or default_workers()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        for n in args.sizes:
            print(f"measuring {n:,} rows per side ...", file=sys.stderr, flush=True)
            evidently = not args.no_evidently and n <= args.evidently_max_rows
            rows.append(measure(n, Path(tmp), args.repeat, evidently, workers))
    load_after = os.getloadavg()
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"load average {load_before[0]:.1f} before / {load_after[0]:.1f} after "
        "(a busy machine inflates wall times: compare CPU times then)"
    )
    table = _fmt_whole(rows, machine) + "\n\n" + _fmt_table(rows, workers)
    table += (
        f"\n\n(benchmark driver's own peak RSS, included in every child's: {_peak_mib():.0f} MiB)"
    )
    print(table)
    out = args.json or RESULTS / "drift_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "workers": workers,
                "machine": machine,
                "load_average": [load_before, load_after],
                "rows": rows,
                "table": table,
            },
            indent=2,
        )
    )
    print(f"\n(rows written to {out})", file=sys.stderr)


if __name__ == "__main__":
    main()
