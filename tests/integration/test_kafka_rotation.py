"""A rotated SCRAM password reaches every long-lived Kafka client without a restart
(docs/security.md, "Rotation without a restart"), against a real broker that makes its
clients re-authenticate every few seconds (`connections.max.reauth.ms`, KIP-368): a client
still holding the old password would be cut off at its next re-authentication."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftwarden.kafka import Topics
from retrain_trigger.lineage import LineageLog, step
from tests.kits.secure_kafka import SecureKafka, started_secure_kafka
from tests.kits.waiting import wait_until

pytestmark = pytest.mark.integration

# Long enough that a re-authentication rarely falls in the instant between the broker's
# new credential and the client's new password (see the detectors' test).
REAUTH_MS = 6000


@pytest.fixture(scope="module")
def reauth_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    extra = {"connections.max.reauth.ms": REAUTH_MS}
    with started_secure_kafka(tmp_path_factory.mktemp("reauth-kafka"), extra) as kit:
        yield kit


def _rotate(kit: SecureKafka, name: str, password_file: Path) -> str:
    """The order of docs/security.md: the broker's SCRAM credential, then at once the Secret
    (the mounted file)."""
    new = secrets.token_urlsafe(24)
    kit.broker.add_scram_user(name, new)
    kit.passwords.append(new)
    password_file.write_text(new + "\n")
    return new


def test_detectors_follow_a_rotated_password(
    reauth_kafka: SecureKafka, tmp_path: Path, caplog: Any
) -> None:
    """The new password reaches the consumer, the transactional producer and the checkpoint
    reader at their next re-authentication. Not covered, because it does not hold: a
    re-authentication of the transactional producer refused between the two changes is
    fatal for it (librdkafka's rule), and the service then exits to be restarted from its
    checkpoints (docs/security.md, "Rotation without a restart")."""
    from detectors.service import ServiceSettings, start_service
    from tests.kits.detectors import SyntheticModel, produce

    kit = reauth_kafka
    prefix = kit.new_prefix()
    group = f"{prefix}-det"
    who = kit.principal("detectors", prefix, detectors_group=group)
    model = SyntheticModel("churn", n_numerical=2, n_categorical=1, seed=3)
    model.write(tmp_path / "specs", reference_rows=2000, window_rows=500)
    stream = model.stream(2000, seed=4)
    records = stream.records()
    t = Topics.with_prefix(prefix)
    settings = ServiceSettings(
        specs=tmp_path / "specs",
        bootstrap=kit.bootstrap,
        topic_prefix=prefix,
        group_id=group,
        instance_id="rot",
        metrics_port=0,
        metrics_host="127.0.0.1",
        checkpoint_interval_s=0.5,
        transaction_timeout_s=10.0,
        kafka_security=kit.security(who),
    )
    caplog.set_level(logging.INFO)
    stop = threading.Event()
    service, thread = start_service(settings, stop)

    def windows() -> set[int]:
        return {r.seq for r in service.history if r.kind == "drift"}

    try:
        produce(kit.admin_bootstrap, t.predictions, records[:1000])
        wait_until(lambda: windows() >= {1, 2}, 90, "two drift windows before the rotation")
        _rotate(kit, who.name, who.password_file)
        wait_until(lambda: "new SASL credentials in use" in caplog.text, 30, "the rotation noticed")
        time.sleep(3 * REAUTH_MS / 1000)  # every connection re-authenticated since
        produce(kit.admin_bootstrap, t.predictions, records[1000:])
        wait_until(lambda: windows() >= {1, 2, 3, 4}, 90, "two drift windows after the rotation")
    finally:
        stop.set()
        thread.join(60)
    assert not thread.error, thread.error  # type: ignore[attr-defined]
    assert service._failure is None


def test_lineage_producer_follows_a_rotated_password(
    reauth_kafka: SecureKafka, tmp_path: Path
) -> None:
    kit = reauth_kafka
    prefix = kit.new_prefix()
    who = kit.principal("trigger", prefix)
    topic = Topics.with_prefix(prefix).lineage
    log = LineageLog(kit.bootstrap, topic, security=kit.security(who))
    try:
        log.append(step("fraud", "alert", "fp-1", ts=1.0))
        assert log.flush(30) == 0
        _rotate(kit, who.name, who.password_file)
        time.sleep(2 * REAUTH_MS / 1000)  # the old password is refused from here on
        log.append(step("fraud", "decision", "fp-1", ts=2.0, decision="launched"))
        assert log.flush(60) == 0 and log.failed == 0
        steps = [e.step for e in log.history("fraud", timeout=20)]
        assert steps == ["alert", "decision"]
    finally:
        log.close()
