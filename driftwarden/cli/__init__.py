"""The `driftwarden` command line. Each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from driftwarden import __version__
from driftwarden.cli._lazy import LazyGroup, lazy_command
from driftwarden.errors import DriftwardenError

app = typer.Typer(
    cls=LazyGroup,
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


# Command groups register themselves below, by module path: a group's module is imported
# only when that command runs (`driftwarden --help` lists them from the help text given
# here), so `--help` and each command load only what they use. A module registered eagerly
# with `app.add_typer(...)` / `app.command(...)` works too.
lazy_command("demo", "driftwarden.cli.demo:demo", "Run the whole monitoring loop on one machine.")
lazy_command(
    "drift", "driftwarden.cli.drift:drift", "Compare CURRENT with REFERENCE column by column."
)
lazy_command("spec", "driftwarden.cli.spec:app", "Draft and check model monitoring specs.")
lazy_command(
    "collector",
    "driftwarden.cli.collector:app",
    "The capture sidecar: proxy, feedback endpoint, Kafka delivery.",
)
lazy_command("detectors", "driftwarden.cli.detectors:app", "The streaming drift detectors service.")
lazy_command(
    "dashboards", "driftwarden.cli.dashboards:app", "Grafana dashboards: export and upload."
)
lazy_command(
    "canary", "driftwarden.cli.canary:app", "The canary controller: step-by-step rollouts."
)
lazy_command(
    "injector",
    "driftwarden.cli.injector:app",
    "The admission webhook that injects the collector sidecar.",
)
lazy_command(
    "trigger",
    "driftwarden.cli.trigger:app",
    "The retrain trigger: Alertmanager webhook to retraining Jobs, with lineage.",
)
lazy_command(
    "dataset", "driftwarden.cli.dataset:app", "Training data: predictions joined to labels."
)
lazy_command("topics", "driftwarden.cli.topics:app", "Kafka topics of the stack: create them.")


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
