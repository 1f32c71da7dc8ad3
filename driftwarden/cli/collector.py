"""`driftwarden collector run`: the capture sidecar in front of a model server.

Every flag can also be set as DRIFTWARDEN_<FLAG> (the form the Helm chart and the
admission webhook use), e.g. DRIFTWARDEN_MODEL_PORT=8080.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from collector.settings import CollectorSettings as _Defaults
from driftwarden.cli._kafka import with_kafka_security
from driftwarden.errors import DriftwardenError
from driftwarden.kafka import KafkaSecurity

# Defaults are stated once, on `CollectorSettings` (this module is imported only when
# `driftwarden collector ...` runs: see driftwarden/cli/_lazy.py).

app = typer.Typer(
    help="The capture sidecar: proxy, feedback endpoint, Kafka delivery.", no_args_is_help=True
)

_FORMATS = ("kserve-v1", "open-inference-v2", "json")


def _port(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise DriftwardenError(f"--{flag}: {text!r} is not a TCP port (0-65535)")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise DriftwardenError(f"--sample-rate: {text!r} is not a number between 0 and 1")
    return value


@app.command("run")
@with_kafka_security
def run(
    model: str = typer.Option(
        ..., "--model", envvar="DRIFTWARDEN_MODEL", help="Model name (the Kafka record key)."
    ),
    model_port: str = typer.Option(
        ...,
        "--model-port",
        metavar="PORT",
        envvar="DRIFTWARDEN_MODEL_PORT",
        help="The model server's port on 127.0.0.1.",
    ),
    model_version: str = typer.Option(
        _Defaults.version,
        "--model-version",
        envvar="DRIFTWARDEN_MODEL_VERSION",
        help="Model version put on every event.",
    ),
    port: str = typer.Option(
        str(_Defaults.port),
        "--port",
        metavar="PORT",
        envvar="DRIFTWARDEN_PORT",
        help="Proxy listen port.",
    ),
    admin_port: str = typer.Option(
        str(_Defaults.admin_port),
        "--admin-port",
        metavar="PORT",
        envvar="DRIFTWARDEN_ADMIN_PORT",
        help="Admin port: /metrics, /healthz, /readyz, /v1/feedback.",
    ),
    host: str = typer.Option(
        _Defaults.host, "--host", envvar="DRIFTWARDEN_HOST", help="Listen address."
    ),
    bootstrap: str = typer.Option(
        _Defaults.bootstrap,
        "--bootstrap",
        envvar="DRIFTWARDEN_BOOTSTRAP",
        help="Kafka bootstrap servers.",
    ),
    payload_format: str = typer.Option(
        _Defaults.payload_format,
        "--payload-format",
        envvar="DRIFTWARDEN_PAYLOAD_FORMAT",
        help="kserve-v1, open-inference-v2 or json.",
    ),
    spec: Path = typer.Option(
        None,
        "--spec",
        envvar="DRIFTWARDEN_SPEC",
        help="Model monitoring spec (names positional features).",
    ),
    sample_rate: str = typer.Option(
        str(_Defaults.sample_rate),
        "--sample-rate",
        metavar="RATE",
        envvar="DRIFTWARDEN_SAMPLE_RATE",
        help="Share of requests captured (0-1).",
    ),
    spool_dir: Path = typer.Option(
        None,
        "--spool-dir",
        envvar="DRIFTWARDEN_SPOOL_DIR",
        help="Where events wait while Kafka is away (default: <tmp>/driftwarden-spool/<model>).",
    ),
    config: Path = typer.Option(
        None,
        "--config",
        envvar="DRIFTWARDEN_CONFIG",
        help="YAML: json field paths, redaction, topic prefix, routes, spool and delivery tuning.",
    ),
    feedback_token_file: Path = typer.Option(
        None,
        "--feedback-token-file",
        envvar="DRIFTWARDEN_FEEDBACK_TOKEN_FILE",
        help="Bearer token(s), one per line, required on /v1/feedback (re-read on change). "
        "Unset: feedback only from inside the pod (127.0.0.1).",
    ),
    feedback_open: bool = typer.Option(
        False,
        "--feedback-open",
        envvar="DRIFTWARDEN_FEEDBACK_OPEN",
        help="Accept feedback from anyone reaching the admin port (trusted networks only).",
    ),
    log_level: str = typer.Option("info", "--log-level", envvar="DRIFTWARDEN_LOG_LEVEL"),
    log_format: str = typer.Option(
        "text", "--log-format", envvar="DRIFTWARDEN_LOG_FORMAT", help="json or text."
    ),
    *,
    kafka_security: KafkaSecurity,
) -> None:
    """Proxy a model server, capture its predictions and stream them to Kafka."""
    from driftwarden.logs import configure_logging

    if log_format not in ("json", "text"):
        raise DriftwardenError(f"--log-format: {log_format!r} is not one of json, text")
    configure_logging(log_level, log_format)  # type: ignore[arg-type]
    model_port_n = _port(model_port, "model-port")
    port_n = _port(port, "port")
    admin_port_n = _port(admin_port, "admin-port")
    rate = _rate(sample_rate)
    if model_port_n == 0:
        raise DriftwardenError("--model-port: 0 is not a port a model listens on")
    if port_n != 0 and port_n == admin_port_n:
        raise DriftwardenError(f"--port and --admin-port are both {port_n}")
    if payload_format not in _FORMATS:
        raise DriftwardenError(
            f"--payload-format: {payload_format!r} is not one of {', '.join(_FORMATS)}"
        )
    if not bootstrap.strip():
        raise DriftwardenError("--bootstrap: empty")

    from collector.settings import CollectorSettings, load_config
    from driftwarden.spec import load_spec

    model_spec = load_spec(spec) if spec is not None else None
    if model_spec is not None and model_spec.model != model:
        raise DriftwardenError(
            f"--spec {spec}: describes model {model_spec.model!r}, not {model!r}"
        )
    cfg = load_config(config)
    if spool_dir is None:
        spool_dir = Path(tempfile.gettempdir()) / "driftwarden-spool" / model
    meta = {
        "namespace": os.environ.get("POD_NAMESPACE") or None,
        "pod": os.environ.get("POD_NAME") or None,
    }
    settings = CollectorSettings(
        model=model,
        version=model_version or (model_spec.version if model_spec and model_spec.version else ""),
        model_port=model_port_n,
        port=port_n,
        admin_port=admin_port_n,
        host=host,
        bootstrap=bootstrap,
        payload_format=payload_format,
        spec=model_spec,
        sample_rate=rate,
        spool_dir=spool_dir,
        config=cfg,
        meta={k: v for k, v in meta.items() if v},
        kafka_security=kafka_security,
        feedback_token_file=feedback_token_file,
        feedback_open=feedback_open,
    )
    from collector.service import run_collector, tracer_provider_for

    run_collector(settings, tracer_provider=tracer_provider_for(settings, dict(os.environ)))
