"""Kafka access at the edge: probe a broker before work starts (`check_access`) and notice a
rotated SASL password (`PasswordWatch`).

Adapters around the pure settings of `driftwarden.kafka`: this module imports the Kafka
client and touches the disk, so `driftwarden.kafka` (the contracts every pure module may
import) stays free of both. Errors are `driftwarden.kafka.KafkaAccessError`, one line each.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from driftwarden.kafka import (
    AUTH_ERRORS,
    KafkaAccessError,
    KafkaSecurity,
    KafkaSecurityError,
    admin_config,
    explain_access,
)

__all__ = ["PasswordWatch", "check_access"]

_log = logging.getLogger("driftwarden.kafka")


class PasswordWatch:
    """Tells a long-lived client when the password file changed (a rotated Secret), so it
    can call `set_sasl_credentials` instead of restarting. Checks at most every
    `interval_s` seconds (a `stat`), by modification time and size."""

    def __init__(self, security: KafkaSecurity, interval_s: float = 1.0) -> None:
        self.security = security
        self.interval_s = interval_s
        self._next = 0.0
        self._stamp = self._stat()

    @classmethod
    def of(cls, security: KafkaSecurity | None) -> PasswordWatch | None:
        """A watch when `security` logs in with a password file (SASL), else None."""
        return cls(security) if security is not None and security.sasl else None

    def rotate(self, now: float, clients: Iterable[Any]) -> bool:
        """Hand a changed password to every client (`set_sasl_credentials`, used at its next
        (re)authentication; None skipped); True when it changed."""
        rotated = self.changed(now)
        if rotated is None:
            return False
        for client in clients:
            if client is not None:
                client.set_sasl_credentials(*rotated)
        _log.info("kafka password file changed: new SASL credentials in use")
        return True

    def _stat(self) -> tuple[int, int] | None:
        path = self.security.password_file
        if path is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def changed(self, now: float) -> tuple[str, str] | None:
        """(username, new password) when the file changed since the last call, else None."""
        if self.security.password_file is None or now < self._next:
            return None
        self._next = now + self.interval_s
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            return self.security.username, self.security.password()
        except KafkaSecurityError:
            return None  # mid-rotation (empty or missing): keep the current credentials


def _quiet_logger() -> logging.Logger:
    """A logger for librdkafka's own lines during a probe: the probe reports them itself."""
    log = logging.getLogger("driftwarden.kafka.probe")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    return log


def check_access(
    bootstrap: str,
    security: KafkaSecurity | None = None,
    *,
    topics: Sequence[str] = (),
    timeout: float = 20.0,
) -> None:
    """Connect once before a component starts its work: `KafkaAccessError` (one line) when
    the credentials are refused, TLS fails, a topic in `topics` is not visible to this
    principal (no DESCRIBE ACL) or Kafka cannot be reached within `timeout` seconds.

    librdkafka itself never gives up on refused credentials (it reconnects forever), so a
    component that did not ask would sit in a silent retry loop."""
    errors: list[object] = []
    admin = AdminClient(
        admin_config(
            bootstrap,
            security=security,
            error_cb=errors.append,
            logger=_quiet_logger(),
            **{"socket.timeout.ms": 10_000},
        )
    )
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        left = deadline - time.monotonic()
        try:
            meta = admin.list_topics(timeout=max(0.1, min(2.0, left)))
        except KafkaException as e:
            meta = None
            last = str(e.args[0]) if e.args else str(e)
        admin.poll(0)  # serves error_cb
        for err in errors:
            name = err.name()  # type: ignore[attr-defined]
            if name in AUTH_ERRORS:
                raise KafkaAccessError(f"kafka {bootstrap}: {explain_access(name, security)}")
        if meta is not None:
            for topic in topics:
                # a listing of all topics silently omits those this principal may not see
                try:
                    one = admin.list_topics(topic, timeout=max(1.0, deadline - time.monotonic()))
                except KafkaException:
                    continue
                found = one.topics.get(topic)
                if found is not None and found.error is not None:
                    name = found.error.name()
                    if name in AUTH_ERRORS:
                        raise KafkaAccessError(
                            f"kafka {bootstrap}: {explain_access(name, security, topic)}"
                        )
            return
        if time.monotonic() >= deadline:
            raise KafkaAccessError(f"kafka {bootstrap}: unreachable for {timeout:g}s ({last})")
