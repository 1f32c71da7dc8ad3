"""Wiring: settings → policies, Kubernetes client, Prometheus, lineage, Controller, /metrics.

`CanaryService(settings)` is what `driftwarden canary run` starts; `dry_run` prints, for
every model with a rollout to start, the plan and every analysis query, and changes nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from driftwarden.errors import DriftwardenError
from driftwarden.kafka import DEFAULT_TOPIC_PREFIX, KafkaSecurity
from driftwarden.schema import LineageEvent
from retrain_trigger.canary import manifests as mf
from retrain_trigger.canary.controller import Controller, plan_lines
from retrain_trigger.canary.kube import KubeRollouts
from retrain_trigger.canary.prometheus import Analyzer, PrometheusClient
from retrain_trigger.canary.routers import make_router
from retrain_trigger.kube import api_client
from retrain_trigger.lineage import LineageLog, lineage_topic
from retrain_trigger.policy import load_policies

__all__ = ["CanaryService", "CanarySettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CanarySettings:
    """Everything `driftwarden canary run` is configured with (flags / DRIFTWARDEN_* env)."""

    policies: Path  # folder of retrain policy files (their `canary:` sections)
    prometheus: str = "http://127.0.0.1:9090"  # where the analysis queries go
    namespaces: tuple[str, ...] = ("default",)  # the only namespaces the controller touches
    kubeconfig: Path | None = None  # None: the pod's service account (in-cluster)
    bootstrap: str | None = "127.0.0.1:9092"  # Kafka for lineage; None: no lineage
    topic_prefix: str = DEFAULT_TOPIC_PREFIX  # lineage goes to <prefix>.lineage
    # TLS / SASL towards Kafka (the --kafka-* flags; PLAINTEXT by default). The principal
    # needs the trigger's lineage ACLs (docs/security.md).
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    metrics_port: int = 9102  # /metrics of the controller (0: a free port)
    resync_s: float = 5.0  # seconds between reconcile passes (analyses follow the policy)
    emit_events: bool = True  # Kubernetes Events on the stable Deployment
    query_timeout_s: float = 10.0  # per Prometheus query

    def __post_init__(self) -> None:
        if not self.namespaces:
            raise DriftwardenError("--namespaces: at least one namespace")
        if self.resync_s <= 0:
            raise DriftwardenError(f"--resync-s: {self.resync_s} must be positive")
        if not 0 <= self.metrics_port <= 65535:
            raise DriftwardenError(f"--metrics-port: {self.metrics_port} is not a TCP port")
        if not self.prometheus.startswith(("http://", "https://")):
            raise DriftwardenError(f"--prometheus: {self.prometheus!r} is not an http(s) URL")


class _NoLineage:
    def append(self, event: LineageEvent) -> None:
        log.debug("lineage (not sent, no --bootstrap): %s %s", event.step, event.ref)


class CanaryService:
    def __init__(self, settings: CanarySettings) -> None:
        s = settings
        self.settings = s
        self.policies = load_policies(s.policies, namespaces=frozenset(s.namespaces))
        self.kube = KubeRollouts(api_client(s.kubeconfig), s.namespaces)
        self.lineage = (
            LineageLog(s.bootstrap, lineage_topic(s.topic_prefix), security=s.kafka_security)
            if s.bootstrap
            else None
        )
        self.registry = CollectorRegistry()
        self.controller = Controller(
            self.policies,
            self.kube,
            Analyzer(PrometheusClient(s.prometheus, timeout_s=s.query_timeout_s)),
            self.lineage if self.lineage is not None else _NoLineage(),
            self.registry,
            emit_events=s.emit_events,
        )
        self.stop_event = threading.Event()

    def dry_run(self) -> list[str]:
        """The plan of every rollout that would start now (reads only)."""
        lines: list[str] = []
        for model, policy in sorted(self.policies.items()):
            stable = self.kube.get_deployment(policy.namespace, policy.deployment_name)
            if stable is None:
                lines.append(
                    f"model {model}: Deployment {policy.namespace}/{policy.deployment_name} not found"
                )
                continue
            found = self.controller.newest_succeeded_job(policy)
            current = mf.stable_version(stable)
            if found is None or found[0] == current:
                lines.append(f"model {model}: nothing to roll out (stable {current or '?'})")
                continue
            mf.check_stable(stable)
            lines += plan_lines(
                policy,
                version=found[0],
                stable_version=current,
                replicas=int((stable.get("spec") or {}).get("replicas", 1)),
                router=make_router(policy.canary.router, self.kube),
            )
        return lines

    def serve_forever(self) -> None:
        """Reconcile until SIGTERM/SIGINT; the pass in progress finishes first."""
        if self.lineage is not None:
            self.lineage.ensure_topic()
        server, thread = start_http_server(self.settings.metrics_port, registry=self.registry)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        log.info(
            "canary controller: models %s, namespaces %s, Prometheus %s",
            sorted(self.policies),
            list(self.settings.namespaces),
            self.settings.prometheus,
        )
        try:
            self.controller.run(self.stop_event, self.settings.resync_s)
        finally:
            server.shutdown()
            thread.join(timeout=5)
            self.close()

    def close(self) -> None:
        if self.lineage is not None:
            self.lineage.close()
        self.kube.close()
