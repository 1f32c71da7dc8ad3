"""Reading tabular data files (parquet or CSV) for specs, reference data and batch drift."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from driftwarden.errors import DataFileError

PARQUET_SUFFIXES = {".parquet", ".pq"}
CSV_SUFFIXES = {".csv"}


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Load a parquet or CSV file; every failure is one `DataFileError` line naming the file."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in PARQUET_SUFFIXES | CSV_SUFFIXES:
        raise DataFileError(
            f"{p}: unsupported file type {suffix or '(none)'!r}; use .parquet or .csv"
        )
    if not p.exists():
        raise DataFileError(f"{p}: no such file")
    if p.is_dir():
        raise DataFileError(f"{p}: is a directory, expected a .parquet or .csv file")
    try:
        frame = pd.read_parquet(p) if suffix in PARQUET_SUFFIXES else pd.read_csv(p)
    except Exception as e:  # pyarrow and pandas raise many unrelated types for a bad file
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataFileError(f"{p}: cannot read as {suffix[1:]}: {detail}") from e
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataFileError(f"{p}: missing column(s) {', '.join(map(repr, missing))}")
        frame = frame[columns]
    return frame
