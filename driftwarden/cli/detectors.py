"""`driftwarden detectors run`: the streaming detectors service.

Every flag can also be set as an environment variable DRIFTWARDEN_<FLAG> (dashes become
underscores: `--metrics-port` is DRIFTWARDEN_METRICS_PORT), the form the Helm chart uses.
SIGTERM (and Ctrl-C) drains: the current batch is finished, checkpointed and committed.
"""

from __future__ import annotations

import typer

from detectors.service.settings import FLAGS, ServiceSettings
from driftwarden.cli._options import settings_command

app = typer.Typer(help="The streaming drift detectors service.", no_args_is_help=True)


def _run(settings: ServiceSettings) -> None:
    from detectors.service import run_until_signalled
    from driftwarden.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    run_until_signalled(settings)


# Flags, defaults and help lines are stated once, on `ServiceSettings` and its `FLAGS`.
app.command("run")(
    settings_command(
        ServiceSettings,
        FLAGS,
        _run,
        doc="Consume predictions and feedback, measure drift per window, export /metrics.",
    )
)
