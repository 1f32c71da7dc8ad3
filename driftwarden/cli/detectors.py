"""`driftwarden detectors run`: the streaming detectors service.

Every flag can also be set as an environment variable DRIFTWARDEN_<FLAG> (dashes become
underscores: `--metrics-port` is DRIFTWARDEN_METRICS_PORT), the form the Helm chart uses.
SIGTERM (and Ctrl-C) drains: the current batch is finished, checkpointed and committed.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from driftwarden.kafka import DEFAULT_TOPIC_PREFIX
from driftwarden.logs import LogFormat, configure_logging

app = typer.Typer(help="The streaming drift detectors service.", no_args_is_help=True)


@app.command("run")
def run(
    specs: Path = typer.Option(
        ..., envvar="DRIFTWARDEN_SPECS", help="Folder of model spec files (*.yaml)."
    ),
    bootstrap: str = typer.Option(
        "127.0.0.1:9092", envvar="DRIFTWARDEN_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
    metrics_port: int = typer.Option(
        9108, envvar="DRIFTWARDEN_METRICS_PORT", help="Port of /metrics and /healthz."
    ),
    metrics_host: str = typer.Option(
        "0.0.0.0", envvar="DRIFTWARDEN_METRICS_HOST", help="Address to serve /metrics on."
    ),
    group_id: str = typer.Option(
        "driftwarden-detectors",
        envvar="DRIFTWARDEN_GROUP_ID",
        help="Kafka consumer group of the replicas.",
    ),
    topic_prefix: str = typer.Option(
        DEFAULT_TOPIC_PREFIX,
        envvar="DRIFTWARDEN_TOPIC_PREFIX",
        help="Topic prefix (<prefix>.predictions, ...).",
    ),
    instance_id: str = typer.Option(
        None,
        envvar="DRIFTWARDEN_INSTANCE_ID",
        help="Stable replica name (default: the host name, i.e. the pod name).",
    ),
    state_dir: Path = typer.Option(
        None,
        envvar="DRIFTWARDEN_STATE_DIR",
        help="Cache folder for reference profiles (checkpoints live in Kafka).",
    ),
    checkpoint_interval: float = typer.Option(
        5.0,
        envvar="DRIFTWARDEN_CHECKPOINT_INTERVAL",
        help="Seconds between checkpoints (transaction commits).",
    ),
    transaction_timeout: float = typer.Option(
        30.0, envvar="DRIFTWARDEN_TRANSACTION_TIMEOUT", help="Kafka transaction timeout, seconds."
    ),
    max_batch: int = typer.Option(
        1000, envvar="DRIFTWARDEN_MAX_BATCH", help="Records per consume() call (1-1000)."
    ),
    max_feature_series: int = typer.Option(
        200,
        envvar="DRIFTWARDEN_MAX_FEATURE_SERIES",
        help="Features per model version exported with their own label.",
    ),
    spec_reload: float = typer.Option(
        10.0, envvar="DRIFTWARDEN_SPEC_RELOAD", help="Seconds between spec folder checks."
    ),
    publish_results: bool = typer.Option(
        True, envvar="DRIFTWARDEN_PUBLISH_RESULTS", help="Write window results to <prefix>.windows."
    ),
    log_level: str = typer.Option(
        "info", envvar="DRIFTWARDEN_LOG_LEVEL", help="debug, info, warning or error."
    ),
    log_format: LogFormat = typer.Option(
        "text", envvar="DRIFTWARDEN_LOG_FORMAT", help="json or text."
    ),
) -> None:
    """Consume predictions and feedback, measure drift per window, export /metrics."""
    from detectors.service import run_service
    from detectors.service.settings import ServiceSettings

    configure_logging(log_level, log_format)
    extra = {"instance_id": instance_id} if instance_id else {}
    settings = ServiceSettings(
        specs=specs,
        bootstrap=bootstrap,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        group_id=group_id,
        topic_prefix=topic_prefix,
        state_dir=state_dir,
        checkpoint_interval_s=checkpoint_interval,
        transaction_timeout_s=transaction_timeout,
        max_batch=max_batch,
        max_feature_series=max_feature_series,
        spec_reload_s=spec_reload,
        publish_results=publish_results,
        log_level=log_level,
        log_format=log_format,
        **extra,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        run_service(settings, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
