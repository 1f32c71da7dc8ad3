"""Wiring: settings → policies, token, Kubernetes client, lineage, Trigger, watchers, HTTP server.

`TriggerService(settings).start()` runs the whole trigger in the calling process (the HTTP
server and one Job watcher per namespace in threads) and is what both `driftwarden trigger
run` and the integration tests start, so the tests exercise the production wiring.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from prometheus_client import CollectorRegistry

from driftwarden.errors import DriftwardenError
from driftwarden.kafka import DEFAULT_TOPIC_PREFIX, KafkaSecurity
from driftwarden.schema import LineageEvent
from retrain_trigger.kube import KubeJobs, api_client
from retrain_trigger.lineage import LineageLog, lineage_topic
from retrain_trigger.policy import load_policies
from retrain_trigger.server import DEFAULT_MAX_BODY_BYTES, TokenFile, create_app
from retrain_trigger.service import JobStore, Trigger

__all__ = ["JobBackend", "TriggerService", "TriggerSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriggerSettings:
    """Everything `driftwarden trigger run` is configured with (flags / DRIFTWARDEN_* env)."""

    policies: Path  # folder of retrain policy files, one model each
    token_file: Path  # bearer token Alertmanager sends (a mounted Secret); re-read on change
    namespaces: tuple[str, ...] = ("default",)  # the only namespaces the trigger touches
    kubeconfig: Path | None = None  # None: the pod's service account (in-cluster)
    host: str = "0.0.0.0"
    port: int = 8080  # 0 picks a free port (tests)
    bootstrap: str | None = "127.0.0.1:9092"  # Kafka for lineage; None: no lineage
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)  # TLS/SASL for lineage
    topic_prefix: str = DEFAULT_TOPIC_PREFIX  # lineage goes to <prefix>.lineage
    lineage_partitions: int = 3  # used only when the trigger creates the topic
    max_in_flight: int = 4  # global cap on running retrains (decision over_capacity)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # larger webhook bodies get 413
    watch_timeout_s: int = 60  # each Job watch is renewed (and re-listed) this often
    emit_events: bool = True  # Kubernetes Events on the model's Deployment

    def __post_init__(self) -> None:
        if not self.namespaces:
            raise DriftwardenError("--namespaces: at least one namespace")
        if not 0 <= self.port <= 65535:
            raise DriftwardenError(f"--port: {self.port} is not a TCP port")
        if self.max_in_flight < 1:
            raise DriftwardenError("--max-in-flight: must be at least 1")


class JobBackend(JobStore, Protocol):
    """Where Jobs run: the trigger's `JobStore` plus the watch that reports their changes.
    `KubeJobs` (a cluster) is the production one; the demo injects a local executor."""

    def watch_jobs(
        self,
        namespace: str,
        on_job: Callable[[Any], None],
        stop: threading.Event,
        *,
        timeout_s: int = 60,
        on_listed: Callable[[str, list[Any]], None] | None = None,
    ) -> None: ...


@dataclass
class TriggerService:
    settings: TriggerSettings
    clock: Callable[[], float] = time.time
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    jobs: JobBackend | None = None  # None: Kubernetes, from settings.kubeconfig

    def __post_init__(self) -> None:
        s = self.settings
        self.policies = load_policies(s.policies, namespaces=frozenset(s.namespaces))
        self.token = TokenFile(s.token_file)
        self._api = api_client(s.kubeconfig) if self.jobs is None else None
        self.kube: JobBackend = self.jobs or KubeJobs(self._api, s.namespaces)
        self.lineage: LineageLog | None = None
        history: Callable[[str], list[LineageEvent]] | None = None
        if s.bootstrap:
            self.lineage = LineageLog(
                s.bootstrap,
                lineage_topic(s.topic_prefix),
                partitions=s.lineage_partitions,
                security=s.kafka_security,
            )
            history = self.lineage.history
        self.trigger = Trigger(
            self.policies,
            self.kube,
            self.lineage if self.lineage is not None else _NoLineage(),
            self.registry,
            clock=self.clock,
            max_in_flight=s.max_in_flight,
            emit_events=s.emit_events,
            # a policy with `data.source: kafka` has the trainer export from this Kafka
            job_env=(
                {"DRIFTWARDEN_BOOTSTRAP": s.bootstrap, "DRIFTWARDEN_TOPIC_PREFIX": s.topic_prefix}
                if s.bootstrap
                else None
            ),
        )
        self.app = create_app(
            self.trigger,
            self.token,
            self.registry,
            history=history,
            max_body_bytes=s.max_body_bytes,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: uvicorn.Server | None = None
        self.port = s.port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        return f"http://{host}:{self.port}"

    def _start_background(self) -> None:
        if self.lineage is not None:
            self.lineage.ensure_topic()
        for ns in self.settings.namespaces:
            t = threading.Thread(
                target=self.kube.watch_jobs,
                args=(ns, self.trigger.on_job, self._stop),
                kwargs={
                    "timeout_s": self.settings.watch_timeout_s,
                    "on_listed": self.trigger.forget_missing,
                },
                name=f"job-watch-{ns}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        log.info(
            "retrain trigger: %d polic(ies) %s, namespaces %s",
            len(self.policies),
            sorted(self.policies),
            list(self.settings.namespaces),
        )

    def _server_for(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
        )
        return uvicorn.Server(config)

    def start(self, timeout: float = 15.0) -> TriggerService:
        """Start everything in background threads (tests, benchmarks); returns when serving."""
        self._start_background()
        self._server = self._server_for()
        t = threading.Thread(target=self._server.run, name="trigger-http", daemon=True)
        t.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not t.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise DriftwardenError(
                    f"the trigger's HTTP server did not start on {self.settings.host}:{self.settings.port}"
                )
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._threads.append(t)
        return self

    def serve_forever(self) -> None:
        """Run in the foreground until SIGTERM/SIGINT (uvicorn handles them), then drain."""
        self._start_background()
        self._server = self._server_for()
        try:
            self._server.run()
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        for t in self._threads:
            t.join(timeout=2.0)  # a watcher blocked in a watch is a daemon thread; let it go
        self._threads.clear()
        if self.lineage is not None:
            self.lineage.close()
        if self._api is not None:
            self._api.close()
            # ApiClient.close() leaves urllib3's pooled sockets open; close them too.
            self._api.rest_client.pool_manager.clear()

    def __enter__(self) -> TriggerService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _NoLineage:
    def append(self, event: LineageEvent) -> None:
        log.debug(
            "lineage (not sent, no --bootstrap): %s %s %s", event.model, event.step, event.ref
        )
