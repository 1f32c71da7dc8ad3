"""`driftwarden detectors run`: the streaming detectors service.

Every flag can also be set as an environment variable DRIFTWARDEN_<FLAG> (dashes become
underscores: `--metrics-port` is DRIFTWARDEN_METRICS_PORT), the form the Helm chart uses.
SIGTERM (and Ctrl-C) drains: the current batch is finished, checkpointed and committed.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import typer

from detectors.service.settings import FLAGS, ServiceSettings
from driftwarden.cli._kafka import with_kafka_security
from driftwarden.cli._options import settings_command
from driftwarden.kafka import KafkaSecurity

app = typer.Typer(help="The streaming drift detectors service.", no_args_is_help=True)


def _run(settings: ServiceSettings) -> None:
    from detectors.service import run_until_signalled
    from driftwarden.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    run_until_signalled(settings)


_DOC = "Consume predictions and feedback, measure drift per window, export /metrics."


def _run_secured(*, kafka_security: KafkaSecurity, **flags: Any) -> None:
    def run(settings: ServiceSettings) -> None:
        _run(dataclasses.replace(settings, kafka_security=kafka_security))

    settings_command(ServiceSettings, FLAGS, run, doc=_DOC)(**flags)


# Flags, defaults and help lines are stated once, on `ServiceSettings` and its `FLAGS`
# (and, for the --kafka-* flags, on `KafkaSecurity`).
_base = settings_command(ServiceSettings, FLAGS, _run, doc=_DOC)
_run_secured.__signature__ = inspect.signature(_base).replace(  # type: ignore[attr-defined]
    parameters=[
        *inspect.signature(_base).parameters.values(),
        inspect.Parameter(
            "kafka_security", inspect.Parameter.KEYWORD_ONLY, annotation=KafkaSecurity
        ),
    ]
)
_run_secured.__doc__ = _DOC
app.command("run")(with_kafka_security(_run_secured))
