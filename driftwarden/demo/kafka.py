"""The demo's Kafka: one embedded KRaft broker, PLAINTEXT by default; with `--secure-kafka`
a SASL_SSL listener (its own CA) and one SCRAM user per component holding exactly the
least ACLs of `driftwarden.kafka.component_acls` (docs/security.md), as in production.

The topics are created up front through the operator's port, so no component needs CREATE.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from driftwarden.kafka import (
    DEFAULT_TOPIC_PREFIX,
    KafkaSecurity,
    Topics,
    component_acls,
    security_environment,
)
from driftwarden.services.kafka import KafkaBroker

__all__ = ["COMPONENTS", "DemoKafka", "start_kafka"]

#: The principals of the loop (the canary controller only appends lineage steps; `dataset`
#: is `dataset export`, run by the retraining Job).
COMPONENTS = ("collector", "detectors", "trigger", "canary", "dataset")


@dataclass(frozen=True)
class DemoKafka:
    """Where each component connects, and as whom."""

    bootstrap: str
    securities: dict[str, KafkaSecurity] = field(default_factory=dict)

    @property
    def secure(self) -> bool:
        return bool(self.securities)

    def security(self, component: str) -> KafkaSecurity:
        return self.securities.get(component, KafkaSecurity())

    def env(self, component: str) -> dict[str, str]:
        """The component's DRIFTWARDEN_KAFKA_* variables (file paths only)."""
        return security_environment(self.security(component))


def start_kafka(
    workdir: Path,
    *,
    secure: bool,
    detectors_group: str,
    partitions: int = 3,
    say: Callable[[str], None] = print,
) -> tuple[KafkaBroker, DemoKafka]:
    """Start the broker (the caller stops it), create the topics, and with `secure` one
    user per component with its ACLs and its password in a 0600 file."""
    broker = KafkaBroker(workdir / "kafka", sasl_ssl=secure)
    broker.start()
    try:
        return broker, _prepare(broker, workdir, secure, detectors_group, partitions, say)
    except BaseException:
        broker.stop()
        raise


def _prepare(
    broker: KafkaBroker,
    workdir: Path,
    secure: bool,
    detectors_group: str,
    partitions: int,
    say: Callable[[str], None],
) -> DemoKafka:
    topics = Topics.with_prefix()
    for topic in (topics.predictions, topics.feedback, topics.deadletter):
        broker.create_topic(topic, partitions=partitions)
    if not secure:
        say(f"Kafka (KRaft) ready on {broker.bootstrap}")
        return DemoKafka(broker.bootstrap)
    for topic, n in (
        (f"{DEFAULT_TOPIC_PREFIX}.checkpoints", partitions),
        (f"{DEFAULT_TOPIC_PREFIX}.windows", 1),
        (topics.lineage, 3),
    ):
        broker.create_topic(topic, partitions=n)
    assert broker.tls is not None
    folder = workdir / "kafka-secrets"
    folder.mkdir(exist_ok=True)
    acls = component_acls(DEFAULT_TOPIC_PREFIX, detectors_group=detectors_group)
    securities = {}
    for component in COMPONENTS:
        name = f"demo-{component}"
        password = secrets.token_urlsafe(24)
        path = folder / f"{component}.password"
        path.write_text(password + "\n")
        path.chmod(0o600)
        broker.add_scram_user(name, password)
        for acl in acls[component]:
            broker.grant(name, acl.resource, acl.name, acl.operations, prefixed=acl.prefixed)
        securities[component] = KafkaSecurity(
            protocol="SASL_SSL",
            ca_file=broker.tls.ca_file,
            username=name,
            password_file=path,
        )
    say(
        f"Kafka (KRaft) ready on {broker.secure_bootstrap}: SASL_SSL, SCRAM-SHA-512, "
        f"{len(COMPONENTS)} users with their least ACLs ({', '.join(COMPONENTS)})"
    )
    return DemoKafka(broker.secure_bootstrap, securities)
