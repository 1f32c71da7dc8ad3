"""`driftwarden canary run|plan|templates|abort|resume`: the canary controller (docs/canary.md).

Every flag of `run` can also be set as DRIFTWARDEN_<FLAG> (dashes become underscores).
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from driftwarden.cli._kafka import with_kafka_security
from driftwarden.errors import DriftwardenError
from driftwarden.kafka import DEFAULT_TOPIC_PREFIX, KafkaSecurity
from driftwarden.logs import LogFormat

app = typer.Typer(
    help="The canary controller: roll a retrained version out step by step, judged on ML metrics.",
    no_args_is_help=True,
)


def _namespaces(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise DriftwardenError("--namespaces: give at least one namespace (comma-separated)")
    return names


POLICIES = typer.Option(..., envvar="DRIFTWARDEN_POLICIES", help="Folder of retrain policy files.")
NAMESPACES = typer.Option(
    "default", "--namespaces", envvar="DRIFTWARDEN_NAMESPACES", help="Comma-separated namespaces."
)
KUBECONFIG = typer.Option(
    None, envvar="DRIFTWARDEN_KUBECONFIG", help="Kubeconfig (default: in-cluster service account)."
)


def _settings(**kwargs):
    from retrain_trigger.canary.runner import CanarySettings

    return CanarySettings(**kwargs)


@app.command("run")
@with_kafka_security
def run(
    policies: Path = POLICIES,
    prometheus: str = typer.Option(
        "http://127.0.0.1:9090", envvar="DRIFTWARDEN_PROMETHEUS", help="Prometheus base URL."
    ),
    namespaces: str = NAMESPACES,
    kubeconfig: Path = KUBECONFIG,
    bootstrap: str = typer.Option(
        "127.0.0.1:9092",
        envvar="DRIFTWARDEN_BOOTSTRAP",
        help="Kafka for lineage ('' turns it off).",
    ),
    topic_prefix: str = typer.Option(
        DEFAULT_TOPIC_PREFIX, envvar="DRIFTWARDEN_TOPIC_PREFIX", help="Lineage: <prefix>.lineage."
    ),
    metrics_port: int = typer.Option(
        9102, envvar="DRIFTWARDEN_METRICS_PORT", help="/metrics port."
    ),
    resync_s: float = typer.Option(
        5.0, envvar="DRIFTWARDEN_RESYNC_S", help="Seconds between reconcile passes."
    ),
    events: bool = typer.Option(True, envvar="DRIFTWARDEN_EVENTS", help="Emit Kubernetes Events."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the plan and the queries of every rollout due; change nothing.",
    ),
    log_level: str = typer.Option("info", envvar="DRIFTWARDEN_LOG_LEVEL"),
    log_format: LogFormat = typer.Option("text", envvar="DRIFTWARDEN_LOG_FORMAT"),
    *,
    kafka_security: KafkaSecurity,
) -> None:
    """Reconcile the rollouts of every model in the policies until SIGTERM."""
    from driftwarden.logs import configure_logging
    from retrain_trigger.canary.runner import CanaryService

    configure_logging(log_level, log_format)
    settings = _settings(
        policies=policies,
        prometheus=prometheus,
        namespaces=_namespaces(namespaces),
        kubeconfig=kubeconfig,
        bootstrap=bootstrap or None,
        topic_prefix=topic_prefix,
        metrics_port=metrics_port,
        resync_s=resync_s,
        emit_events=events,
        kafka_security=kafka_security,
    )
    service = CanaryService(settings)
    if dry_run:
        try:
            for line in service.dry_run():
                typer.echo(line)
        finally:
            service.close()
        return
    service.serve_forever()


@app.command("plan")
def plan(
    policy: Path = typer.Option(..., "--policy", help="One retrain policy file."),
    version: str = typer.Option(..., "--version", help="The new version."),
    stable_version: str = typer.Option(..., "--stable-version", help="The version serving now."),
    replicas: int = typer.Option(4, "--replicas", min=1, help="The stable Deployment's replicas."),
) -> None:
    """Print what a rollout would do, step by step, and every analysis query (offline)."""
    from retrain_trigger.canary.controller import plan_lines
    from retrain_trigger.canary.routers import make_router
    from retrain_trigger.policy import load_policy

    p = load_policy(policy)
    router = make_router(p.canary.router, kube=None)  # type: ignore[arg-type]
    for line in plan_lines(
        p, version=version, stable_version=stable_version, replicas=replicas, router=router
    ):
        typer.echo(line)


@app.command("templates")
def templates(
    policy: Path = typer.Option(..., "--policy", help="One retrain policy file."),
    kind: str = typer.Option("argo", "--format", help="argo (AnalysisTemplate) or flagger."),
    prometheus: str = typer.Option(
        "http://prometheus.monitoring:9090", "--prometheus", help="Prometheus address in them."
    ),
) -> None:
    """Render the analysis as an Argo Rollouts AnalysisTemplate or Flagger MetricTemplates."""
    from retrain_trigger.canary.templates import argo_analysis_template, flagger_metric_templates
    from retrain_trigger.policy import load_policy

    p = load_policy(policy)
    if kind == "argo":
        typer.echo(
            yaml.safe_dump(argo_analysis_template(p.model, p.canary, prometheus), sort_keys=False)
        )
    elif kind == "flagger":
        docs, refs = flagger_metric_templates(p.model, p.canary, prometheus)
        typer.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
        typer.echo("# the Canary's spec.analysis.metrics:")
        typer.echo(yaml.safe_dump({"metrics": refs}, sort_keys=False))
    else:
        raise DriftwardenError(f"--format: {kind!r} is not one of argo, flagger")


def _controller(policies: Path, namespaces: str, kubeconfig: Path | None):
    from retrain_trigger.canary.runner import CanaryService

    return CanaryService(
        _settings(
            policies=policies,
            namespaces=_namespaces(namespaces),
            kubeconfig=kubeconfig,
            bootstrap=None,
        )
    )


@app.command("abort")
def abort(
    model: str = typer.Option(..., "--model", "-m"),
    policies: Path = POLICIES,
    namespaces: str = NAMESPACES,
    kubeconfig: Path = KUBECONFIG,
) -> None:
    """Roll the model's current canary back now."""
    service = _controller(policies, namespaces, kubeconfig)
    try:
        state = service.controller.abort(model)
    finally:
        service.close()
    typer.echo(f"{model}: {'no rollout' if state is None else state.phase.value}")


@app.command("resume")
def resume(
    model: str = typer.Option(..., "--model", "-m"),
    policies: Path = POLICIES,
    namespaces: str = NAMESPACES,
    kubeconfig: Path = KUBECONFIG,
) -> None:
    """Resume a held rollout at its step, with a fresh deadline."""
    service = _controller(policies, namespaces, kubeconfig)
    try:
        state = service.controller.resume(model)
    finally:
        service.close()
    typer.echo(f"{model}: {state.phase.value} at {state.weight}%")
