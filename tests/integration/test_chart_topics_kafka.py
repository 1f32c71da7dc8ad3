"""`driftwarden topics create` against the real Kafka broker: creates what is missing with
the planned settings, and a second run changes nothing (the chart runs it on every upgrade)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from driftwarden.cli import main
from driftwarden.services import KafkaBroker

pytestmark = pytest.mark.integration


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
