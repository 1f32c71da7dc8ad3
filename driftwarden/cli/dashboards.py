"""`driftwarden dashboards export|upload`: write the Grafana dashboards as JSON, or upload them
to a Grafana (folder created when missing, each dashboard overwritten by its uid)."""

from __future__ import annotations

from pathlib import Path

import typer

# The dashboard builders load inside the commands so `driftwarden --help` stays instant.

app = typer.Typer(help="Export or upload the Grafana dashboards.", no_args_is_help=True)


@app.command("export")
def export(
    directory: Path = typer.Argument(..., help="Folder to write <uid>.json files into."),
) -> None:
    """Write every dashboard as Grafana JSON (for provisioning or a manual import)."""
    from dashboards.generate import write_dashboards
    from driftwarden.errors import DriftwardenError

    if directory.exists() and not directory.is_dir():
        raise DriftwardenError(f"{directory}: exists and is not a folder")
    try:
        paths = write_dashboards(directory)
    except OSError as e:
        raise DriftwardenError(f"{directory}: cannot write ({e.strerror or e})") from e
    for path in paths:
        typer.echo(str(path))


@app.command("upload")
def upload(
    url: str = typer.Option(
        ..., "--url", envvar="DRIFTWARDEN_URL", help="Grafana base URL, e.g. http://grafana:3000"
    ),
    token: str = typer.Option(
        ...,
        "--token",
        envvar="DRIFTWARDEN_TOKEN",
        help="Grafana service account token (Editor role).",
    ),
    folder: str = typer.Option("driftwarden", help="Title of the folder to upload into."),
    folder_uid: str = typer.Option("driftwarden", help="Uid of that folder (created if missing)."),
    timeout: float = typer.Option(10.0, min=0.1, help="Seconds to wait for each API call."),
) -> None:
    """Upload every dashboard to Grafana, replacing earlier uploads with the same uid."""
    from dashboards.generate import all_dashboards
    from dashboards.upload import upload_dashboards

    for done in upload_dashboards(
        url,
        token,
        all_dashboards(),
        folder_uid=folder_uid,
        folder_title=folder,
        timeout=timeout,
    ):
        version = f" (version {done.version})" if done.version is not None else ""
        typer.echo(f"{done.uid}: {done.title} -> {done.url}{version}")
