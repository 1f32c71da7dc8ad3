"""`driftwarden topics create`: the Kafka topics of the stack, created before anything runs.

Idempotent: missing topics are created, existing ones are left exactly as they are (their
partitions and configs are reported, never changed), so the Helm chart runs it as a hook on
every install and upgrade. Every flag can also be set as DRIFTWARDEN_<FLAG>. Kafka client
security (TLS, SASL) is the `--kafka-*` group every component takes
(`driftwarden.kafka.KafkaSecurity`, docs/security.md); its principal needs only
`topics_acls(prefix)`.

The plan (`topic_plan`) and the ACLs (`topics_acls`) are pure; `create_topics` talks to
Kafka through confluent-kafka's AdminClient.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import typer

from driftwarden.cli._kafka import with_kafka_security
from driftwarden.errors import DriftwardenError, RetryLater
from driftwarden.kafka import (
    AUTH_ERRORS,
    DEFAULT_TOPIC_PREFIX,
    Acl,
    KafkaSecurity,
    admin_config,
    explain_access,
)

app = typer.Typer(help="Kafka topics of the stack.", no_args_is_help=True)

HOUR_MS = 3_600_000

#: Topic suffix -> what it holds; the order is the order of `create`'s output.
TOPICS: dict[str, str] = {
    "predictions": "prediction events from the collectors (key = model)",
    "feedback": "ground-truth labels (key = model)",
    "deadletter": "records that did not parse or match a spec, with the reason",
    "windows": "one result per detector window",
    "checkpoints": "detector state per partition (compacted: the latest generation is kept)",
    "lineage": "every step of a retrain, alert to rollout",
}

#: The checkpoint topic's settings, as the detectors create it themselves
#: (detectors/service/checkpoint.py `ensure_checkpoint_topic`).
CHECKPOINT_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "600000",
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": "3600000",
}


class TopicsError(DriftwardenError):
    """A flag of `driftwarden topics` is invalid, or Kafka refused a topic."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)


def topic_plan(
    prefix: str = DEFAULT_TOPIC_PREFIX,
    *,
    partitions: int = 6,
    replication_factor: int = -1,
    retention_hours: float = 168.0,
    lineage_retention_hours: float = -1.0,
) -> list[TopicSpec]:
    """The topics of the stack with their settings (pure).

    `replication_factor` -1 and a retention of -1 hours mean the broker's default and
    "kept forever". Predictions, feedback, dead letters and window results expire after
    `retention_hours`; lineage is history and is kept (`lineage_retention_hours`); the
    checkpoint topic is compacted, never expired by time.
    """
    if not prefix or any(c not in _TOPIC_CHARS for c in prefix):
        raise TopicsError(
            f"--topic-prefix: {prefix!r} is not a Kafka topic name (a-z A-Z 0-9 . _ -)"
        )
    if partitions < 1:
        raise TopicsError(f"--partitions: {partitions} is not a positive number")
    if replication_factor == 0 or replication_factor < -1:
        raise TopicsError(
            f"--replication-factor: {replication_factor} is not a positive number (or -1 for "
            "the broker's default)"
        )
    for flag, hours in (
        ("retention-hours", retention_hours),
        ("lineage-retention-hours", lineage_retention_hours),
    ):
        if hours != -1 and hours <= 0:
            raise TopicsError(f"--{flag}: {hours} is not a positive number of hours (or -1)")

    def retention(hours: float) -> dict[str, str]:
        return {"retention.ms": str(-1 if hours == -1 else round(hours * HOUR_MS))}

    out = []
    for suffix in TOPICS:
        if suffix == "checkpoints":
            config: dict[str, str] = dict(CHECKPOINT_CONFIG)
        elif suffix == "lineage":
            config = retention(lineage_retention_hours)
        else:
            config = retention(retention_hours)
        out.append(TopicSpec(f"{prefix}.{suffix}", partitions, replication_factor, config))
    return out


_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def topics_acls(prefix: str = DEFAULT_TOPIC_PREFIX) -> tuple[Acl, ...]:
    """The least ACLs of the principal that runs `topics create` (pure): Create and Describe
    on the topics named `<prefix>.*` (Describe lists them, Create makes the missing ones).
    No component needs these (docs/security.md); the chart gives them to the hook Job's user."""
    return (Acl("topic", f"{prefix}.", ("create", "describe"), prefixed=True),)


