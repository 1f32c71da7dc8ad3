"""Reading tabular data files (parquet or CSV) for specs, reference data and batch drift.

Two readers, one meaning:

* `read_table` gives a pandas DataFrame (specs, the trainer, anything that wants pandas).
* `read_columns` gives each column as a pyarrow array, read by pyarrow's multi-threaded
  readers without loading pandas (half a second of start-up) and without turning strings
  into Python objects. The statistics core (`detectors.profile`) summarises these arrays as
  it would summarise the DataFrame `read_table` gives: the same value types, the same
  missing values. Where pandas would load a column in a way that only pandas reproduces
  (nullable extension dtypes, dates and odd types in parquet), the file is read with pandas.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftwarden.errors import DataFileError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "Columns",
    "check_columns",
    "parquet_layout",
    "read_columns",
    "read_table",
]

PARQUET_SUFFIXES = {".parquet", ".pq"}
CSV_SUFFIXES = {".csv"}

# pandas.read_csv's default missing-value markers and boolean spellings, so that pyarrow's
# CSV reader finds the same missing values and the same booleans.
PANDAS_NA_VALUES = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip
PANDAS_TRUE = ["True", "TRUE", "true"]
PANDAS_FALSE = ["False", "FALSE", "false"]


class Columns(dict[str, Any]):
    """Column name -> values (pyarrow arrays, or pandas Series for a file read by pandas).

    `text`: the names of text columns (strings pandas would hold as Python objects) that
    were read dictionary-encoded, because counting codes is far cheaper than hashing
    strings; they are plain strings, not categories.
    """

    def __init__(self, items: Any = (), text: frozenset[str] = frozenset()):
        super().__init__(items)
        self.text = text


def _checked(path: str | Path) -> tuple[Path, str]:
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
    return p, suffix


def _unreadable(p: Path, suffix: str, e: Exception) -> DataFileError:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return DataFileError(f"{p}: cannot read as {suffix[1:]}: {detail}")


def check_columns(p: Path, present: list[str], columns: list[str] | None) -> list[str]:
    """`columns` (all of `present` when None); a `DataFileError` naming the missing ones."""
    if columns is None:
        return present
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataFileError(f"{p}: missing column(s) {', '.join(map(repr, missing))}")
    return list(columns)


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Load a parquet or CSV file; every failure is one `DataFileError` line naming the file."""
    import pandas as pd

    p, suffix = _checked(path)
    try:
        frame = _parquet_frame(p) if suffix in PARQUET_SUFFIXES else pd.read_csv(p)
    except Exception as e:  # pyarrow and pandas raise many unrelated types for a bad file
        raise _unreadable(p, suffix, e) from e
    if columns is not None:
        check_columns(p, list(frame.columns), columns)
        frame = frame[columns]
    return frame


def _parquet_frame(p: Path) -> pd.DataFrame:
    """`pd.read_parquet` without its Python file handle: pandas hands pyarrow an open Python
    file, and when the interpreter exits an arrow worker thread may drop the last reference to
    it, need the GIL that is gone, and abort the process ("terminate called without an active
    exception") after the command's output is written. pyarrow opening the path itself holds
    no Python object."""
    import pyarrow.parquet as pq

    return pq.read_table(str(p)).to_pandas()


def read_columns(path: str | Path, columns: list[str] | None = None) -> Columns:
    """The file's columns (or `columns`, in that order) by name, as pyarrow arrays (pandas
    Series where the file needs pandas); failures as in `read_table`."""
    p, suffix = _checked(path)
    try:
        reader = _read_parquet if suffix in PARQUET_SUFFIXES else _read_csv
        out = reader(p, columns)
    except DataFileError:
        raise
    except Exception as e:  # pyarrow raises several unrelated types for a bad file
        raise _unreadable(p, suffix, e) from e
    if out is None:  # a type only pandas loads the pandas way
        frame = read_table(p, columns)
        return Columns((str(name), values) for name, values in frame.items())
    return out


