"""Collector settings: flags (or DRIFTWARDEN_* variables) plus an optional YAML file.

Loaded once by the CLI and passed down; nothing here reads the environment by itself.
The flags carry what a Helm chart or the admission webhook sets per pod (model, ports,
payload format, sample rate, ...); the file (`--config`) carries what is set per model
or per installation: JSON field paths, redaction, topic prefix, prediction routes,
spool and delivery tuning. Every field has a unit and a default; a bad file is one
`CollectorError` line that names the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.delivery import DeliverySettings
from collector.errors import CollectorError
from collector.payloads import FieldPath, JsonPaths
from collector.proxy import ProxySettings
from driftwarden.config import load_yaml_model, parse_model
from driftwarden.kafka import DEFAULT_TOPIC_PREFIX, KafkaSecurity
from driftwarden.spec import ModelSpec

DEFAULT_PORT = 8480
DEFAULT_ADMIN_PORT = 8481


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class JsonConfig(_Strict):
    """Field paths for the `json` payload format (see `collector.payloads.FieldPath`)."""

    features: str | dict[str, str] = Field(
        default="$", description="path to the row(s) in the request, or feature name -> path"
    )
    prediction: str | None = Field(
        default=None,
        description="path to the prediction(s) in the response; default: the spec's "
        "prediction column, or the whole response when it is not an object",
    )

    @field_validator("features")
    @classmethod
    def _paths(cls, v: str | dict[str, str]) -> str | dict[str, str]:
        for p in [v] if isinstance(v, str) else v.values():
            FieldPath(p)
        return v

    def paths(self) -> JsonPaths:
        return JsonPaths(features=self.features, prediction=self.prediction)


class RedactConfig(_Strict):
    features: list[str] = Field(default_factory=list, description="feature names to redact")
    mode: Literal["drop", "null", "hash"] = "drop"
    salt: str = Field(default="", description="key of the `hash` mode (keep it secret)")


class CaptureConfig(_Strict):
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="bytes; larger bodies are forwarded, not captured"
    )
    max_json_depth: int = Field(
        default=64,
        ge=2,
        le=500,
        description="levels of nested arrays/objects; a deeper body is dead-lettered as "
        "`too_deep` (payloads are a few levels deep; the JSON decoder recurses per level)",
    )


class SpoolConfig(_Strict):
    max_bytes: int = Field(default=512 * 1024 * 1024, ge=64 * 1024, description="bytes on disk")
    segment_bytes: int = Field(default=8 * 1024 * 1024, ge=4096, description="bytes per file")
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval_s: float = Field(default=1.0, gt=0)
    drop_policy: Literal["oldest", "newest"] = "oldest"


class DeliveryConfig(_Strict):
    queue_size: int = Field(default=100_000, ge=1, description="items waiting in memory")
    max_in_flight: int = Field(default=100_000, ge=1, description="records unacknowledged")
    slow_after_s: float = Field(default=2.0, gt=0, description="s without acknowledgement: spool")
    message_timeout_s: float = Field(default=30.0, gt=0)
    drain_timeout_s: float = Field(default=10.0, ge=0)
    compression: Literal["lz4", "zstd", "none"] = "lz4"
    linger_ms: int = Field(default=50, ge=0, description="ms librdkafka waits to fill a batch")
    poll_interval_ms: float = Field(
        default=20.0, gt=0, description="ms the delivery thread sleeps when it has nothing to do"
    )
    max_restarts: int = Field(
        default=5,
        ge=0,
        description="delivery restarts after unexpected errors within restart_window_s; one "
        "more fails /healthz (the container restarts, the spool is kept)",
    )
    restart_window_s: float = Field(default=60.0, gt=0, description="s; see max_restarts")

    def settings(self) -> DeliverySettings:
        return DeliverySettings(
            queue_size=self.queue_size,
            max_in_flight=self.max_in_flight,
            slow_after_s=self.slow_after_s,
            message_timeout_s=self.message_timeout_s,
            drain_timeout_s=self.drain_timeout_s,
            compression=self.compression,
            linger_ms=self.linger_ms,
            poll_interval_s=self.poll_interval_ms / 1000,
            max_restarts=self.max_restarts,
            restart_window_s=self.restart_window_s,
        )


class ProxyConfig(_Strict):
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    pool_size: int = Field(default=256, ge=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    shutdown_timeout_s: float = Field(default=10.0, ge=0)
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="s from a request's first byte to the end of its head; slower: 408 and "
        "close (a slow-loris client holds no connection longer)",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="s a request body may make no progress; then 408 and close",
    )
    idle_timeout_s: float = Field(
        default=75.0,
        gt=0,
        description="s a keep-alive client connection may sit idle before it is closed; "
        "longer than the usual load balancer idle timeout (60 s) so the client side closes first",
    )
    upstream_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="s the model may take to start its response once the request reached "
        "it; then 504 with the reason (streamed responses are not cut once started)",
    )
    max_connections: int = Field(
        default=10_000,
        ge=16,
        description="client connections; at the cap the oldest idle one is closed for a new "
        "one (none idle: the new one gets 503). Also capped by half the file descriptor limit",
    )


class TracingConfig(_Strict):
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces URL; unset: off unless OTEL_EXPORTER_OTLP_* is set",
    )
    service_name: str = "driftwarden-collector"


class CollectorConfig(_Strict):
    """The `--config` YAML file."""

    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    routes: list[str] | None = Field(
        default=None, description="prediction routes (globs); default per payload format"
    )
    json_paths: JsonConfig = Field(default_factory=JsonConfig, alias="json")
    redact: RedactConfig = Field(default_factory=RedactConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    meta: dict[str, str] = Field(default_factory=dict, description="added to every event's meta")
    kafka: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra librdkafka producer settings (security, ...)"
    )


def parse_config(data: object, source: str = "config") -> CollectorConfig:
    return parse_model(data, CollectorConfig, source=source, error=CollectorError, allow_empty=True)


def load_config(path: str | Path | None) -> CollectorConfig:
    """Read the YAML config file (None: all defaults)."""
    if path is None:
        return CollectorConfig()
    return load_yaml_model(
        path,
        CollectorConfig,
        "config",
        source=f"--config {path}",
        error=CollectorError,
        allow_empty=True,
    )


@dataclass(frozen=True)
class CollectorSettings:
    """Everything `collector run` needs, resolved once."""

    model: str
    model_port: int
    version: str = ""
    port: int = DEFAULT_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    host: str = "0.0.0.0"
    bootstrap: str = "localhost:9092"
    payload_format: str = "kserve-v1"
    spec: ModelSpec | None = None
    sample_rate: float = 1.0
    spool_dir: Path = Path("/tmp/driftwarden-spool")
    config: CollectorConfig = field(default_factory=CollectorConfig)
    #: Added to every event's meta (namespace and pod come from the downward API).
    meta: dict[str, Any] = field(default_factory=dict)
    #: TLS / SASL towards Kafka (driftwarden.kafka; PLAINTEXT by default).
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    #: File of bearer tokens (one per line; a mounted Secret, re-read when it changes)
    #: required on /v1/feedback. None: feedback only from inside the pod (127.0.0.1).
    feedback_token_file: Path | None = None
    #: Accept feedback from anyone who reaches the admin port (trusted networks only).
    feedback_open: bool = False

    def proxy_settings(self) -> ProxySettings:
        p = self.config.proxy
        return ProxySettings(
            upstream_port=self.model_port,
            max_header_bytes=p.max_header_bytes,
            pool_size=p.pool_size,
            connect_timeout_s=p.connect_timeout_s,
            shutdown_timeout_s=p.shutdown_timeout_s,
            header_timeout_s=p.header_timeout_s,
            body_timeout_s=p.body_timeout_s,
            idle_timeout_s=p.idle_timeout_s,
            upstream_timeout_s=p.upstream_timeout_s,
            max_connections=p.max_connections,
        )
