"""Retrain policy: one YAML document per model, a folder of them (DESIGN.md, "Retrain policy").

A policy says how to retrain one model (trainer image, command, GPU/CPU/memory, where it may
run, what data it reads and where it writes the new artifact), how often a retrain may happen
(cooldown, concurrency) and how the new version is rolled out (the canary settings the
canary controller reads). Unknown keys are rejected and every error is one line naming the
file and the field (`driftwarden.config.load_yaml_model`).

Trainer `args` (and `env` values) are templates: `{model}`, `{version}`, `{job}`,
`{fingerprint}`, `{namespace}`, `{data}`, `{spec}`, `{output}`, `{artifact}` (the new
artifact's folder, `<output>/<version>`) and `{current_artifact}` are filled in per Job.
Pure: no I/O beyond reading the policy files.
"""

from __future__ import annotations

import itertools
import re
import string
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from driftwarden.config import load_yaml_model
from driftwarden.errors import ConfigError

__all__ = [
    "CanaryPolicy",
    "CanaryThresholds",
    "DataSource",
    "PolicyError",
    "Resources",
    "RetrainPolicy",
    "Toleration",
    "TrainerPolicy",
    "load_policies",
    "load_policy",
]

#: Placeholders a trainer argument or env value may use.
TEMPLATE_FIELDS = frozenset(
    {
        "model",
        "version",
        "job",
        "fingerprint",
        "namespace",
        "data",
        "spec",
        "output",
        "artifact",
        "current_artifact",
    }
)

_MODEL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# RFC 1123 label (namespaces, service accounts, Deployments, priority classes).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Kubernetes resource quantities (cpu "500m", "4"; memory "16Gi", "512M").
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")

Seconds = Annotated[int, Field(ge=1, le=366 * 86_400)]


class PolicyError(ConfigError):
    """A retrain policy (or the folder of them) is invalid; the message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _dns_label(value: str, what: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid {what} (lowercase letters, digits and '-', 1-63 characters)"
        )
    return value


def _template(value: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as e:
        raise ValueError(f"{value!r}: {e} (write {{{{ and }}}} for literal braces)") from e
    unknown = sorted(n for n in names if n not in TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(
            f"{value!r} uses unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)};"
            f" known: {', '.join(sorted(TEMPLATE_FIELDS))}"
        )
    return value


class Resources(_Strict):
    """What the trainer container requests (and is limited to)."""

    gpu: int = Field(default=1, ge=0, le=64, description="nvidia.com/gpu count (0: CPU only)")
    cpu: str = Field(default="2", description="Kubernetes quantity, e.g. '500m', '4'")
    memory: str = Field(default="8Gi", description="Kubernetes quantity, e.g. '16Gi'")

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _quantity(cls, v: object) -> str:
        text = str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
        if not isinstance(text, str) or not _QUANTITY.match(text):
            raise ValueError(f"{v!r} is not a Kubernetes quantity (e.g. '500m', '4', '16Gi')")
        return text


class Toleration(_Strict):
    """A pod toleration, as in the Kubernetes API (snake_case keys)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("value must be empty when operator is Exists")
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without key needs operator Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("toleration_seconds only applies to effect NoExecute")
        return self


class TrainerPolicy(_Strict):
    """The training container and where it may run."""

    image: str = Field(min_length=1, max_length=512)
    command: list[str] = Field(
        default_factory=lambda: ["python", "-m", "retrain_trigger.train"], min_length=1
    )
    args: list[str] = Field(
        default_factory=lambda: [
            "--data",
            "{data}",
            "--spec",
            "{spec}",
            "--out",
            "{artifact}",
            "--current-artifact",
            "{current_artifact}",
        ]
    )
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Resources()
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    priority_class: str | None = None
    service_account: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"

    @field_validator("args")
    @classmethod
    def _args(cls, v: list[str]) -> list[str]:
        return [_template(a) for a in v]

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                raise ValueError(f"{name!r} is not an environment variable name")
            _template(value)
        return v

    @field_validator("priority_class")
    @classmethod
    def _priority(cls, v: str | None) -> str | None:
        if v is not None and not _DNS_SUBDOMAIN.match(v):
            raise ValueError(f"{v!r} is not a valid PriorityClass name")
        return v

    @field_validator("service_account")
    @classmethod
    def _sa(cls, v: str | None) -> str | None:
        if v is not None and not _DNS_SUBDOMAIN.match(v):
            raise ValueError(f"{v!r} is not a valid ServiceAccount name")
        return v


class DataSource(_Strict):
    """Training data: the last `since_s` seconds of predictions+feedback from Kafka (the
    trainer runs `driftwarden dataset export`), or a parquet file the trainer can read."""

    source: Literal["kafka", "parquet"] = "kafka"
    since_s: Seconds = Field(default=6 * 3600, description="kafka: how far back to read")
    path: str | None = Field(default=None, description="parquet: path or URI in the trainer")

    @model_validator(mode="after")
    def _path_for_parquet(self) -> DataSource:
        if self.source == "parquet" and not self.path:
            raise ValueError("path: required when source is parquet")
        if self.source == "kafka" and self.path:
            raise ValueError("path: only for source parquet (kafka reads since_s seconds)")
        return self

    def location(self) -> str:
        """What `{data}` expands to: the parquet path, or `kafka:<since_s>s`."""
        return self.path if self.source == "parquet" and self.path else f"kafka:{self.since_s}s"


