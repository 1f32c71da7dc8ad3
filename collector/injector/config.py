"""What the injector puts into a pod: one validated settings object, built once by the CLI.

Every field has a unit, a default and a reason. The patch builder reads nothing else: no
environment, no files, so a test builds an `InjectorConfig(...)` and checks the patch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.injector.kafka_secrets import SidecarKafkaSecurity
from driftwarden import __version__
from driftwarden.config import parse_model, read_yaml
from driftwarden.errors import DriftwardenError

#: Kubernetes quantities (`100m`, `64Mi`, `1Gi`, `0.5`).
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
#: IANA_SVC_NAME, the form of a container port name (RFC 6335, at most 15 characters).
PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*(?<!-)$")
#: RFC 1123 label, the form of a container or volume name.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

PAYLOAD_FORMATS = ("kserve-v1", "open-inference-v2", "json")


class InjectorConfigError(DriftwardenError):
    """A flag or setting of the injector is invalid; the message names it."""


class InjectorConfig(BaseModel):
    """The sidecar the webhook injects, and how it takes over the model's port."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(
        default=f"ghcr.io/driftwarden/driftwarden:{__version__}",
        min_length=1,
        description="collector image; its `driftwarden` command runs `collector run`",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    command: tuple[str, ...] = Field(
        default=("driftwarden", "collector", "run"),
        min_length=1,
        description="the sidecar's command (set explicitly so the image's ENTRYPOINT does not matter)",
    )
    bootstrap: str = Field(
        default="kafka:9092",
        min_length=1,
        description="Kafka bootstrap servers the sidecar produces to (DRIFTWARDEN_BOOTSTRAP)",
    )
    native_sidecar: bool = Field(
        default=True,
        description="an init container with restartPolicy Always (Kubernetes >= 1.29): starts "
        "before the model and stops after it; False: a regular container",
    )
    sidecar_name: str = Field(default="driftwarden-collector", description="container name")
    proxy_port: int = Field(
        default=8480,
        ge=1,
        le=65535,
        description="first port number tried for the proxy (the next free one is taken)",
    )
    admin_port: int = Field(
        default=8481,
        ge=1,
        le=65535,
        description="first port number tried for /metrics, /healthz, /readyz, /v1/feedback",
    )
    renamed_model_port: str = Field(
        default="dw-model",
        description="new name of the model's port when the sidecar takes its name over",
    )
    proxy_port_name: str = Field(
        default="dw-proxy",
        description="name of the proxy port when the model's port has no name to take over",
    )
    admin_port_name: str = Field(default="dw-admin", description="name of the admin port")
    payload_format: Literal["kserve-v1", "open-inference-v2", "json"] = Field(
        default="kserve-v1", description="default when the pod has no driftwarden.io/payload-format"
    )
    sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="default when the pod has no sample-rate"
    )
    cpu_request: str = Field(default="50m", description="CPU the scheduler reserves")
    memory_request: str = Field(default="96Mi", description="memory the scheduler reserves")
    memory_limit: str = Field(
        default="384Mi", description="memory limit (no CPU limit: throttling adds latency)"
    )
    cpu_limit: str | None = Field(default=None, description="unset: no CPU limit")
    spool_volume: str = Field(default="driftwarden-spool", description="emptyDir volume name")
    spec_volume: str = Field(
        default="driftwarden-spec",
        description="ConfigMap volume name for the pod's driftwarden.io/spec-configmap",
    )
    spool_mount: str = Field(default="/var/spool/driftwarden", description="where it is mounted")
    spool_size_limit: str = Field(
        default="1Gi",
        description="emptyDir sizeLimit; keep it above the spool's max_bytes (512 MiB default), "
        "or the kubelet evicts the pod when Kafka is away long enough",
    )
    run_as_user: int = Field(default=65532, ge=1, description="non-root uid of the sidecar")
    run_as_group: int = Field(default=65532, ge=1, description="gid of the sidecar")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    startup_failure_s: int = Field(
        default=60,
        ge=1,
        description="seconds the native sidecar may take to listen before the kubelet restarts it",
    )
    extra_env: dict[str, str] = Field(
        default_factory=dict, description="more environment for the sidecar (e.g. OTEL_*)"
    )
    kafka_security: SidecarKafkaSecurity = Field(
        default_factory=SidecarKafkaSecurity,
        description="TLS / SASL to Kafka: Secrets of the pod's namespace, mounted as files",
    )

    @field_validator(
        "cpu_request", "memory_request", "memory_limit", "cpu_limit", "spool_size_limit"
    )
    @classmethod
    def _quantity(cls, v: str | None) -> str | None:
        if v is not None and not _QUANTITY.fullmatch(v):
            raise ValueError(f"{v!r} is not a Kubernetes quantity (e.g. 100m, 64Mi, 1Gi)")
        return v

    @field_validator("renamed_model_port", "proxy_port_name", "admin_port_name")
    @classmethod
    def _port_name(cls, v: str) -> str:
        if not PORT_NAME.fullmatch(v):
            raise ValueError(f"{v!r} is not a port name (<= 15 of a-z, 0-9, '-', with a letter)")
        return v

    @field_validator("sidecar_name", "spool_volume", "spec_volume")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not _DNS_LABEL.fullmatch(v):
            raise ValueError(f"{v!r} is not a DNS label (a-z, 0-9, '-', at most 63)")
        return v

    @field_validator("spool_mount")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/") or ":" in v:
            raise ValueError(f"{v!r} is not an absolute path")
        return v

    @field_validator("extra_env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return v


def make_config(**values: object) -> InjectorConfig:
    """Build an `InjectorConfig`; a bad value is one `InjectorConfigError` line naming it."""
    return parse_model(values, InjectorConfig, source="injector", error=InjectorConfigError)


def load_config(path: Path | None, overrides: Mapping[str, object] | None = None) -> InjectorConfig:
    """The YAML file at `path` (if any) with `overrides` (the CLI's flags) on top."""
    data: dict[str, object] = {}
    source = "injector flags"
    if path is not None:
        doc = read_yaml(path, what="injector config", error=InjectorConfigError)
        if doc is not None and not isinstance(doc, dict):
            raise InjectorConfigError(f"{path}: expected a mapping at the top level")
        data = dict(doc or {})
        source = f"{path} (or its flag)"
    data.update(overrides or {})
    return parse_model(data, InjectorConfig, source=source, error=InjectorConfigError)
