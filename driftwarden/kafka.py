"""Kafka names and client settings shared by every component (DESIGN.md, "Events on Kafka").

Pure: no Kafka client. What talks to a broker or watches files (`check_access`,
`PasswordWatch`) is in `driftwarden.kafka_access`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from driftwarden.errors import ConfigError, DriftwardenError
from driftwarden.flags import Flag, flag_default, settings_from_args

DEFAULT_TOPIC_PREFIX = "driftwarden"


@dataclass(frozen=True, slots=True)
class Topics:
    predictions: str
    feedback: str
    deadletter: str
    #: A model's retrain and rollout history (LineageEvent, key = model).
    lineage: str

    @classmethod
    def with_prefix(cls, prefix: str = DEFAULT_TOPIC_PREFIX) -> Topics:
        return cls(
            predictions=f"{prefix}.predictions",
            feedback=f"{prefix}.feedback",
            deadletter=f"{prefix}.deadletter",
            lineage=f"{prefix}.lineage",
        )


def producer_config(
    bootstrap: str, *, security: KafkaSecurity | None = None, **overrides: object
) -> dict[str, object]:
    """librdkafka producer settings: durable, idempotent, batched, compressed, plus the
    `security` settings (TLS, SASL; None: PLAINTEXT).

    `murmur2_random` makes a key land on the partition a Java client (and kafka-python)
    would choose; librdkafka's default (`consistent_random`, CRC32) hashes differently.
    """
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        **(security.client_config() if security is not None else {}),
        "partitioner": "murmur2_random",
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 200_000,
    }
    config.update(overrides)
    return config


def consumer_config(
    bootstrap: str,
    group_id: str,
    *,
    security: KafkaSecurity | None = None,
    **overrides: object,
) -> dict[str, object]:
    """librdkafka consumer settings: manual commits (offsets travel with checkpoints), plus
    the `security` settings (None: PLAINTEXT)."""
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        **(security.client_config() if security is not None else {}),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10_000,
    }
    config.update(overrides)
    return config


def admin_config(
    bootstrap: str, *, security: KafkaSecurity | None = None, **overrides: object
) -> dict[str, object]:
    """librdkafka admin client settings: the bootstrap servers and `security`."""
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        **(security.client_config() if security is not None else {}),
    }
    config.update(overrides)
    return config


# --- security: TLS and SASL, one settings group for every component -----------------------

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SASL mechanisms offered as settings. OAUTHBEARER is not: librdkafka's only production
#: form (`sasl.oauthbearer.method=oidc`) needs an OIDC token endpoint (docs/security.md).
SASL_MECHANISMS: Final = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
#: librdkafka settings that hold a secret: never logged, never shown (see `redacted`).
SECRET_KEYS: Final = frozenset(
    {"sasl.password", "ssl.key.password", "ssl.key.pem", "sasl.oauthbearer.client.secret"}
)


class KafkaSecurityError(ConfigError):
    """A Kafka security setting is wrong or its file is unreadable (one line, naming the
    flag; never the content of a secret)."""


def read_secret(path: Path, flag: str) -> str:
    """The content of a mounted-Secret file, without its trailing newline.

    Read each time it is called, so a rotated Secret is picked up by the next client."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = os.strerror(e.errno).lower() if isinstance(e, OSError) and e.errno else "unreadable"
        raise KafkaSecurityError(f"{flag} {path}: cannot read it ({why})") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise KafkaSecurityError(f"{flag} {path}: the file is empty")
    return secret


