"""Alertmanager's webhook payload (version 4), validated, and the retrain request it carries.

Pure: `parse_notification` turns a decoded JSON document into a `Notification` or raises
`PayloadError` naming the field; `retrain_requests` groups the firing retrain alerts by model
and gives each group a fingerprint that identifies the alert episode (which alerts, since
when), so the same notification delivered twice, concurrently or after a restart, maps to the
same Job name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from driftwarden.config import describe_validation_error

__all__ = [
    "ACTION_LABEL",
    "ACTION_RETRAIN",
    "Alert",
    "Notification",
    "PayloadError",
    "RetrainRequest",
    "parse_notification",
    "retrain_requests",
]

#: Alerts that should retrain carry `driftwarden_action="retrain"` and `model` (DESIGN.md).
ACTION_LABEL = "driftwarden_action"
ACTION_RETRAIN = "retrain"
MODEL_LABEL = "model"

_Text = Annotated[str, Field(max_length=4096)]


class PayloadError(ValueError):
    """The body is JSON but not an Alertmanager v4 notification; the message names the field."""


class _Payload(BaseModel):
    # Alertmanager may add fields in later releases: ignore what we do not read, but check the
    # type of everything we do.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Alert(_Payload):
    status: Literal["firing", "resolved"]
    labels: dict[str, _Text]
    annotations: dict[str, _Text] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: _Text = ""
    fingerprint: Annotated[str, Field(max_length=64)] = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def model(self) -> str | None:
        return self.labels.get(MODEL_LABEL) or None

    @property
    def is_retrain(self) -> bool:
        return self.labels.get(ACTION_LABEL) == ACTION_RETRAIN and self.model is not None

    def identity(self) -> str:
        """Alertmanager's fingerprint when present, else a hash of the labels."""
        if self.fingerprint:
            return self.fingerprint
        text = "\x00".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class Notification(_Payload):
    version: Literal["4"]
    groupKey: _Text
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: _Text = ""
    groupLabels: dict[str, _Text] = Field(default_factory=dict)
    commonLabels: dict[str, _Text] = Field(default_factory=dict)
    commonAnnotations: dict[str, _Text] = Field(default_factory=dict)
    externalURL: _Text = ""
    alerts: list[Alert] = Field(max_length=1000)


def parse_notification(data: object) -> Notification:
    """Validate a decoded JSON body; `PayloadError("alerts[0].status: ...")` when it is wrong."""
    if not isinstance(data, dict):
        raise PayloadError(f"(top level): expected a JSON object, got {type(data).__name__}")
    try:
        return Notification.model_validate(data)
    except ValidationError as e:
        raise PayloadError(describe_validation_error(e, data)) from e


@dataclass(frozen=True, slots=True)
class RetrainRequest:
    """The firing retrain alerts of one model in one notification."""

    model: str
    fingerprint: str  # 16 hex digits: the alert episode (alerts and their start times)
    alerts: tuple[Alert, ...]
    group_key: str

    @property
    def started_at(self) -> datetime:
        return min(a.startsAt for a in self.alerts)

    def labels(self) -> dict[str, str]:
        """The labels all alerts of the request share (what the Job's annotations record)."""
        common = dict(self.alerts[0].labels)
        for a in self.alerts[1:]:
            common = {k: v for k, v in common.items() if a.labels.get(k) == v}
        return common


def episode_fingerprint(model: str, group_key: str, alerts: tuple[Alert, ...]) -> str:
    """Deterministic id of an alert episode: same alerts firing since the same times → same id.

    Alertmanager's own per-alert fingerprint hashes the labels only, so a drift that resolves
    and fires again next week would look identical; the start time tells the episodes apart.
    """
    parts = [model, group_key]
    parts += sorted(f"{a.identity()}@{a.startsAt.isoformat()}" for a in alerts)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def retrain_requests(notification: Notification) -> list[RetrainRequest]:
    """One request per model among the firing retrain alerts, in model order."""
    by_model: dict[str, list[Alert]] = {}
    for alert in notification.alerts:
        if alert.status == "firing" and alert.is_retrain:
            by_model.setdefault(alert.model or "", []).append(alert)
    out = []
    for model in sorted(by_model):
        alerts = tuple(sorted(by_model[model], key=Alert.identity))
        fp = episode_fingerprint(model, notification.groupKey, alerts)
        out.append(RetrainRequest(model, fp, alerts, notification.groupKey))
    return out
