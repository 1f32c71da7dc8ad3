"""`driftwarden dataset export`: a model's predictions joined to their labels, from Kafka.

Every flag can also be set as an environment variable DRIFTWARDEN_<FLAG> (`--bootstrap`
is DRIFTWARDEN_BOOTSTRAP). The join follows the detectors' semantics (docs/trainer.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from driftwarden.cli._kafka import with_kafka_security
from driftwarden.errors import DriftwardenError
from driftwarden.kafka import DEFAULT_TOPIC_PREFIX, KafkaSecurity

app = typer.Typer(help="Training data from the captured predictions.", no_args_is_help=True)


@app.command("export")
@with_kafka_security
def export(
    model: str = typer.Option(..., "--model", "-m", envvar="DRIFTWARDEN_MODEL", help="Model name."),
    since: str = typer.Option(
        ..., envvar="DRIFTWARDEN_SINCE", help="How far back: 90s, 30m, 6h, 2d (prediction time)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output file, .parquet or .csv."),
    bootstrap: str = typer.Option(
        "127.0.0.1:9092", envvar="DRIFTWARDEN_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
    topic_prefix: str = typer.Option(
        DEFAULT_TOPIC_PREFIX, envvar="DRIFTWARDEN_TOPIC_PREFIX", help="Kafka topic prefix."
    ),
    spec: Path = typer.Option(
        None,
        envvar="DRIFTWARDEN_SPEC",
        help="The model's spec: feature order and types, and the label join TTL.",
    ),
    ttl: float = typer.Option(
        None, min=0.001, help="Label join TTL in seconds (default: the spec's, else 86400)."
    ),
    keep_unlabelled: bool = typer.Option(
        False, "--keep-unlabelled", help="Also write predictions without a label (label null)."
    ),
    timeout: float = typer.Option(
        60.0, min=1.0, envvar="DRIFTWARDEN_TIMEOUT", help="Seconds to read the topics in."
    ),
    *,
    kafka_security: KafkaSecurity,
) -> None:
    """Join the model's predictions since SINCE to their labels and write a training file."""
    from driftwarden.errors import ExternalError
    from driftwarden.spec import load_spec
    from retrain_trigger.dataset import ExportSettings, export_dataset, parse_duration

    model_spec = load_spec(spec) if spec is not None else None
    if model_spec is not None and model_spec.model != model:
        raise DriftwardenError(f"--spec: {spec} is the spec of model {model_spec.model!r}")
    settings = ExportSettings(
        model=model,
        since_s=parse_duration(since),
        bootstrap=bootstrap,
        topic_prefix=topic_prefix,
        ttl_s=ttl
        if ttl is not None
        else (model_spec.labels.join_ttl_s if model_spec is not None else 86_400.0),
        keep_unlabelled=keep_unlabelled,
        timeout_s=timeout,
        spec=model_spec,
        kafka_security=kafka_security,
    )
    try:
        report = export_dataset(settings, output)
    except ExternalError as e:
        raise DriftwardenError(f"kafka {bootstrap}: {e}") from e
    typer.echo(report.line(), err=True)