@dataclass(frozen=True)
class KafkaSecurity:
    """How a component authenticates to Kafka and protects the connection.

    Set by flags (`--kafka-security-protocol`, ...), `DRIFTWARDEN_KAFKA_*` variables, and
    files from mounted Secrets (CA, client certificate and key, SASL password). Rendered
    into librdkafka settings in one place (`client_config`, used by `producer_config`,
    `consumer_config` and `admin_config`). Holds paths, never a secret: `repr` and logs
    show no password; the password file is read when a client is made.
    """

    protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (TLS + SASL; what production
    clusters such as Strimzi, MSK and Confluent use). The default suits the local demo."""
    ca_file: Path | None = None
    """PEM file of the CA(s) that signed the brokers' certificates (TLS). None: the
    system's CA store. A bundle of the old and new CA lets a CA rotate without a restart."""
    cert_file: Path | None = None
    """PEM client certificate (chain), for brokers that require mutual TLS. Optional."""
    key_file: Path | None = None
    """PEM private key of `cert_file` (unencrypted: protect the Secret, not the file)."""
    sasl_mechanism: str = "SCRAM-SHA-512"
    """SCRAM-SHA-512 (default: the password never crosses the wire), SCRAM-SHA-256 or
    PLAIN (only over TLS)."""
    username: str = ""
    """SASL user name (the ACL principal is User:<username>)."""
    password_file: Path | None = None
    """File holding the SASL password (a mounted Secret); re-read for every new client,
    and by long-lived clients when it changes (`kafka_access.PasswordWatch`)."""
    verify_hostname: bool = True
    """Check that the broker's certificate names the host connected to (TLS). Turn off
    only for brokers addressed by a name their certificate lacks."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", self.protocol.strip().upper())
        object.__setattr__(self, "sasl_mechanism", self.sasl_mechanism.strip().upper())
        if self.protocol not in SECURITY_PROTOCOLS:
            raise KafkaSecurityError(
                f"--kafka-security-protocol: {self.protocol!r} is not one of "
                f"{', '.join(SECURITY_PROTOCOLS)}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            extra = (
                " (OAUTHBEARER is not supported: see docs/security.md)"
                if self.sasl_mechanism.upper() == "OAUTHBEARER"
                else ""
            )
            raise KafkaSecurityError(
                f"--kafka-sasl-mechanism: {self.sasl_mechanism!r} is not one of "
                f"{', '.join(SASL_MECHANISMS)}{extra}"
            )
        if self.sasl:
            if not self.username:
                raise KafkaSecurityError(
                    f"--kafka-username is required with --kafka-security-protocol {self.protocol}"
                )
            if self.password_file is None:
                raise KafkaSecurityError(
                    "--kafka-password-file is required with "
                    f"--kafka-security-protocol {self.protocol}"
                )
        elif self.username or self.password_file is not None:
            raise KafkaSecurityError(
                "--kafka-username/--kafka-password-file need --kafka-security-protocol "
                f"SASL_SSL or SASL_PLAINTEXT, not {self.protocol}"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise KafkaSecurityError("--kafka-cert-file and --kafka-key-file go together")
        tls_files = (self.ca_file, self.cert_file, self.key_file)
        if not self.tls and any(f is not None for f in tls_files):
            raise KafkaSecurityError(
                "--kafka-ca-file/--kafka-cert-file/--kafka-key-file need "
                f"--kafka-security-protocol SSL or SASL_SSL, not {self.protocol}"
            )
        if self.sasl_mechanism == "PLAIN" and self.protocol == "SASL_PLAINTEXT":
            raise KafkaSecurityError(
                "--kafka-sasl-mechanism PLAIN sends the password in clear text: use SASL_SSL"
            )

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def password(self) -> str:
        """The SASL password, read from `password_file` now."""
        assert self.password_file is not None, "no SASL configured"
        return read_secret(self.password_file, "--kafka-password-file")

    def check(self) -> KafkaSecurity:
        """Fail now, with one line naming the flag, when a file cannot be read. Returns self."""
        for path, flag in (
            (self.ca_file, "--kafka-ca-file"),
            (self.cert_file, "--kafka-cert-file"),
            (self.key_file, "--kafka-key-file"),
            (self.password_file, "--kafka-password-file"),
        ):
            if path is not None:
                read_secret(path, flag)
        return self

    def client_config(self) -> dict[str, object]:
        """The librdkafka settings (`security.protocol`, `ssl.*`, `sasl.*`)."""
        config: dict[str, object] = {"security.protocol": self.protocol.lower()}
        if self.tls:
            if self.ca_file is not None:
                config["ssl.ca.location"] = str(self.ca_file)
            if self.cert_file is not None and self.key_file is not None:
                config["ssl.certificate.location"] = str(self.cert_file)
                config["ssl.key.location"] = str(self.key_file)
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.verify_hostname else "none"
            )
        if self.sasl:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.username
            config["sasl.password"] = self.password()
        return config

    def describe(self) -> str:
        """One line for logs: protocol, mechanism and user, never the password."""
        if not self.sasl:
            return self.protocol
        return f"{self.protocol} {self.sasl_mechanism} as {self.username}"


#: The flags of the security group, shared by every component's command (each also a
#: DRIFTWARDEN_KAFKA_* variable: `--kafka-password-file` is DRIFTWARDEN_KAFKA_PASSWORD_FILE).
KAFKA_SECURITY_FLAGS: tuple[Flag, ...] = (
    Flag(
        "protocol",
        "kafka-security-protocol",
        "Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    ),
    Flag("ca_file", "kafka-ca-file", "PEM CA bundle that signed the brokers' certificates."),
    Flag("cert_file", "kafka-cert-file", "PEM client certificate (mutual TLS; optional)."),
    Flag("key_file", "kafka-key-file", "PEM private key of --kafka-cert-file."),
    Flag("sasl_mechanism", "kafka-sasl-mechanism", "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN."),
    Flag("username", "kafka-username", "SASL user name (ACL principal User:<name>)."),
    Flag(
        "password_file",
        "kafka-password-file",
        "File holding the SASL password (a mounted Secret; re-read when it changes).",
    ),
    Flag(
        "verify_hostname",
        "kafka-verify-hostname",
        "Check the broker certificate's host name (TLS).",
    ),
)


def security_environment(security: KafkaSecurity) -> dict[str, str]:
    """The DRIFTWARDEN_KAFKA_* variables that `security_from_args` reads back into
    `security`: file paths, never a secret's content; empty for the defaults (PLAINTEXT)."""
    out: dict[str, str] = {}
    for f in KAFKA_SECURITY_FLAGS:
        value = getattr(security, f.field)
        if value is None or value == flag_default(KafkaSecurity, f.field):
            continue
        out[f.envvar] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def split_security_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(`--kafka-*` security flags with their values, the other arguments)."""
    names = {f.option for f in KAFKA_SECURITY_FLAGS} | {"--no-kafka-verify-hostname"}
    ours: list[str] = []
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in names:
            ours.append(arg)
            takes_value = "=" not in arg and not name.endswith("verify-hostname")
            if takes_value and i + 1 < len(args):
                ours.append(args[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return ours, rest


def security_from_args(
    argv: Sequence[str], environ: Mapping[str, str], *, prog: str = "driftwarden"
) -> tuple[KafkaSecurity, list[str]]:
    """The security group from `--kafka-*` flags and DRIFTWARDEN_KAFKA_* variables (flags
    win), and the arguments left for the component's own flags."""
    ours, rest = split_security_args(argv)
    security = settings_from_args(
        KafkaSecurity, KAFKA_SECURITY_FLAGS, ours, environ, prog=prog, error=KafkaSecurityError
    )
    return security, rest