def create_topics(
    bootstrap: str,
    plan: Sequence[TopicSpec],
    *,
    security: KafkaSecurity | None = None,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create the missing topics of `plan`; return topic -> "created" or "exists (N partitions)".

    `security`: TLS / SASL settings (None: PLAINTEXT). Raises `RetryLater` when Kafka cannot
    be reached and `TopicsError` when it refuses a topic (a replication factor above the
    broker count, or a missing ACL: the line then says which, as the components do).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(admin_config(bootstrap, security=security))
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as e:
        raise RetryLater(f"Kafka at {bootstrap} did not answer in {timeout:g}s: {e}") from e
    result: dict[str, str] = {}
    missing = []
    for spec in plan:
        meta = existing.get(spec.name)
        if meta is not None and meta.error is None:
            result[spec.name] = f"exists ({len(meta.partitions)} partitions)"
        else:
            missing.append(spec)
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication_factor,
                    config=dict(s.config),
                )
                for s in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for spec in missing:
            try:
                futures[spec.name].result(timeout)
            except KafkaException as e:
                err = e.args[0] if e.args else None
                code = err.code() if isinstance(err, KafkaError) else None
                if code == KafkaError.TOPIC_ALREADY_EXISTS:  # created meanwhile by someone else
                    result[spec.name] = "exists"
                    continue
                reason = err.str() if isinstance(err, KafkaError) else str(e)
                if isinstance(err, KafkaError) and err.name() in AUTH_ERRORS:
                    reason = explain_access(err.name(), security, spec.name)
                raise TopicsError(f"Kafka refused topic {spec.name}: {reason}") from e
            result[spec.name] = "created"
        _wait_for_leaders(admin, [s.name for s in missing], timeout)
    return {s.name: result[s.name] for s in plan}


def _wait_for_leaders(admin: Any, names: Sequence[str], timeout: float) -> None:
    """Return once every partition of `names` has a leader: a component started right after
    the hook then finds its topics (CreateTopics answers before the metadata shows them)."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout
    waiting = list(names)
    while waiting:
        try:
            topics = admin.list_topics(timeout=max(1.0, deadline - time.monotonic())).topics
        except KafkaException as e:
            raise RetryLater(f"Kafka did not answer while topics were created: {e}") from e
        waiting = [
            name
            for name in waiting
            if (meta := topics.get(name)) is None
            or meta.error is not None
            or not meta.partitions
            or any(p.leader < 0 for p in meta.partitions.values())
        ]
        if waiting and time.monotonic() >= deadline:
            raise RetryLater(f"topics without a leader after {timeout:g}s: {', '.join(waiting)}")
        if waiting:
            time.sleep(0.1)


@app.command("create")
@with_kafka_security
def create(
    bootstrap: str = typer.Option(
        "127.0.0.1:9092", envvar="DRIFTWARDEN_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
    topic_prefix: str = typer.Option(
        DEFAULT_TOPIC_PREFIX, envvar="DRIFTWARDEN_TOPIC_PREFIX", help="Topics are <prefix>.*."
    ),
    partitions: int = typer.Option(
        6,
        envvar="DRIFTWARDEN_PARTITIONS",
        help="Partitions per topic (the most detector replicas that can share the work).",
    ),
    replication_factor: int = typer.Option(
        -1,
        envvar="DRIFTWARDEN_REPLICATION_FACTOR",
        help="Replicas per partition (-1: broker default).",
    ),
    retention_hours: float = typer.Option(
        168.0,
        envvar="DRIFTWARDEN_RETENTION_HOURS",
        help="Retention of predictions, feedback, dead letters, window results (-1: forever).",
    ),
    lineage_retention_hours: float = typer.Option(
        -1.0,
        envvar="DRIFTWARDEN_LINEAGE_RETENTION_HOURS",
        help="Retention of lineage (-1: forever).",
    ),
    timeout: float = typer.Option(
        30.0, envvar="DRIFTWARDEN_TIMEOUT", help="Seconds to wait for Kafka."
    ),
    *,
    kafka_security: KafkaSecurity,
) -> None:
    """Create the stack's topics that do not exist yet; leave existing ones unchanged."""
    if timeout <= 0:
        raise TopicsError(f"--timeout: {timeout} is not a positive number of seconds")
    plan = topic_plan(
        topic_prefix,
        partitions=partitions,
        replication_factor=replication_factor,
        retention_hours=retention_hours,
        lineage_retention_hours=lineage_retention_hours,
    )
    if kafka_security.protocol != "PLAINTEXT":
        # refused credentials or TLS: one line now, not a silent reconnect loop (librdkafka
        # never gives up on them by itself)
        from driftwarden.kafka_access import check_access

        check_access(bootstrap, kafka_security, timeout=timeout)
    try:
        outcome = create_topics(bootstrap, plan, security=kafka_security, timeout=timeout)
    except RetryLater as e:
        raise TopicsError(str(e)) from e
    for name, what in outcome.items():
        typer.echo(f"{name}: {what}")
