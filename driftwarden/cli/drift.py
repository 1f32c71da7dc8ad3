"""`driftwarden drift`: batch drift of a current data file against a reference.

Reads two parquet/CSV files (the reference may also be a saved profile, ``.npz``), maps
the optional spec to the statistics core's options, and prints JSON, a table or an HTML
report. With no spec the result is what Evidently 0.7's DataDriftPreset gives.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from driftwarden.errors import DataFileError, DriftwardenError, SpecError

if TYPE_CHECKING:
    from detectors.drift import ColumnDrift, DatasetDrift, DriftConfig
    from detectors.profile import ReferenceProfile
    from driftwarden.spec import ModelSpec

# The statistics core and pyarrow load inside the command so `--help` stays instant; the
# default path (parquet or CSV read by pyarrow, summarised by numpy) never loads pandas or
# scipy, which alone took longer than reading and testing a million rows.


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    html = "html"


PROFILE_SUFFIX = ".npz"
#: Column data read at a time (both files): a wider file is read and tested in groups of
#: columns, so memory stays bounded whatever the number of columns. A column costs about
#: 16 bytes per row while it is profiled (the values and a sorted copy; measured ~14).
GROUP_BYTES = 2**30
BYTES_PER_VALUE = 16


def default_workers() -> int:
    """Threads for per-column work: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def spec_options(spec: ModelSpec) -> tuple[DriftConfig, list[str], dict[str, str]]:
    """(drift options, columns to test, their types) from a monitoring spec."""
    from detectors.spec_options import batch_column_types, drift_config

    types = batch_column_types(spec)
    return drift_config(spec), list(types), types


def drift(
    reference: Path = typer.Option(
        None,
        "--reference",
        "-r",
        help="Reference data (.parquet or .csv), or a profile saved with --save-profile (.npz). "
        "Default: the spec's reference.",
    ),
    current: Path = typer.Option(..., "--current", "-c", help="Current data (.parquet or .csv)."),
    spec_path: Path = typer.Option(
        None, "--spec", "-s", help="Monitoring spec: columns, types and drift options."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.table, "--format", "-f", help="table (default), json or html."
    ),
    output: Path = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    save_profile: Path = typer.Option(
        None,
        "--save-profile",
        help="Also save the reference profile to this .npz file, to pass as --reference later.",
    ),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Threads for per-column work (default: CPUs, at most 8)."
    ),
    fail_on_drift: bool = typer.Option(
        False, "--fail-on-drift", help="Exit with status 1 when dataset drift is detected."
    ),
) -> None:
    """Compare CURRENT with REFERENCE column by column (Evidently 0.7's defaults)."""
    from detectors.drift import ColumnMismatchError, DriftConfig, DriftConfigError
    from detectors.profile import ProfileError, ReferenceProfile
    from driftwarden.report import render_html, render_json, render_table

    workers = workers or default_workers()
    config, columns, column_types = DriftConfig(), None, None
    spec: ModelSpec | None = None
    if spec_path is not None:
        from driftwarden.spec import load_spec

        spec = load_spec(spec_path)
        config, columns, column_types = spec_options(spec)
        if reference is None and spec.reference is not None:
            reference = spec.reference.path
    if reference is None:
        raise DriftwardenError("--reference is required (or a spec with a reference)")

    try:
        groups = None
        if reference.suffix.lower() != PROFILE_SUFFIX and (
            output_format is not OutputFormat.html and save_profile is None
        ):  # the HTML report and a saved profile need every column's profile at the end
            groups = column_groups(reference, current, columns)
        if groups is not None:
            result = drift_in_groups(
                reference, current, groups, spec, config, column_types, workers
            )
        else:
            if reference.suffix.lower() == PROFILE_SUFFIX:
                if not reference.is_file():
                    raise DataFileError(f"{reference}: no such file")
                ref_profile = ReferenceProfile.load(reference)
            else:
                ref_profile = profile_file(reference, columns, workers, reference=True)
            if spec is not None and spec.drift.thresholds == "calibrated":
                from detectors.spec_options import drift_config  # thresholds from the reference

                config = drift_config(spec, ref_profile, column_types=column_types, workers=workers)
            cur_profile = profile_file(current, columns, workers, reference=False)
            result = drift_of_profiles(
                ref_profile, cur_profile, config, column_types, columns, workers
            )
    except (ColumnMismatchError, ProfileError) as e:
        raise DataFileError(str(e)) from e
    except DriftConfigError as e:
        raise SpecError(str(e)) from e

    if save_profile is not None:
        try:
            ref_profile.save(save_profile)
        except OSError as e:
            raise DataFileError(
                f"{save_profile}: cannot write the profile: {e.strerror or e}"
            ) from e

    if output_format is OutputFormat.json:
        text = render_json(result)
    elif output_format is OutputFormat.html:
        text = render_html(
            result,
            ref_profile.columns,
            cur_profile.columns,
            sources=(str(reference), str(current)),
        )
    else:
        text = render_table(result, color=output is None and _stdout_is_tty())
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as e:
            raise DataFileError(f"{output}: cannot write: {e.strerror or e}") from e
    if fail_on_drift and result.dataset_drift:
        raise typer.Exit(1)


