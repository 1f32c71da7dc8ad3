"""Settings of the detectors service, grouped and documented; built once (from flags or
DRIFTWARDEN_<FLAG> environment variables by the CLI, or directly by tests) and passed down."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from driftwarden.errors import DriftwardenError
from driftwarden.flags import Flag
from driftwarden.kafka import DEFAULT_TOPIC_PREFIX, KafkaSecurity, Topics

__all__ = ["FLAGS", "ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    # --- what to watch -------------------------------------------------------------------
    specs: Path
    """Folder of model spec files (*.yaml, *.yml); re-read every `spec_reload_s`."""
    bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers (host:port[,host:port])."""
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    """Topics are <prefix>.predictions, .feedback, .deadletter, .windows, .checkpoints."""
    group_id: str = "driftwarden-detectors"
    """Consumer group; replicas with the same group split the partitions (and models)."""
    instance_id: str = field(default_factory=socket.gethostname)
    """Stable name of this replica (the pod name): its Kafka transactional id is
    <group_id>.<instance_id>, so a restarted replica fences its predecessor's open
    transaction at once instead of waiting `transaction_timeout_s`."""

    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    """TLS / SASL towards Kafka (the --kafka-* flags, driftwarden.kafka; PLAINTEXT by
    default). The ACLs this service needs are listed in docs/security.md."""

    # --- HTTP ------------------------------------------------------------------------------
    metrics_port: int = 9108
    """Port of /metrics and /healthz (0: any free port)."""
    metrics_host: str = "0.0.0.0"

    # --- processing --------------------------------------------------------------------------
    max_batch: int = 1000
    """Records per `consume()` call (at most 1000: larger batches add latency, not speed)."""
    poll_timeout_s: float = 0.2
    """How long one `consume()` waits for records, seconds."""
    checkpoint_interval_s: float = 5.0
    """Seconds between checkpoints (a transaction commit with the offsets). A crash
    replays at most this much input, which nothing double counts."""
    transaction_timeout_s: float = 30.0
    #: A login refused while running (a password rotation: the broker and the mounted Secret
    #: do not change at the same instant) is waited out this long before the service stops.
    login_grace_s: float = 120.0
    """Kafka transaction timeout, seconds: how long the partitions of a replica that died
    mid-transaction stay blocked before the broker aborts its transaction."""
    spec_reload_s: float = 10.0
    """Seconds between checks of the specs folder for changed files."""
    max_feature_series: int = 200
    """Features per (model, version) exported with their own `feature` label."""
    max_categories: int = 10_000
    """Distinct values tracked per categorical feature (past it: one overflow bucket)."""
    max_versions: int = 64
    """Versions tracked per model (events of further versions are dead-lettered)."""
    feedback_queue_max: int = 100_000
    """Feedback records waiting for their predictions before feedback fetching pauses."""
    history_size: int = 10_000
    """Window results kept in memory (`DetectorService.history`)."""
    publish_results: bool = True
    """Write every window result to <prefix>.windows (in the checkpoint's transaction)."""
    tune_gc: bool = True
    """Freeze the objects that exist after start-up out of Python's cyclic GC and raise
    its young-generation threshold (~20 % less CPU per event; see consumer._tune_gc)."""
    state_dir: Path | None = None
    """Optional cache folder for reference profiles (.npz); checkpoints live in Kafka."""

    # --- logging -----------------------------------------------------------------------------
    log_level: str = "info"
    log_format: str = "text"

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch <= 1000:
            raise DriftwardenError("--max-batch must be between 1 and 1000")
        if self.checkpoint_interval_s <= 0:
            raise DriftwardenError("--checkpoint-interval must be > 0 seconds")
        if self.transaction_timeout_s < 2 * self.checkpoint_interval_s:
            raise DriftwardenError(
                "--transaction-timeout must be at least twice --checkpoint-interval"
            )
        if self.max_feature_series < 1:
            raise DriftwardenError("--max-feature-series must be >= 1")
        if self.log_format not in ("json", "text"):
            raise DriftwardenError(f"--log-format: {self.log_format!r} is not json or text")
        if not self.bootstrap:
            raise DriftwardenError("--bootstrap is required")

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.topic_prefix)

    @property
    def results_topic(self) -> str:
        return f"{self.topic_prefix}.windows"

    @property
    def checkpoint_topic(self) -> str:
        return f"{self.topic_prefix}.checkpoints"

    @property
    def transactional_id(self) -> str:
        return f"{self.group_id}.{self.instance_id}"


#: The flags of `driftwarden detectors run` (and `python -m detectors.service`), each also a
#: DRIFTWARDEN_<FLAG> variable. Types and defaults come from `ServiceSettings`; a field
#: without a flag here is settable only by constructing `ServiceSettings` directly.
FLAGS: tuple[Flag, ...] = (
    Flag("specs", "specs", "Folder of model spec files (*.yaml)."),
    Flag("bootstrap", "bootstrap", "Kafka bootstrap servers."),
    Flag("metrics_port", "metrics-port", "Port of /metrics and /healthz."),
    Flag("metrics_host", "metrics-host", "Address to serve /metrics on."),
    Flag("group_id", "group-id", "Kafka consumer group of the replicas."),
    Flag("topic_prefix", "topic-prefix", "Topic prefix (<prefix>.predictions, ...)."),
    Flag(
        "instance_id",
        "instance-id",
        "Stable replica name (default: the host name, i.e. the pod name).",
    ),
    Flag(
        "state_dir", "state-dir", "Cache folder for reference profiles (checkpoints live in Kafka)."
    ),
    Flag(
        "checkpoint_interval_s",
        "checkpoint-interval",
        "Seconds between checkpoints (transaction commits).",
    ),
    Flag("transaction_timeout_s", "transaction-timeout", "Kafka transaction timeout, seconds."),
    Flag("max_batch", "max-batch", "Records per consume() call (1-1000)."),
    Flag(
        "max_feature_series",
        "max-feature-series",
        "Features per model version exported with their own label.",
    ),
    Flag("spec_reload_s", "spec-reload", "Seconds between spec folder checks."),
    Flag("publish_results", "publish-results", "Write window results to <prefix>.windows."),
    Flag("log_level", "log-level", "debug, info, warning or error."),
    Flag("log_format", "log-format", "json or text."),
)