class CanaryThresholds(_Strict):
    """Limits the canary controller judges the new version by (canary vs stable)."""

    max_error_rate_increase: float = Field(
        default=0.01, ge=0, le=1, description="canary error share minus stable's, absolute"
    )
    max_p99_latency_ratio: float = Field(
        default=1.25, ge=1, description="canary p99 latency / stable p99 latency"
    )
    performance_metric: str = Field(default="accuracy", min_length=1)
    performance_tolerance: float = Field(
        default=0.02, ge=0, description="how much worse than stable the canary may be"
    )
    min_labelled_rows: int = Field(
        default=200, ge=1, description="labelled rows each side needs before performance counts"
    )
    min_requests: int = Field(
        default=100,
        ge=1,
        description="canary requests per analysis window before error rate and latency count",
    )
    max_prediction_drift: float = Field(
        default=0.2, ge=0, le=1, description="distance between the two prediction distributions"
    )
    max_prediction_spread_loss: float = Field(
        default=0.75,
        ge=0,
        le=1,
        description="share of the stable's prediction spread the canary may lose (1: a constant)",
    )
    max_data_quality_share: float = Field(
        default=0.05, ge=0, le=1, description="share of failing rows in any quality check"
    )


class CanaryPolicy(_Strict):
    """How a successful retrain is rolled out (read by the canary controller)."""

    enabled: bool = True
    router: Literal["replicas", "gateway-api", "none"] = "replicas"
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [10, 25, 50, 100], min_length=1
    )
    step_deadline_s: Seconds = Field(
        default=1800, description="how long a step may stay inconclusive"
    )
    check_interval_s: Seconds = Field(default=60, description="seconds between analyses")
    on_deadline: Literal["rollback", "hold"] = "rollback"
    thresholds: CanaryThresholds = CanaryThresholds()
    http_route: str | None = Field(
        default=None, description="gateway-api: the HTTPRoute whose backend weights move"
    )

    @field_validator("steps")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError(f"{v} must be strictly increasing percentages")
        if v[-1] != 100:
            raise ValueError(f"{v} must end at 100 (the canary takes all traffic, then promotes)")
        return v

    @model_validator(mode="after")
    def _route(self) -> CanaryPolicy:
        if self.router == "gateway-api" and not self.http_route:
            raise ValueError("http_route: required when router is gateway-api")
        return self


class RetrainPolicy(_Strict):
    """Everything the trigger and the canary controller need to retrain one model."""

    model: str
    namespace: str = Field(default="default", description="where the Deployment and Jobs live")
    deployment: str | None = Field(
        default=None, description="the model's Deployment (default: the model name)"
    )
    trainer: TrainerPolicy
    data: DataSource = DataSource()
    spec: str = Field(min_length=1, description="the model spec's path inside the trainer")
    output: str = Field(min_length=1, description="artifact root; the new one is <output>/<ver>")
    current_artifact: str = Field(
        default="", description="the serving artifact (default: read from the Deployment)"
    )
    epochs: int | None = Field(default=None, ge=1, description="passed as --epochs when set")
    cooldown_s: Seconds = Field(
        default=6 * 3600, description="after a retrain finishes, no new one for this long"
    )
    max_concurrent: int = Field(default=1, ge=1, le=100, description="retrains of this model")
    backoff_limit: int = Field(default=1, ge=0, le=20, description="Job pod retries")
    active_deadline_seconds: Seconds = Field(
        default=4 * 3600, description="the Job fails after this long"
    )
    ttl_seconds_after_finished: int = Field(
        default=7 * 86_400, ge=0, description="the finished Job is deleted after this long"
    )
    canary: CanaryPolicy = CanaryPolicy()

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not _MODEL_NAME.match(v):
            raise ValueError("must be 1-128 characters of letters, digits, '_', '.', ':' or '-'")
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        return _dns_label(v, "namespace")

    @field_validator("deployment")
    @classmethod
    def _deployment(cls, v: str | None) -> str | None:
        if v is not None and not _DNS_SUBDOMAIN.match(v):
            raise ValueError(f"{v!r} is not a valid Deployment name")
        return v

    @model_validator(mode="after")
    def _cooldown_within_ttl(self) -> RetrainPolicy:
        # The cooldown is measured from the last finished Job of the model; a Job deleted by
        # its TTL before the cooldown ends would let the next alert retrain early.
        if self.ttl_seconds_after_finished < self.cooldown_s:
            raise ValueError(
                f"ttl_seconds_after_finished ({self.ttl_seconds_after_finished}) must be at least"
                f" cooldown_s ({self.cooldown_s}): the cooldown is read from finished Jobs"
            )
        return self

    @property
    def deployment_name(self) -> str:
        return self.deployment or self.model


def load_policy(path: str | Path) -> RetrainPolicy:
    """Read and validate one policy file."""
    return load_yaml_model(path, RetrainPolicy, what="policy", error=PolicyError)


def load_policies(
    directory: str | Path, namespaces: frozenset[str] | None = None
) -> dict[str, RetrainPolicy]:
    """Every `*.yaml`/`*.yml` policy in a folder, keyed by model (duplicates rejected).

    With `namespaces`, a policy for a namespace outside that set is rejected: the trigger's
    RBAC covers the configured namespaces only.
    """
    d = Path(directory)
    if not d.is_dir():
        raise PolicyError(f"{d}: not a directory of policy files")
    policies: dict[str, RetrainPolicy] = {}
    where: dict[str, Path] = {}
    for p in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
        policy = load_policy(p)
        if policy.model in policies:
            raise PolicyError(
                f"{p}: model {policy.model!r} is already defined by {where[policy.model]}"
            )
        if namespaces is not None and policy.namespace not in namespaces:
            raise PolicyError(
                f"{p}: namespace: {policy.namespace!r} is not one of the trigger's namespaces"
                f" ({', '.join(sorted(namespaces))})"
            )
        policies[policy.model] = policy
        where[policy.model] = p
    return policies