def _plain_type(t: Any) -> bool:
    """Types whose pandas meaning `detectors.profile` reproduces from the arrow array."""
    import pyarrow as pa

    return (
        (pa.types.is_floating(t) and not pa.types.is_float16(t))
        or pa.types.is_integer(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_duration(t)
        or pa.types.is_null(t)
        or (pa.types.is_dictionary(t) and _plain_type(t.value_type))
    )


def _pandas_extension(numpy_type: Any) -> bool:
    """A pandas metadata ``numpy_type`` that is not a numpy dtype (``Int64``, ``string``,
    ``datetime64[ns, UTC]``, ...): pandas restores such columns with its own dtypes."""
    import numpy as np

    try:
        np.dtype(numpy_type)
    except TypeError:
        return True
    return False


def parquet_layout(path: str | Path) -> tuple[list[str], int] | None:
    """(column names, rows) of a parquet file whose columns `read_columns` reads one by one
    with pyarrow, from its footer alone; None for a CSV file or one that needs pandas (a
    caller then reads the whole file at once). Failures as in `read_columns`."""
    p, suffix = _checked(path)
    if suffix not in PARQUET_SUFFIXES:
        return None
    import pyarrow.parquet as pq

    try:
        plan = _parquet_plan(p, None)
        rows = pq.ParquetFile(p, memory_map=True).metadata.num_rows if plan else 0
    except DataFileError:
        raise
    except Exception as e:  # pyarrow raises several unrelated types for a bad file
        raise _unreadable(p, suffix, e) from e
    return (plan[0], rows) if plan is not None else None


def _parquet_plan(p: Path, columns: list[str] | None) -> tuple[list[str], frozenset[str]] | None:
    """(the columns to read, the text ones among them), or None when pandas must read it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(p, memory_map=True)
    meta = schema.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    present = [name for name in schema.names if name not in index]
    if len(set(present)) != len(present):
        return None
    names = check_columns(p, present, columns)
    if any(not _plain_type(schema.field(n).type) for n in names):
        return None
    extension = {
        c.get("field_name")
        for c in meta.get("columns", [])
        if c.get("pandas_type") != "categorical" and _pandas_extension(c.get("numpy_type"))
    }
    if extension.intersection(names):
        return None
    text = frozenset(
        n
        for n in names
        if pa.types.is_string(schema.field(n).type)
        or pa.types.is_large_string(schema.field(n).type)
    )
    return names, text


def _read_parquet(p: Path, columns: list[str] | None) -> Columns | None:
    # ParquetFile, not pq.read_table: the latter goes through pyarrow.dataset, which
    # imports pandas. Memory-mapped: pages are decoded straight from the page cache.
    import pyarrow.parquet as pq

    plan = _parquet_plan(p, columns)
    if plan is None:
        return None
    names, text = plan
    with pq.ParquetFile(p, memory_map=True, read_dictionary=sorted(text)) as parquet:
        table = parquet.read(columns=names, use_threads=True)
    return Columns(((name, table.column(name)) for name in names), text=text)


def _read_csv(p: Path, columns: list[str] | None) -> Columns | None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def read(as_text: list[str]) -> pa.Table:
        return pacsv.read_csv(
            p,
            convert_options=pacsv.ConvertOptions(
                null_values=PANDAS_NA_VALUES,
                true_values=PANDAS_TRUE,
                false_values=PANDAS_FALSE,
                strings_can_be_null=True,
                include_columns=columns,
                column_types=dict.fromkeys(as_text, pa.string()),
            ),
        )

    if columns is not None:
        header = pacsv.open_csv(p).schema.names  # reads the first block only
        check_columns(p, header, columns)
    table = read([])
    names = table.column_names
    if len(set(names)) != len(names):
        return None  # pandas renames duplicate headers ("a", "a.1")
    # pandas parses no dates or times: such columns are text, as pandas keeps them
    dated = [
        f.name
        for f in table.schema
        if not (
            pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type)
            or pa.types.is_string(f.type)
            or pa.types.is_null(f.type)
        )
    ]
    if dated:
        table = read(dated)
    # an empty CSV column is float NaN for pandas (arrow infers its null type)
    return Columns(
        (name, pa.nulls(table.num_rows, pa.float64()) if pa.types.is_null(col.type) else col)
        for name, col in zip(names, table.columns, strict=True)
    )
