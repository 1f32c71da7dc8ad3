"""The retraining Job's manifest, built from a policy and a retrain request. Pure.

The Job's name is a deterministic, DNS-safe function of the model, the alert episode's
fingerprint and the attempt number, so creating it is the lock: the API server accepts the
first create of a name and answers 409 AlreadyExists to every other, across deliveries,
threads, replicas and restarts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from retrain_trigger.policy import RetrainPolicy

__all__ = [
    "ANN_ALERT_LABELS",
    "ANN_ARTIFACT",
    "ANN_FINISHED_AT",
    "ANN_GROUP_KEY",
    "ANN_LINEAGE",
    "ANN_MODEL",
    "ANN_OUTCOME",
    "ANN_STARTED_AT",
    "LABEL_FINGERPRINT",
    "LABEL_MANAGED_BY",
    "LABEL_MODEL",
    "LABEL_VERSION",
    "build_job",
    "job_name",
    "label_value",
    "new_version",
    "render_args",
]

PREFIX = "driftwarden.io/"
LABEL_MODEL = PREFIX + "model"
LABEL_VERSION = PREFIX + "version"
LABEL_FINGERPRINT = PREFIX + "alert-fingerprint"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "driftwarden-retrain-trigger"

ANN_MODEL = PREFIX + "model"  # the exact model name (a label value cannot hold every name)
ANN_ALERT_LABELS = PREFIX + "alert-labels"  # JSON: the labels the request's alerts share
ANN_ALERTNAMES = PREFIX + "alertnames"
ANN_GROUP_KEY = PREFIX + "alert-group-key"
ANN_ALERT_STARTED_AT = PREFIX + "alert-started-at"
ANN_STARTED_AT = PREFIX + "started-at"  # when the trigger launched the Job (RFC 3339)
ANN_ATTEMPT = PREFIX + "attempt"
ANN_ARTIFACT = PREFIX + "artifact"  # where the new version's artifact will be written
ANN_LINEAGE = PREFIX + "lineage"  # JSON list of the lineage steps, mirrored from Kafka
ANN_OUTCOME = PREFIX + "outcome"  # set once the finished Job has been recorded
ANN_FINISHED_AT = PREFIX + "finished-at"

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


def _dns_part(text: str, limit: int) -> str:
    part = _NOT_DNS.sub("-", text.lower()).strip("-")
    part = re.sub("-{2,}", "-", part)[:limit].strip("-")
    return part or "model"


def job_name(model: str, fingerprint: str, attempt: int = 0) -> str:
    """`retrain-<model>-<fingerprint[:10]>[-a<attempt>]`, at most 63 characters, DNS-1123.

    The fingerprint (which already hashes the exact model name) keeps two models whose names
    sanitise alike apart."""
    suffix = f"-a{attempt}" if attempt else ""
    return f"retrain-{_dns_part(model, 30)}-{fingerprint[:10]}{suffix}"


def label_value(text: str) -> str:
    """A valid label value (≤63 chars of [A-Za-z0-9_.-], alphanumeric at both ends)."""
    value = _NOT_LABEL.sub("_", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def new_version(started_at: datetime, fingerprint: str, attempt: int = 0) -> str:
    """The version the Job will produce: `r<alert start, UTC minute>-<fingerprint[:8]>`.

    Deterministic (the same alert episode always names the same version) and sortable by
    the time the drift began."""
    stamp = started_at.astimezone(UTC).strftime("%Y%m%d%H%M")
    return f"r{stamp}-{fingerprint[:8]}" + (f"-a{attempt}" if attempt else "")


def render_args(args: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Fill the placeholders; a `--flag {x}` pair whose value renders empty is dropped (an
    unknown current artifact leaves out `--current-artifact` rather than passing '')."""
    out: list[str] = []
    for arg in args:
        rendered = arg.format_map(values)
        if rendered == "" and arg != "" and out and out[-1].startswith("--"):
            out.pop()
            continue
        out.append(rendered)
    return out


