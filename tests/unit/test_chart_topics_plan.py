"""`driftwarden topics create` (run by the chart's hook Job): the pure topic plan and its
one-line errors for bad flags."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from driftwarden.cli import app
from driftwarden.cli.topics import CHECKPOINT_CONFIG, TopicsError, topic_plan, topics_acls
from driftwarden.kafka import KAFKA_SECURITY_FLAGS, Acl, Topics


def test_plan_names_every_topic_the_components_use() -> None:
    plan = {t.name: t for t in topic_plan("acme", partitions=12, replication_factor=3)}
    topics = Topics.with_prefix("acme")
    assert {topics.predictions, topics.feedback, topics.deadletter} <= set(plan)
    assert {"acme.windows", "acme.checkpoints", "acme.lineage"} <= set(plan)
    assert len(plan) == 6
    assert all(t.partitions == 12 and t.replication_factor == 3 for t in plan.values())


def test_retention_compaction_and_lineage_kept() -> None:
    plan = {t.name.split(".")[-1]: t for t in topic_plan(retention_hours=24)}
    assert plan["predictions"].config == {"retention.ms": str(24 * 3_600_000)}
    assert plan["deadletter"].config == {"retention.ms": str(24 * 3_600_000)}
    assert plan["checkpoints"].config == CHECKPOINT_CONFIG
    assert plan["checkpoints"].config["cleanup.policy"] == "compact"
    assert plan["lineage"].config == {"retention.ms": "-1"}


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"partitions": 0}, "--partitions"),
        ({"replication_factor": 0}, "--replication-factor"),
        ({"replication_factor": -2}, "--replication-factor"),
        ({"retention_hours": 0}, "--retention-hours"),
        ({"lineage_retention_hours": -3}, "--lineage-retention-hours"),
    ],
)
def test_bad_values_name_the_flag(kwargs: dict, flag: str) -> None:
    with pytest.raises(TopicsError, match=flag):
        topic_plan("driftwarden", **kwargs)


def test_bad_prefix_is_refused() -> None:
    with pytest.raises(TopicsError, match="--topic-prefix"):
        topic_plan("drift warden")


def test_security_is_the_group_every_component_takes() -> None:
    """One way to configure Kafka security: the --kafka-* flags of driftwarden.kafka."""
    result = CliRunner().invoke(app, ["topics", "create", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in KAFKA_SECURITY_FLAGS:
        assert flag.option in result.output, flag.option
    assert "SASL_USERNAME" not in result.output and "SSL_CA_LOCATION" not in result.output


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--kafka-security-protocol", "SASL_SSL"],
            "error: --kafka-username is required with --kafka-security-protocol SASL_SSL",
        ),
        (
            ["--kafka-security-protocol", "KERBEROS"],
            "error: --kafka-security-protocol: 'KERBEROS' is not one of PLAINTEXT, SSL, "
            "SASL_PLAINTEXT, SASL_SSL",
        ),
        (
            [
                "--kafka-security-protocol=SASL_SSL",
                "--kafka-username=dw",
                "--kafka-password-file=/nonexistent/password",
            ],
            "error: --kafka-password-file /nonexistent/password: cannot read it "
            "(no such file or directory)",
        ),
    ],
)
def test_bad_security_flags_are_one_line(
    args: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftwarden.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["topics", "create", "--bootstrap", "127.0.0.1:1", *args])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [line]


def test_topics_principal_needs_create_and_describe_on_the_prefix_only() -> None:
    (acl,) = topics_acls("acme")
    assert acl == Acl("topic", "acme.", ("create", "describe"), prefixed=True)
    assert all(t.name.startswith(acl.name) for t in topic_plan("acme"))


def test_cli_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from driftwarden.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["topics", "create", "--partitions", "0", "--bootstrap", "127.0.0.1:1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --partitions: 0 is not a positive number"]


def test_help_lists_the_command() -> None:
    result = CliRunner().invoke(app, ["topics", "create", "--help"])
    assert result.exit_code == 0
    for flag in ("--partitions", "--replication-factor", "--retention-hours", "--topic-prefix"):
        assert flag in result.output