def redacted(config: Mapping[str, object]) -> dict[str, object]:
    """A librdkafka config fit for a log line: secrets replaced by `***`."""
    return {k: ("***" if k in SECRET_KEYS else v) for k, v in config.items()}


# --- access errors: one clear line instead of a retry loop --------------------------------

#: librdkafka error names that mean "these credentials / this principal cannot do that":
#: retrying does not help until an operator fixes the Secret or the ACLs.
AUTH_ERRORS: Final = frozenset(
    {
        "_AUTHENTICATION",
        "SASL_AUTHENTICATION_FAILED",
        "_SSL",
        "TOPIC_AUTHORIZATION_FAILED",
        "GROUP_AUTHORIZATION_FAILED",
        "CLUSTER_AUTHORIZATION_FAILED",
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    }
)


class KafkaAccessError(DriftwardenError):
    """Kafka refused this component's credentials or ACLs, or cannot be reached (one line)."""


def explain_access(name: str, security: KafkaSecurity | None, target: str = "") -> str:
    """One line saying what an access error means and what to check (pure)."""
    who = f"User:{security.username}" if security is not None and security.sasl else "this client"
    what = f" {target}" if target else ""
    if name in ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED"):
        how = security.describe() if security is not None else "PLAINTEXT"
        return (
            f"authentication failed ({how}): check --kafka-username and the password in "
            "--kafka-password-file"
        )
    if name == "_SSL":
        return (
            "TLS handshake failed: check --kafka-ca-file (the CA that signed the brokers) "
            "and --kafka-security-protocol"
        )
    if name == "TOPIC_AUTHORIZATION_FAILED":
        return f"{who} lacks an ACL on topic{what} (see docs/security.md)"
    if name == "GROUP_AUTHORIZATION_FAILED":
        return f"{who} lacks a READ ACL on consumer group{what} (see docs/security.md)"
    if name == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED":
        return f"{who} lacks a WRITE ACL on transactional id{what} (see docs/security.md)"
    if name == "CLUSTER_AUTHORIZATION_FAILED":
        return f"{who} lacks a cluster ACL{what} (see docs/security.md)"
    return f"Kafka refused {who}{what}: {name}"


