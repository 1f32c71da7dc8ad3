"""`driftwarden trigger run|validate|history`: the retrain trigger (docs/retrain-trigger.md).

Every flag of `run` can also be set as DRIFTWARDEN_<FLAG> (dashes become underscores:
`--token-file` is DRIFTWARDEN_TOKEN_FILE), the form the Helm chart uses. SIGTERM stops
accepting notifications, finishes the ones in progress and flushes the lineage.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from driftwarden.cli._kafka import with_kafka_security
from driftwarden.errors import DriftwardenError
from driftwarden.kafka import DEFAULT_TOPIC_PREFIX, KafkaSecurity
from driftwarden.logs import LogFormat

app = typer.Typer(
    help="The retrain trigger: Alertmanager webhook → retraining Job, with lineage.",
    no_args_is_help=True,
)


def _namespaces(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise DriftwardenError("--namespaces: give at least one namespace (comma-separated)")
    return names


@app.command("run")
@with_kafka_security
def run(
    policies: Path = typer.Option(
        ..., envvar="DRIFTWARDEN_POLICIES", help="Folder of retrain policy files (*.yaml)."
    ),
    token_file: Path = typer.Option(
        ...,
        envvar="DRIFTWARDEN_TOKEN_FILE",
        help="File holding the bearer token Alertmanager sends (re-read when it changes).",
    ),
    namespaces: str = typer.Option(
        "default",
        "--namespaces",
        "--namespace",
        envvar="DRIFTWARDEN_NAMESPACES",
        help="Comma-separated namespaces the trigger may touch (its RBAC covers these only).",
    ),
    kubeconfig: Path = typer.Option(
        None,
        envvar="DRIFTWARDEN_KUBECONFIG",
        help="Kubeconfig file (default: the pod's service account, in-cluster).",
    ),
    host: str = typer.Option("0.0.0.0", envvar="DRIFTWARDEN_HOST", help="Listen address."),
    port: int = typer.Option(
        8080, envvar="DRIFTWARDEN_PORT", help="Port of the webhook, /metrics and /healthz."
    ),
    bootstrap: str = typer.Option(
        "127.0.0.1:9092",
        envvar="DRIFTWARDEN_BOOTSTRAP",
        help="Kafka bootstrap servers for lineage ('' turns lineage off).",
    ),
    topic_prefix: str = typer.Option(
        DEFAULT_TOPIC_PREFIX,
        envvar="DRIFTWARDEN_TOPIC_PREFIX",
        help="Lineage goes to <prefix>.lineage.",
    ),
    max_in_flight: int = typer.Option(
        4,
        envvar="DRIFTWARDEN_MAX_IN_FLIGHT",
        help="Retrains running at once across all models (more: over_capacity).",
    ),
    max_body_bytes: int = typer.Option(
        1024 * 1024, envvar="DRIFTWARDEN_MAX_BODY_BYTES", help="Larger webhook bodies get 413."
    ),
    events: bool = typer.Option(
        True, envvar="DRIFTWARDEN_EVENTS", help="Emit Kubernetes Events on the Deployment."
    ),
    log_level: str = typer.Option(
        "info", envvar="DRIFTWARDEN_LOG_LEVEL", help="debug, info, warning or error."
    ),
    log_format: LogFormat = typer.Option(
        "text", envvar="DRIFTWARDEN_LOG_FORMAT", help="json or text."
    ),
    *,
    kafka_security: KafkaSecurity,
) -> None:
    """Receive Alertmanager notifications and launch retraining Jobs per the policies."""
    from driftwarden.logs import configure_logging
    from retrain_trigger.runner import TriggerService, TriggerSettings

    configure_logging(log_level, log_format)
    settings = TriggerSettings(
        policies=policies,
        token_file=token_file,
        namespaces=_namespaces(namespaces),
        kubeconfig=kubeconfig,
        host=host,
        port=port,
        bootstrap=bootstrap or None,
        kafka_security=kafka_security,
        topic_prefix=topic_prefix,
        max_in_flight=max_in_flight,
        max_body_bytes=max_body_bytes,
        emit_events=events,
    )
    TriggerService(settings).serve_forever()


@app.command("validate")
def validate(
    directory: Path = typer.Argument(..., help="Folder of retrain policy files."),
    namespaces: str = typer.Option(
        None, "--namespaces", help="Also check each policy's namespace is one of these."
    ),
) -> None:
    """Check every policy in DIRECTORY; one line per model, or one line naming the problem."""
    from retrain_trigger.policy import load_policies

    allowed = frozenset(_namespaces(namespaces)) if namespaces else None
    policies = load_policies(directory, namespaces=allowed)
    if not policies:
        raise DriftwardenError(f"{directory}: no policy files (*.yaml, *.yml)")
    for model, p in sorted(policies.items()):
        r = p.trainer.resources
        typer.echo(
            f"ok {model}: namespace {p.namespace}, image {p.trainer.image}, {r.gpu} GPU,"
            f" cooldown {p.cooldown_s}s, canary {p.canary.router} {p.canary.steps}"
        )


@app.command("history")
@with_kafka_security
def history(
    model: str = typer.Option(..., "--model", "-m", help="Model name."),
    bootstrap: str = typer.Option(
        "127.0.0.1:9092", envvar="DRIFTWARDEN_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
    topic_prefix: str = typer.Option(
        DEFAULT_TOPIC_PREFIX, envvar="DRIFTWARDEN_TOPIC_PREFIX", help="Reads <prefix>.lineage."
    ),
    output_format: str = typer.Option("table", "--format", help="table or json."),
    timeout: float = typer.Option(10.0, help="Seconds to wait for Kafka."),
    *,
    kafka_security: KafkaSecurity,
) -> None:
    """Show a model's lineage: alerts, decisions, Jobs, artifacts, rollouts, oldest first."""
    from datetime import UTC, datetime

    import msgspec

    from driftwarden.errors import RetryLater
    from retrain_trigger.lineage import LineageLog, lineage_topic

    if output_format not in ("table", "json"):
        raise DriftwardenError(f"--format: {output_format!r} is not one of table, json")
    try:
        events = LineageLog(
            bootstrap, lineage_topic(topic_prefix), security=kafka_security
        ).history(model, timeout=timeout)
    except RetryLater as e:
        raise DriftwardenError(f"--bootstrap {bootstrap}: {e}") from e
    if output_format == "json":
        typer.echo(json.dumps(msgspec.to_builtins(events), indent=2))
        return
    if not events:
        typer.echo(f"no lineage for model {model!r} in {lineage_topic(topic_prefix)}")
        return
    for e in events:
        when = datetime.fromtimestamp(e.ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
        detail = " ".join(f"{k}={v}" for k, v in e.detail.items() if v not in (None, ""))
        typer.echo(f"{when}  {e.step:<16} {e.ref:<40} {detail}")