def _resources(policy: RetrainPolicy) -> dict[str, Any]:
    r = policy.trainer.resources
    requests: dict[str, str] = {"cpu": r.cpu, "memory": r.memory}
    limits: dict[str, str] = {"memory": r.memory}
    if r.gpu:
        # Extended resources are set in limits (requests default to them and must be equal).
        limits["nvidia.com/gpu"] = str(r.gpu)
        requests["nvidia.com/gpu"] = str(r.gpu)
    return {"requests": requests, "limits": limits}


def _toleration(t: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"operator": t.operator}
    if t.key is not None:
        out["key"] = t.key
    if t.value is not None:
        out["value"] = t.value
    if t.effect is not None:
        out["effect"] = t.effect
    if t.toleration_seconds is not None:
        out["tolerationSeconds"] = t.toleration_seconds
    return out


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_job(
    policy: RetrainPolicy,
    *,
    name: str,
    fingerprint: str,
    version: str,
    attempt: int,
    alert_labels: Mapping[str, str],
    alertnames: Sequence[str],
    group_key: str,
    alert_started_at: datetime,
    now: float,
    current_artifact: str = "",
    lineage: Sequence[Mapping[str, Any]] = (),
    job_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The `batch/v1` Job (a plain dict, as the API takes it) that retrains `policy.model`."""
    artifact = f"{policy.output.rstrip('/')}/{version}"
    values = {
        "model": policy.model,
        "version": version,
        "job": name,
        "fingerprint": fingerprint,
        "namespace": policy.namespace,
        "data": policy.data.location(),
        "spec": policy.spec,
        "output": policy.output,
        "artifact": artifact,
        "current_artifact": current_artifact or policy.current_artifact,
    }
    args = render_args(policy.trainer.args, values)
    if policy.epochs is not None:
        args += ["--epochs", str(policy.epochs)]
    env = {
        "DRIFTWARDEN_MODEL": policy.model,
        "DRIFTWARDEN_MODEL_VERSION": version,
        "DRIFTWARDEN_JOB": name,
        "DRIFTWARDEN_ARTIFACT": artifact,
        # where a `kafka:` data source is read from (the trigger's own Kafka settings)
        **(job_env or {}),
        **{k: v.format_map(values) for k, v in policy.trainer.env.items()},
    }
    labels = {
        LABEL_MODEL: label_value(policy.model),
        LABEL_FINGERPRINT: fingerprint,
        LABEL_VERSION: version,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: "retrain",
    }
    annotations = {
        ANN_MODEL: policy.model,
        ANN_ALERT_LABELS: json.dumps(dict(alert_labels), sort_keys=True),
        ANN_ALERTNAMES: ",".join(alertnames),
        ANN_GROUP_KEY: group_key,
        ANN_ALERT_STARTED_AT: alert_started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ANN_STARTED_AT: _rfc3339(now),
        ANN_ATTEMPT: str(attempt),
        ANN_ARTIFACT: artifact,
        ANN_LINEAGE: json.dumps(list(lineage), sort_keys=True, separators=(",", ":")),
    }
    trainer = policy.trainer
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "trainer",
                "image": trainer.image,
                "imagePullPolicy": trainer.image_pull_policy,
                "command": list(trainer.command),
                "args": args,
                "env": [{"name": k, "value": v} for k, v in env.items()],
                "resources": _resources(policy),
            }
        ],
    }
    if trainer.node_selector:
        pod_spec["nodeSelector"] = dict(trainer.node_selector)
    if trainer.tolerations:
        pod_spec["tolerations"] = [_toleration(t) for t in trainer.tolerations]
    if trainer.priority_class:
        pod_spec["priorityClassName"] = trainer.priority_class
    if trainer.service_account:
        pod_spec["serviceAccountName"] = trainer.service_account
    else:
        pod_spec["automountServiceAccountToken"] = False
    pod_labels = {k: v for k, v in labels.items() if k != LABEL_COMPONENT}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": policy.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": policy.backoff_limit,
            "activeDeadlineSeconds": policy.active_deadline_seconds,
            "ttlSecondsAfterFinished": policy.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {ANN_MODEL: policy.model}},
                "spec": pod_spec,
            },
        },
    }