# --- least ACLs per component (docs/security.md; the chart renders its KafkaUsers from it) ---


@dataclass(frozen=True, slots=True)
class Acl:
    """Allow `operations` on the Kafka resource `resource` ("topic", "group",
    "transactional_id") called `name` (every name starting with it when `prefixed`)."""

    resource: str
    name: str
    operations: tuple[str, ...]
    prefixed: bool = False


DETECTORS_GROUP: Final = "driftwarden-detectors"
DATASET_GROUP_PREFIX: Final = "driftwarden-dataset-export-"
LINEAGE_GROUP_PREFIX: Final = "driftwarden-lineage-reader-"


def component_acls(
    prefix: str = DEFAULT_TOPIC_PREFIX, detectors_group: str = DETECTORS_GROUP
) -> dict[str, tuple[Acl, ...]]:
    """The least ACLs each component's principal needs, with topics pre-created by the
    operator (the chart) so no component needs CREATE."""
    t = Topics.with_prefix(prefix)
    w, r, d = "write", "read", "describe"
    return {
        "collector": (
            Acl("topic", t.predictions, (w, d)),
            Acl("topic", t.feedback, (w, d)),
            Acl("topic", t.deadletter, (w, d)),
        ),
        "detectors": (
            Acl("topic", t.predictions, (r, d)),
            Acl("topic", t.feedback, (r, d)),
            Acl("topic", t.deadletter, (w, d)),
            Acl("topic", f"{prefix}.windows", (w, d)),
            Acl("topic", f"{prefix}.checkpoints", (r, w, d)),
            # the group and its checkpoint reader (<group>.checkpoint-reader)
            Acl("group", detectors_group, (r,), prefixed=True),
            # one transactional id per replica: <group>.<instance id>
            Acl("transactional_id", f"{detectors_group}.", (w, d), prefixed=True),
        ),
        "trigger": (
            Acl("topic", t.lineage, (r, w, d)),
            Acl("group", LINEAGE_GROUP_PREFIX, (r,), prefixed=True),
        ),
        # the canary controller only appends rollout steps to the lineage
        "canary": (Acl("topic", t.lineage, (w, d)),),
        "dataset": (
            Acl("topic", t.predictions, (r, d)),
            Acl("topic", t.feedback, (r, d)),
            Acl("group", DATASET_GROUP_PREFIX, (r,), prefixed=True),
        ),
    }
