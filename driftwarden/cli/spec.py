"""`driftwarden spec infer|validate`: draft a monitoring spec from data, check one."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from driftwarden.errors import DriftwardenError

# pandas and pydantic load inside the commands so `driftwarden --help` stays instant.

app = typer.Typer(help="Draft and check model monitoring specs.", no_args_is_help=True)


@app.command("infer")
def infer(
    data: Path = typer.Argument(..., help="Reference data: a .parquet or .csv file."),
    model: str = typer.Option(None, "--model", "-m", help="Model name (default: the file's stem)."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write the spec here instead of stdout."
    ),
    prediction: str = typer.Option(None, help="Prediction column (default: found by name)."),
    target: str = typer.Option(None, help="Target/label column (default: found by name)."),
    window_rows: int = typer.Option(10_000, min=1, help="Rows per drift window."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    """Write a first draft of a spec, with column types inferred from DATA."""
    from driftwarden.infer import infer_spec
    from driftwarden.spec import dump_spec
    from driftwarden.tables import read_table

    if output is not None and output.exists() and not force:  # before any data is read
        raise DriftwardenError(f"{output}: already exists (use --force to overwrite)")
    frame = read_table(data)
    if output is not None:
        ref_path = Path(os.path.relpath(data.resolve(), output.resolve().parent))
    else:
        ref_path = data
    spec = infer_spec(
        frame,
        model=model or data.stem,
        reference_path=ref_path,
        prediction=prediction,
        target=target,
        window_rows=window_rows,
    )
    text = dump_spec(spec)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    n_num = sum(f.type == "numerical" for f in spec.features)
    Console(stderr=True).print(
        f"wrote {output}: model [bold]{spec.model}[/], {n_num} numerical and "
        f"{len(spec.features) - n_num} categorical features"
        + (f", prediction {spec.prediction.column!r}" if spec.prediction else "")
        + (f", target {spec.target.column!r}" if spec.target else "")
    )


@app.command("validate")
def validate(
    files: list[Path] = typer.Argument(..., help="Spec files to check."),
    check_reference: bool = typer.Option(
        True, help="Also check the reference file exists and has the spec's columns."
    ),
) -> None:
    """Check spec files; print one line per file, exit non-zero on the first invalid one."""
    from driftwarden.spec import load_spec
    from driftwarden.tables import read_table

    for f in files:
        spec = load_spec(f)
        if check_reference and spec.reference is not None:
            wanted = spec.feature_names
            wanted += [p.column for p in (spec.prediction, spec.target) if p is not None]
            read_table(spec.reference.path, columns=wanted)
        typer.echo(f"{f}: ok (model {spec.model}, {len(spec.features)} features)")
