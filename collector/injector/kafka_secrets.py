"""Kafka TLS / SASL of the injected sidecar: Secrets of the pod's namespace mounted as files,
named to the collector by its DRIFTWARDEN_KAFKA_* variables (docs/security.md).

Pure: a validated settings object that renders its volumes, mounts and environment. The
rules of which settings go together are `driftwarden.kafka.KafkaSecurity`'s, so the webhook
refuses at start-up what the sidecar would refuse in every pod.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from driftwarden.kafka import KafkaSecurity, KafkaSecurityError, security_environment

__all__ = ["MOUNT", "SidecarKafkaSecurity"]

#: Where the Secrets are mounted in the sidecar (one folder per Secret).
MOUNT = "/etc/driftwarden/kafka"
#: Secret volumes, named apart from the model's (`_check_names` refuses a clash).
VOLUMES = {"ca": "driftwarden-kafka-ca", "client": "driftwarden-kafka-client",
           "sasl": "driftwarden-kafka-sasl"}  # fmt: skip
#: 0444: the sidecar runs as a non-root uid the pod's fsGroup may not include; only the
#: sidecar mounts these volumes, so no other container of the pod sees the files.
_MODE = 0o444
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
#: the collector's flag in a KafkaSecurity message -> the field of this settings group
_FIELDS = {
    "--kafka-ca-file/--kafka-cert-file/--kafka-key-file": "ca_secret/cert_secret",
    "--kafka-security-protocol": "protocol",
    "--kafka-sasl-mechanism": "sasl_mechanism",
    "--kafka-username": "username",
    "--kafka-password-file": "password_secret",
    "--kafka-ca-file": "ca_secret",
    "--kafka-cert-file": "cert_secret",
    "--kafka-key-file": "cert_secret",
}


class SidecarKafkaSecurity(BaseModel):
    """How the sidecar reaches a TLS / SASL Kafka. The Secrets must exist in every
    namespace whose pods are injected (a Secret volume cannot cross namespaces); the
    kubelet updates their files in place, and the collector follows a rotated password
    without a restart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    username: str = Field(default="", description="SASL user (ACL principal User:<name>)")
    password_secret: str = Field(default="", description="Secret holding the SASL password")
    password_key: str = "password"
    ca_secret: str = Field(
        default="", description="Secret holding the brokers' CA bundle (empty: the image's)"
    )
    ca_key: str = "ca.crt"
    cert_secret: str = Field(default="", description="Secret with a client certificate (mTLS)")
    cert_key: str = "tls.crt"
    key_key: str = "tls.key"
    verify_hostname: bool = True

    @field_validator("password_secret", "ca_secret", "cert_secret")
    @classmethod
    def _secret_name(cls, v: str) -> str:
        if v and not _SECRET_NAME.fullmatch(v):
            raise ValueError(f"{v!r} is not a Secret name (a-z, 0-9, '-', '.')")
        return v

    @field_validator("password_key", "ca_key", "cert_key", "key_key")
    @classmethod
    def _secret_key(cls, v: str) -> str:
        if not _SECRET_KEY.fullmatch(v) or v in (".", ".."):
            raise ValueError(f"{v!r} is not a Secret key (a-z, A-Z, 0-9, '-', '_', '.')")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SidecarKafkaSecurity:
        try:
            self.security()
        except KafkaSecurityError as e:
            message = str(e)
            for flag, name in _FIELDS.items():
                message = message.replace(flag, name)
            raise ValueError(message) from None
        return self

    def _file(self, secret: str, folder: str, key: str) -> Path | None:
        return Path(f"{MOUNT}/{folder}/{key}") if secret else None

    def security(self) -> KafkaSecurity:
        """The collector's view: the same settings with the mounted files' paths."""
        return KafkaSecurity(
            protocol=self.protocol,
            ca_file=self._file(self.ca_secret, "ca", self.ca_key),
            cert_file=self._file(self.cert_secret, "client", self.cert_key),
            key_file=self._file(self.cert_secret, "client", self.key_key),
            sasl_mechanism=self.sasl_mechanism,
            username=self.username,
            password_file=self._file(self.password_secret, "sasl", self.password_key),
            verify_hostname=self.verify_hostname,
        )

    def _secrets(self) -> list[tuple[str, str, list[str]]]:
        """(folder, Secret, keys) of every Secret in use."""
        out = []
        if self.ca_secret:
            out.append(("ca", self.ca_secret, [self.ca_key]))
        if self.cert_secret:
            out.append(("client", self.cert_secret, [self.cert_key, self.key_key]))
        if self.password_secret:
            out.append(("sasl", self.password_secret, [self.password_key]))
        return out

    def volume_names(self) -> list[str]:
        return [VOLUMES[folder] for folder, _, _ in self._secrets()]

    def volumes(self) -> list[dict[str, Any]]:
        """Whole-Secret volumes (no subPath: the kubelet updates them), only the keys used."""
        return [
            {
                "name": VOLUMES[folder],
                "secret": {
                    "secretName": secret,
                    "items": [{"key": k, "path": k} for k in keys],
                    "defaultMode": _MODE,
                },
            }
            for folder, secret, keys in self._secrets()
        ]

    def mounts(self) -> list[dict[str, Any]]:
        return [
            {"name": VOLUMES[folder], "mountPath": f"{MOUNT}/{folder}", "readOnly": True}
            for folder, _, _ in self._secrets()
        ]

    def env(self) -> list[dict[str, str]]:
        """DRIFTWARDEN_KAFKA_* variables (file paths, never a secret's value)."""
        variables = security_environment(self.security())
        return [{"name": k, "value": v} for k, v in variables.items()]