def column_groups(
    reference: Path, current: Path, columns: list[str] | None
) -> list[tuple[list[str], list[str]]] | None:
    """The current file's columns (or `columns`) in groups that fit `GROUP_BYTES`, each with
    those of them the reference has; None to read everything at once (a CSV file, one
    pandas must read, or one that fits)."""
    from driftwarden.tables import check_columns, parquet_layout

    ref, cur = parquet_layout(reference), parquet_layout(current)
    if ref is None or cur is None:
        return None
    (ref_names, ref_rows), (cur_names, cur_rows) = ref, cur
    # the errors of reading them all at once, in the same order
    check_columns(reference, ref_names, columns)
    names = check_columns(current, cur_names, columns)
    size = max(1, GROUP_BYTES // (BYTES_PER_VALUE * max(1, ref_rows + cur_rows)))
    if size >= len(names):
        return None
    in_reference = set(ref_names)
    return [
        (group, [c for c in group if c in in_reference])
        for group in (names[i : i + size] for i in range(0, len(names), size))
    ]


def drift_in_groups(
    reference: Path,
    current: Path,
    groups: list[tuple[list[str], list[str]]],
    spec: ModelSpec | None,
    config: DriftConfig,
    column_types: dict[str, str] | None,
    workers: int,
) -> DatasetDrift:
    """`drift_of_profiles` of every column, reading and testing one group of columns at a
    time: each column's result is the same (calibration is seeded per column, the budget
    per spec), the false discovery rate and the dataset verdict span all the columns."""
    from detectors.drift import column_drifts, combine_drifts

    results: list[ColumnDrift] = []
    not_profiled: dict[str, str] = {}  # the current data's datetime columns
    not_tested: dict[str, str] = {}
    for group, in_reference in groups:
        ref_profile = profile_file(reference, in_reference, workers, reference=True)
        group_config = config
        if spec is not None and spec.drift.thresholds == "calibrated":
            from detectors.spec_options import drift_config  # thresholds from the reference

            types = {c: column_types[c] for c in group} if column_types else None
            group_config = drift_config(spec, ref_profile, column_types=types, workers=workers)
        cur_profile = profile_file(current, group, workers, reference=False)
        if spec is not None:
            _refuse_skipped(group, cur_profile)
        part, why = column_drifts(
            ref_profile,
            cur_profile.columns,
            group_config,
            column_types=column_types,
            columns=[c for c in group if c not in cur_profile.skipped],
            workers=workers,
        )
        results.extend(part)
        not_profiled.update(cur_profile.skipped)
        not_tested.update(why)
    return combine_drifts(results, {**not_profiled, **not_tested}, config)


def _refuse_skipped(columns: list[str], current: ReferenceProfile) -> None:
    """A column the spec names must be testable."""
    from detectors.profile import ProfileError

    for name in columns:
        if name in current.skipped:
            raise ProfileError(f"column {name!r}: datetime columns are not drift-tested")


def profile_file(
    path: Path, columns: list[str] | None, workers: int, *, reference: bool
) -> ReferenceProfile:
    """Summaries of the file's columns (read by pyarrow, one column per thread); the data
    itself is dropped as soon as it is summarised. The current data's sd is never used."""
    from detectors.profile import ReferenceProfile
    from driftwarden.tables import read_columns

    data = read_columns(path, columns=columns)
    return ReferenceProfile.from_frame(
        data, workers=workers, text_columns=data.text, with_std=reference
    )


def drift_of_profiles(
    reference: ReferenceProfile,
    current: ReferenceProfile,
    config: DriftConfig,
    column_types: dict[str, str] | None,
    columns: list[str] | None,
    workers: int,
) -> DatasetDrift:
    """What `DriftDetector` gives for one window holding all of `current`: the same
    summaries (`detectors.profile.summarize`), the same tests, the same skipped columns."""
    from detectors.drift import DatasetDrift, dataset_drift

    if columns is not None:
        _refuse_skipped(columns, current)
    result = dataset_drift(
        reference,
        current.columns,
        config,
        column_types=column_types,
        columns=columns,
        workers=workers,
    )
    if not current.skipped:
        return result
    return DatasetDrift(
        columns=result.columns,
        drift_share=result.drift_share,
        dataset_drift=result.dataset_drift,
        share_threshold=result.share_threshold,
        skipped={**current.skipped, **result.skipped},
        extras=result.extras,
    )


def _stdout_is_tty() -> bool:
    import sys

    return sys.stdout.isatty()
