"""The `driftwarden` command line. Each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from driftwarden import __version__
from driftwarden.errors import DriftwardenError

app = typer.Typer(
    name="driftwarden",
    help="Observability and drift monitoring for ML models on Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"driftwarden {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Observability and drift monitoring for ML models on Kubernetes."""


# Command groups register themselves below; a command exists only once it works. Each
# module imports its heavy dependencies inside its commands, so `--help` stays fast.
from driftwarden.cli import collector as collector_cmd  # noqa: E402
from driftwarden.cli import dashboards as dashboards_cmd  # noqa: E402
from driftwarden.cli import detectors as detectors_cmd  # noqa: E402
from driftwarden.cli import spec as spec_cmd  # noqa: E402
from driftwarden.cli.demo import demo as demo_cmd  # noqa: E402
from driftwarden.cli.drift import drift as drift_cmd  # noqa: E402

app.command("demo")(demo_cmd)
app.command("drift")(drift_cmd)
app.add_typer(spec_cmd.app, name="spec")
app.add_typer(collector_cmd.app, name="collector")
app.add_typer(detectors_cmd.app, name="detectors")
app.add_typer(dashboards_cmd.app, name="dashboards")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes are one line on stderr and exit status 2."""
    try:
        app(args=argv, prog_name="driftwarden", standalone_mode=True)
    except DriftwardenError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
