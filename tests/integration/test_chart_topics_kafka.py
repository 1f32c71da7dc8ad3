"""`driftwarden topics create` against the real Kafka broker: creates what is missing with
the planned settings, and a second run changes nothing (the chart runs it on every upgrade).
Over SASL_SSL (the `secure_kafka` broker) it takes the --kafka-* group every component
takes, as the chart sets it (DRIFTWARDEN_KAFKA_* variables, password and CA as files), and
needs no more than `topics_acls(prefix)`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from driftwarden.cli import main
from driftwarden.cli.topics import topics_acls
from driftwarden.services import KafkaBroker
from tests.kits.secure_kafka import SecureKafka

pytestmark = pytest.mark.integration


TOPIC_SUFFIXES = ("predictions", "feedback", "deadletter", "windows", "checkpoints", "lineage")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["topics", "create", *args])
    out = capsys.readouterr()
    assert exit_info.value.code in (0, None), out.err
    return out.out.strip().splitlines()


def _config(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return {k: v.value for k, v in entries.items()}


def test_creates_then_is_idempotent(kafka: KafkaBroker, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = f"chart-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    # one topic exists already, with other settings: it must be left exactly as it is
    from confluent_kafka.admin import NewTopic

    admin.create_topics([NewTopic(f"{prefix}.feedback", num_partitions=1)])[
        f"{prefix}.feedback"
    ].result(timeout=30)

    args = ["--bootstrap", kafka.bootstrap, "--topic-prefix", prefix, "--partitions", "3"]
    first = _run(capsys, *args, "--retention-hours", "24", "--replication-factor", "1")
    assert f"{prefix}.predictions: created" in first
    assert f"{prefix}.feedback: exists (1 partitions)" in first
    assert sum(line.endswith(": created") for line in first) == 5

    topics = admin.list_topics(timeout=10).topics
    assert len(topics[f"{prefix}.predictions"].partitions) == 3
    assert len(topics[f"{prefix}.feedback"].partitions) == 1
    assert _config(admin, f"{prefix}.predictions")["retention.ms"] == str(24 * 3_600_000)
    assert _config(admin, f"{prefix}.checkpoints")["cleanup.policy"] == "compact"
    assert _config(admin, f"{prefix}.lineage")["retention.ms"] == "-1"

    second = _run(capsys, *args)
    assert all(": exists" in line for line in second), second
    assert len(second) == 6


def test_refused_topic_is_one_line(kafka: KafkaBroker, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = f"chart-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "topics",
                "create",
                "--bootstrap",
                kafka.bootstrap,
                "--topic-prefix",
                prefix,
                "--replication-factor",
                "3",
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: Kafka refused topic {prefix}.")
    assert "replication" in err[0].lower()


def test_unreachable_kafka_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from driftwarden.services.ports import free_port

    port = free_port()
    with pytest.raises(SystemExit) as exit_info:
        main(["topics", "create", "--bootstrap", f"127.0.0.1:{port}", "--timeout", "2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: Kafka at 127.0.0.1:{port} did not answer")


def test_over_sasl_ssl_with_only_the_topics_acls(
    secure_kafka: SecureKafka,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"chartsec-{uuid.uuid4().hex[:8]}"
    who = secure_kafka.user(f"topics-{prefix}", topics_acls(prefix))
    # the variables the chart's hook Job gets (tests/unit/test_chart_render.py checks them)
    for name, value in {
        "DRIFTWARDEN_BOOTSTRAP": secure_kafka.bootstrap,
        "DRIFTWARDEN_TOPIC_PREFIX": prefix,
        "DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "DRIFTWARDEN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "DRIFTWARDEN_KAFKA_USERNAME": who.name,
        "DRIFTWARDEN_KAFKA_PASSWORD_FILE": str(who.password_file),
        "DRIFTWARDEN_KAFKA_CA_FILE": str(secure_kafka.ca_file),
        "DRIFTWARDEN_KAFKA_VERIFY_HOSTNAME": "true",
    }.items():
        monkeypatch.setenv(name, value)
    args = ["--partitions", "2", "--replication-factor", "1"]
    first = _run(capsys, *args)
    assert sorted(first) == sorted(f"{prefix}.{t}: created" for t in TOPIC_SUFFIXES)
    admin = AdminClient({"bootstrap.servers": secure_kafka.admin_bootstrap})
    assert len(admin.list_topics(timeout=10).topics[f"{prefix}.windows"].partitions) == 2
    second = _run(capsys, *args)
    assert sorted(second) == sorted(f"{prefix}.{t}: exists (2 partitions)" for t in TOPIC_SUFFIXES)


def _refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["topics", "create", "--timeout", "10", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_acl_and_wrong_password_are_one_line(
    secure_kafka: SecureKafka, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prefix = f"chartsec-{uuid.uuid4().hex[:8]}"
    bare = secure_kafka.user(f"topics-bare-{prefix}")  # authenticated, no ACL at all
    common = [
        "--bootstrap",
        secure_kafka.bootstrap,
        "--topic-prefix",
        prefix,
        "--replication-factor",
        "1",
        "--kafka-security-protocol",
        "SASL_SSL",
        "--kafka-ca-file",
        str(secure_kafka.ca_file),
        "--kafka-username",
        bare.name,
    ]
    line = _refused(capsys, *common, "--kafka-password-file", str(bare.password_file))
    assert line.startswith(f"error: Kafka refused topic {prefix}.")
    assert f"User:{bare.name} lacks an ACL on topic {prefix}." in line
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    line = _refused(capsys, *common, "--kafka-password-file", str(wrong))
    assert line.startswith(f"error: kafka {secure_kafka.bootstrap}: authentication failed")
    assert "not-the-password" not in line and bare.password not in line
