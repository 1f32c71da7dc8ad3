"""pytest fixture: a real KRaft broker with a SASL_SSL listener and ACLs (issue 15).

    secure_kafka            session: SecureKafka (one broker for every security test)
    secure_kafka.principal("collector", prefix)   a SCRAM user with the component's least
                                                  ACLs (driftwarden.kafka.component_acls)
    secure_kafka.security(principal)              its KafkaSecurity (CA, user, password file)

Topics are created through the operator's PLAINTEXT port (as the chart would), so no
component needs CREATE. The rest of the suite keeps its PLAINTEXT `kafka` broker.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from driftwarden.kafka import Acl, KafkaSecurity, Topics, component_acls
from driftwarden.services.kafka import KafkaBroker
from tests.kits.services import _start

_counter = itertools.count(1)


@dataclass(frozen=True)
class Principal:
    name: str
    password: str
    password_file: Path


@dataclass
class SecureKafka:
    broker: KafkaBroker
    directory: Path
    passwords: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        """The SASL_SSL listener."""
        return self.broker.secure_bootstrap

    @property
    def admin_bootstrap(self) -> str:
        """The operator's PLAINTEXT listener (super user): create topics, read back."""
        return self.broker.bootstrap

    @property
    def ca_file(self) -> Path:
        assert self.broker.tls is not None
        return self.broker.tls.ca_file

    def new_prefix(self, partitions: int = 1) -> str:
        """A fresh topic prefix with its topics created (predictions, feedback, deadletter,
        lineage, windows, checkpoints)."""
        prefix = f"sec{next(_counter)}{secrets.token_hex(3)}"
        t = Topics.with_prefix(prefix)
        for name in (t.predictions, t.feedback, t.deadletter, t.lineage):
            self.broker.create_topic(name, partitions)
        self.broker.create_topic(f"{prefix}.windows", 1)
        self.broker.create_topic(f"{prefix}.checkpoints", partitions)
        return prefix

    def user(self, name: str, acls: Iterable[Acl] = ()) -> Principal:
        """A SCRAM-SHA-512 user with a random password (in a 0600 file) and `acls`."""
        password = self.broker.add_scram_user(name)
        self.passwords.append(password)
        path = self.directory / f"{name}.password"
        path.write_text(password + "\n")
        path.chmod(0o600)
        self.grant(name, acls)
        return Principal(name, password, path)

    def grant(self, name: str, acls: Iterable[Acl]) -> None:
        for acl in acls:
            self.broker.grant(name, acl.resource, acl.name, acl.operations, prefixed=acl.prefixed)

    def principal(self, component: str, prefix: str, **kwargs: str) -> Principal:
        """A user for `component` with exactly its least ACLs on `prefix`'s topics."""
        name = f"{component}-{prefix}"
        return self.user(name, component_acls(prefix, **kwargs)[component])

    def security(self, who: Principal, **overrides: object) -> KafkaSecurity:
        values: dict[str, object] = {
            "protocol": "SASL_SSL",
            "ca_file": self.ca_file,
            "username": who.name,
            "password_file": who.password_file,
        }
        values.update(overrides)
        return KafkaSecurity(**values)  # type: ignore[arg-type]


@contextlib.contextmanager
def started_secure_kafka(
    directory: Path, extra_properties: Mapping[str, str | int] | None = None
) -> Iterator[SecureKafka]:
    """A broker with PLAINTEXT (operator) and SASL_SSL (components) listeners, SCRAM and
    PLAIN, StandardAuthorizer ACLs. A failed start fails the test with the broker's log."""
    plain_password = secrets.token_urlsafe(18)
    broker = KafkaBroker(
        directory / "broker",
        sasl_ssl=True,
        plain_users={"plain-user": plain_password},
        extra_properties=extra_properties,
    )
    try:
        kit = SecureKafka(_start("kafka", broker), directory / "secrets")
        kit.directory.mkdir()
        kit.passwords.append(plain_password)
        yield kit
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """One secure broker for every security test of the session."""
    with started_secure_kafka(tmp_path_factory.mktemp("secure-kafka")) as kit:
        yield kit
