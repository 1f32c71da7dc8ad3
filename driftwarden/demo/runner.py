"""`driftwarden demo`: the whole loop on one machine — drift → alert → retraining → canary →
promotion (or rollback).

Real processes, started here and stopped here (the kernel kills them too if this process
dies): Kafka, Prometheus with the generated rules, Alertmanager routing to the retrain
trigger (its FastAPI app, bearer token), the model — a torch model trained by
`retrain_trigger.train`, served by `retrain_trigger.serve` — behind the collector, the
detectors, and in this process the production `TriggerService` and canary `Controller`.
Where a cluster would be, `driftwarden.demo.cluster` runs the Job and the canary locally
behind the same interfaces (module docstring there). With `--kubeconfig` the trigger and the
controller act on a real API server through their production adapters, and the pods run on
a node the demo registers there (`driftwarden.demo.node`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, start_http_server

from driftwarden.demo.baseline import DEFAULT_CACHE, Baseline, prepare_baseline
from driftwarden.demo.cluster import (
    LocalCluster,
    LocalJobs,
    LocalRollouts,
    ProcessRunner,
    SplitRouter,
    TrafficSplit,
)
from driftwarden.demo.data import MODEL, VERSION, spec_document
from driftwarden.demo.kafka import DemoKafka, start_kafka
from driftwarden.demo.node import DemoNode, ServiceBalancer
from driftwarden.demo.node import placement as node_placement
from driftwarden.demo.traffic import TrafficPlan, TrafficStats, run_traffic
from driftwarden.demo.view import Snapshot, snapshot_from_prometheus
from driftwarden.errors import DriftwardenError
from driftwarden.services.alertmanager import AlertmanagerServer
from driftwarden.services.ports import free_port, port_is_open
from driftwarden.services.process import ManagedProcess
from driftwarden.services.prometheus import PrometheusServer, render_prometheus_config

ALERT = "DriftwardenDatasetDrift"


class DemoError(DriftwardenError):
    """A part of the demo could not start (the message names it and where its log is)."""


NAMESPACE = "default"
#: The namespace `--kubeconfig` creates (and deletes at the end unless --keep).
CLUSTER_NAMESPACE = "driftwarden-demo"
#: The image of the demo's containers: their command lines run on this machine.
LOCAL_IMAGE = "driftwarden-demo/local-process"
DETECTORS_GROUP = "driftwarden-demo"
CANARY = f"{MODEL}-canary"


@dataclass(frozen=True, slots=True)
class Profile:
    """Timings of one demo run. `normal` is `make demo`; `fast` is CI's short mode."""

    rate: float  # requests per second
    drift_after_s: float  # drift starts this long after traffic starts
    window_rows: int  # rows per detector window ...
    window_s: float  # ... or this many seconds, whichever comes first
    alert_for: str  # `for:` of every alert rule
    baseline_epochs: int  # v1's training (cached)
    retrain_epochs: int  # the retrain Job's --epochs
    since_s: int  # the retrain Job trains on the last since_s seconds of labelled traffic
    steps: tuple[int, ...]  # canary weights
    check_interval_s: int
    step_deadline_s: int
    min_requests: int  # canary requests per check window before errors/latency count
    min_labelled_rows: int  # rows of the last closed window, each version, before accuracy
    tail_s: float  # traffic kept after the rollout ends (accuracy of the new stable)


PROFILES = {
    "normal": Profile(
        rate=100,
        drift_after_s=30,
        window_rows=500,
        window_s=15,
        alert_for="10s",
        baseline_epochs=30,
        retrain_epochs=40,
        since_s=45,
        steps=(10, 25, 50, 100),
        check_interval_s=10,
        step_deadline_s=120,
        min_requests=50,
        min_labelled_rows=100,
        tail_s=20,
    ),
    "fast": Profile(
        rate=70,
        drift_after_s=15,
        window_rows=500,  # the alert rules' `min_rows`: smaller windows never alert
        window_s=10,
        alert_for="5s",
        baseline_epochs=30,
        retrain_epochs=15,
        since_s=30,
        steps=(50, 100),
        check_interval_s=5,
        step_deadline_s=60,
        min_requests=30,
        min_labelled_rows=50,
        tail_s=4,
    ),
}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float = 480.0  # traffic stops after this long at the latest (Ctrl-C: earlier)
    profile: str = "normal"  # normal | fast
    drift: bool = True  # --no-drift: reference-like traffic only (no alert, no retrain)
    worse_model: bool = False  # corrupt the retrained model: the canary must roll it back
    seed: int = 11
    live: bool = True
    keep: bool = False  # keep the work folder (logs, configs, artifacts)
    workdir: Path | None = None
    cache_dir: Path = DEFAULT_CACHE
    report: Path | None = None  # the HTML report (default: out/demo-report.html)
    secure_kafka: bool = False  # SASL_SSL broker, one SCRAM user with least ACLs per component
    kubeconfig: Path | None = None  # a real API server for the trigger and the controller
    namespace: str = CLUSTER_NAMESPACE  # with kubeconfig: created by the demo, must not exist

    @property
    def timings(self) -> Profile:
        return PROFILES[self.profile]


@dataclass
class Milestones:
    """Wall-clock times (time.time()) of the loop's steps, None until reached."""

    first_drifted: float | None = None
    alert_firing: float | None = None  # Prometheus: the alert fires
    alert_delivered: float | None = None  # the trigger received it
    job_launched: float | None = None
    retrained: float | None = None  # the Job finished
    canary_started: float | None = None
    rollout_finished: float | None = None
    outcome: str | None = None  # promoted | rolled_back
    job: str | None = None
    job_outcome: str | None = None
    new_version: str | None = None


@dataclass
class DemoResult:
    stats: TrafficStats
    milestones: Milestones
    timeline: list[dict[str, Any]]
    lineage: list[dict[str, Any]]
    workdir: Path
    report: Path | None
    events: list[str] = field(default_factory=list)

    def since_drift(self, ts: float | None) -> float | None:
        first = self.milestones.first_drifted
        return None if ts is None or first is None else ts - first

    def drifted_accuracy(self, version: str) -> float | None:
        t = self.stats.accuracy.get((version, True))
        return t.accuracy if t is not None else None


def _rule_files(workdir: Path, alert_for: str) -> list[Path]:
    from alerts.config import load_config
    from alerts.rules import render_rule_files

    rules_dir = workdir / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    config = load_config().with_for(alert_for)
    # With the demo's seconds-long `for:` (production: 15m), one noisy 500-row window of
    # predictions past Evidently's 0.1 Wasserstein distance would alert on undrifted traffic.
    config = config.model_copy(
        update={
            "prediction_drift": config.prediction_drift.model_copy(
                update={"distance_threshold": 0.2}
            )
        }
    )
    paths = []
    for name, text in render_rule_files(config).items():
        path = rules_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _job(name: str, port: int) -> dict[str, object]:
    return {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}


def alertmanager_config(trigger_url: str, token_file: Path) -> str:
    """Every alert to the retrain trigger's webhook, with its bearer token."""
    receiver = {
        "name": "retrain-trigger",
        "webhook_configs": [
            {
                "url": f"{trigger_url}/v1/alertmanager",
                "send_resolved": True,
                "http_config": {
                    "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
                },
            }
        ],
    }
    route = {
        "receiver": "retrain-trigger",
        "group_by": ["alertname", "model"],
        "group_wait": "1s",
        "group_interval": "5s",
        "repeat_interval": "1h",
    }
    return yaml.safe_dump({"route": route, "receivers": [receiver]}, sort_keys=False)


def policy_document(
    p: Profile,
    *,
    spec: Path,
    output: Path,
    seed: int,
    namespace: str = NAMESPACE,
    placement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model's retrain policy, read by the trigger and the canary controller alike
    (`placement`: the nodeSelector and tolerations the Job's pod needs, if any)."""
    pin = placement or {}
    return {
        "model": MODEL,
        "namespace": namespace,
        "deployment": MODEL,
        "trainer": {
            "image": LOCAL_IMAGE,  # the command runs on this machine
            "command": [sys.executable, "-m", "retrain_trigger.train"],
            "args": [
                *("--data", "{data}", "--spec", "{spec}", "--out", "{artifact}"),
                *("--current-artifact", "{current_artifact}", "--model-version", "{version}"),
                *("--seed", str(seed)),
            ],
            "resources": {"gpu": 0, "cpu": "1", "memory": "2Gi"},
            "node_selector": dict(pin.get("nodeSelector") or {}),
            "tolerations": [
                {k: v for k, v in t.items() if k in ("key", "operator", "value", "effect")}
                for t in pin.get("tolerations") or []
            ],
        },
        "data": {"source": "kafka", "since_s": p.since_s},
        "spec": str(spec),
        "output": str(output),
        "epochs": p.retrain_epochs,
        "cooldown_s": 3600,  # one retrain per demo: the drift keeps firing afterwards
        "max_concurrent": 1,
        "backoff_limit": 0,
        "active_deadline_seconds": 600,
        "ttl_seconds_after_finished": 3600,
        "canary": {
            "enabled": True,
            "router": "replicas",
            "steps": list(p.steps),
            "check_interval_s": p.check_interval_s,
            "step_deadline_s": p.step_deadline_s,
            "on_deadline": "rollback",
            "thresholds": {
                "max_error_rate_increase": 0.01,
                # Two servers sharing a busy laptop's cores, p99 of a few hundred
                # requests: noisy; a real regression (a slower model) is still caught.
                "max_p99_latency_ratio": 4.0,
                "performance_metric": "accuracy",
                "performance_tolerance": 0.02,
                "min_labelled_rows": p.min_labelled_rows,
                "min_requests": p.min_requests,
                # After a concept drift the retrained model's predictions rightly move away
                # from v1's: Hellinger canary - stable measured 0.30-0.44 here, so the bound
                # only catches near-disjoint predictions. A collapsed model is caught by the
                # spread check: a constant loses all of v1's spread (1), the retrained
                # models measured here lost about half of it.
                "max_prediction_drift": 0.8,
                "max_prediction_spread_loss": 0.9,
                "max_data_quality_share": 0.05,
            },
        },
    }


def stable_deployment(
    artifact: Path,
    spec: Path,
    bootstrap: str,
    kafka_env: dict[str, str] | None = None,
    *,
    namespace: str = NAMESPACE,
    placement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model's Deployment: the model server and the collector sidecar in one pod
    (`kafka_env`: the collector's DRIFTWARDEN_KAFKA_* variables; `placement`: what pins
    the pods to the demo's node). The containers are command lines run on this machine;
    their image is never pulled."""
    version_env = {
        "name": "DRIFTWARDEN_MODEL_VERSION",
        "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.annotations['driftwarden.io/model-version']"}
        },
    }
    annotations = {
        "driftwarden.io/model-version": VERSION,
        "driftwarden.io/artifact": str(artifact),
    }
    labels = {"app": MODEL, "version": VERSION}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": MODEL,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": MODEL}},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": {
                    **(placement or {}),
                    "containers": [
                        {
                            "name": "model",
                            "image": LOCAL_IMAGE,
                            "command": [sys.executable, "-m", "retrain_trigger.serve"],
                            "args": [
                                *("--artifact", str(artifact), "--name", MODEL),
                                *("--port", "$(MODEL_PORT)", "--log-level", "warning"),
                            ],
                        },
                        {
                            "name": "collector",
                            "image": LOCAL_IMAGE,
                            "command": [sys.executable, "-m", "driftwarden", "collector", "run"],
                            "args": [
                                *("--model", MODEL, "--model-port", "$(MODEL_PORT)"),
                                *("--host", "127.0.0.1", "--port", "$(PROXY_PORT)"),
                                *("--admin-port", "$(ADMIN_PORT)"),
                                *("--bootstrap", bootstrap, "--payload-format", "kserve-v1"),
                                *("--spec", str(spec), "--spool-dir", "$(POD_DIR)/spool"),
                            ],
                            "env": [
                                version_env,
                                *({"name": k, "value": v} for k, v in (kafka_env or {}).items()),
                            ],
                        },
                    ],
                },
            },
        },
    }


class Demo:
    """Owns every process and thread of one demo run; `close()` stops them all."""

    def __init__(self, options: DemoOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.workdir = options.workdir or Path(tempfile.mkdtemp(prefix="driftwarden-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._servers: list[Any] = []
        self.prometheus: PrometheusServer | None = None
        # where the Jobs and pods run: LocalCluster, or DemoNode with --kubeconfig
        self.cluster: Any = None
        self.trigger: Any = None
        self.controller: Any = None
        self.split: Any = (
            ServiceBalancer(MODEL, seed=options.seed)
            if options.kubeconfig
            else TrafficSplit(MODEL, CANARY, seed=options.seed)
        )
        self.api: Any = None  # the Kubernetes client with --kubeconfig
        self.namespace = options.namespace if options.kubeconfig else NAMESPACE
        self._created_namespace = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._metrics_server: Any = None
        self.baseline: Baseline | None = None
        self.ports: dict[str, int] = {}

    # --- start -----------------------------------------------------------------------
    def start(self) -> None:
        w, o, p = self.workdir, self.options, self.options.timings
        t0 = time.monotonic()
        self.baseline = prepare_baseline(
            o.cache_dir.resolve(), epochs=p.baseline_epochs, say=self.say
        )
        b = self.baseline
        acc = f", holdout accuracy {b.holdout_accuracy:.3f}" if b.holdout_accuracy else ""
        self.say(f"model {MODEL} {VERSION}: {b.artifact}{' (cached)' if b.cached else ''}{acc}")
        (w / "specs").mkdir(exist_ok=True)
        spec_path = w / "specs" / f"{MODEL}.yaml"
        spec_path.write_text(
            yaml.safe_dump(spec_document(str(b.reference), p.window_rows, p.window_s))
        )

        broker, kafka = start_kafka(
            w, secure=o.secure_kafka, detectors_group=DETECTORS_GROUP, say=self.say
        )
        self._servers.append(broker)

        runner = ProcessRunner(
            w,
            bootstrap=kafka.bootstrap,
            kafka_env=kafka.env("dataset"),
            spec_path=spec_path,
            after_training=_worsen if o.worse_model else None,
            say=self.say,
        )
        placement = None
        if o.kubeconfig is not None:
            node = self._start_node(o.kubeconfig, runner)
            self.cluster, placement = node, node_placement(node.name)
        else:
            self.cluster = LocalCluster(self.split, runner, namespace=NAMESPACE, say=self.say)
        policies = w / "policies"
        policies.mkdir(exist_ok=True)
        policy = policy_document(
            p,
            spec=spec_path,
            output=w / "artifacts",
            seed=o.seed,
            namespace=self.namespace,
            placement=placement,
        )
        (policies / f"{MODEL}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        token = w / "trigger-token"
        token.write_text(secrets.token_urlsafe(24))
        token.chmod(0o600)
        self._start_trigger(policies, token, kafka)

        am = AlertmanagerServer(
            w / "alertmanager", config_yaml=alertmanager_config(self.trigger.url, token)
        )
        self._servers.append(am)
        am.start()
        self.say(f"Alertmanager ready on {am.url}, routing to the retrain trigger (bearer token)")

        self.ports["detectors"] = free_port()
        self.ports["canary"] = free_port()
        rules = _rule_files(w, p.alert_for)
        self.prometheus = PrometheusServer(
            w / "prometheus",
            config_yaml=render_prometheus_config(
                rule_files=rules,
                alertmanager_url=am.url,
                extra_scrape_configs=[
                    {
                        "job_name": "driftwarden-collector",
                        "file_sd_configs": [
                            {
                                "files": [str(runner.targets_dir / "*.json")],
                                "refresh_interval": "5s",
                            }
                        ],
                    },
                    _job("driftwarden-detectors", self.ports["detectors"]),
                    _job("driftwarden-retrain-trigger", self.trigger.port),
                    _job("driftwarden-canary", self.ports["canary"]),
                ],
            ),
        )
        self._servers.append(self.prometheus)
        self.prometheus.start()
        self.say(f"Prometheus ready on {self.prometheus.url} ({len(rules)} rule files)")

        stable = stable_deployment(
            b.artifact,
            spec_path,
            kafka.bootstrap,
            kafka.env("collector"),
            namespace=self.namespace,
            placement=placement,
        )
        if self.api is not None:
            from kubernetes import client as k8s

            k8s.AppsV1Api(self.api).create_namespaced_deployment(self.namespace, stable)
        else:
            self.cluster.add_deployment(stable)
        self._spawn(
            "detectors",
            [
                *(sys.executable, "-m", "driftwarden", "detectors", "run"),
                *("--specs", str(w / "specs"), "--bootstrap", kafka.bootstrap),
                *("--metrics-port", str(self.ports["detectors"]), "--group-id", DETECTORS_GROUP),
            ],
            self.ports["detectors"],
            env=kafka.env("detectors"),
        )
        self._start_canary_controller(policies, kafka)
        deadline = time.monotonic() + 120
        while not self.split.serves(MODEL):
            if self.cluster.failures:
                raise DemoError(f"{self.cluster.failures[0]} (logs in {w / 'logs'})")
            if time.monotonic() > deadline:
                raise DemoError(f"the {MODEL} pod did not become ready; see {w / 'logs'}")
            time.sleep(0.2)
        self.say(f"all components up in {time.monotonic() - t0:.1f}s; work folder {w}")

    def _start_node(self, kubeconfig: Path, runner: ProcessRunner) -> DemoNode:
        """Connect, create the demo's namespace and register the node its pods run on."""
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        from retrain_trigger.kube import api_client

        self.api = api_client(kubeconfig)
        core = k8s.CoreV1Api(self.api)
        try:
            core.create_namespace({"metadata": {"name": self.namespace}})
        except ApiException as e:
            if e.status == 409:
                raise DemoError(
                    f"--namespace: {self.namespace} already exists; the demo works in a "
                    f"namespace of its own (delete it: kubectl delete namespace {self.namespace})"
                ) from e
            raise DemoError(
                f"--kubeconfig: cannot create namespace {self.namespace}: {e.reason}"
            ) from e
        self._created_namespace = True
        deadline = time.monotonic() + 30
        while True:  # pods are refused until the namespace's default ServiceAccount exists
            try:
                core.read_namespaced_service_account("default", self.namespace)
                break
            except ApiException as e:
                if e.status != 404 or time.monotonic() > deadline:
                    raise DemoError(
                        f"namespace {self.namespace}: no default ServiceAccount ({e.reason})"
                    ) from e
                time.sleep(0.2)
        server = self.api.configuration.host
        self.say(f"Kubernetes API server {server}: namespace {self.namespace} created")
        node = DemoNode(self.api, self.namespace, runner, self.split, say=self.say)
        node.start()
        return node

    def _delete_namespace(self, timeout_s: float = 60.0) -> None:
        """Delete the demo's namespace while the node still confirms its pods' deletion."""
        from kubernetes import client as k8s

        core = k8s.CoreV1Api(self.api)
        with contextlib.suppress(Exception):
            core.delete_namespace(self.namespace)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if not core.list_namespaced_pod(self.namespace).items:
                    return
            except Exception:
                return
            time.sleep(0.5)
        self.say(f"namespace {self.namespace}: pods still terminating after {timeout_s:.0f}s")

    def _start_trigger(self, policies: Path, token: Path, kafka: DemoKafka) -> None:
        from retrain_trigger.runner import TriggerService, TriggerSettings

        assert self.cluster is not None
        settings = TriggerSettings(
            policies=policies,
            token_file=token,
            namespaces=(self.namespace,),
            kubeconfig=self.options.kubeconfig,
            host="127.0.0.1",
            port=0,
            bootstrap=kafka.bootstrap,
            kafka_security=kafka.security("trigger"),
        )
        jobs = None if self.api is not None else LocalJobs(self.cluster)  # None: KubeJobs
        self.trigger = TriggerService(settings, jobs=jobs).start()
        where = f"Jobs in namespace {self.namespace}" if jobs is None else "jobs run locally"
        self.say(f"retrain trigger listening on {self.trigger.url} ({where})")

    def _start_canary_controller(self, policies: Path, kafka: DemoKafka) -> None:
        from retrain_trigger.canary.controller import Controller
        from retrain_trigger.canary.prometheus import Analyzer, PrometheusClient
        from retrain_trigger.lineage import LineageLog, lineage_topic
        from retrain_trigger.policy import load_policies

        assert self.cluster is not None and self.prometheus is not None
        registry = CollectorRegistry()
        lineage = LineageLog(kafka.bootstrap, lineage_topic(), security=kafka.security("canary"))
        self._servers.append(_Closing(lineage))
        if self.api is not None:  # production adapters and routers
            from retrain_trigger.canary.kube import KubeRollouts

            rollouts: Any = KubeRollouts(self.api, [self.namespace])
            routers = None
            how = "router: replicas, behind the pods' Service"
        else:
            rollouts = LocalRollouts(self.cluster)
            routers = {"replicas": SplitRouter(self.split, rollouts)}
            how = "router: the traffic split"
        self.controller = Controller(
            load_policies(policies, namespaces=frozenset({self.namespace})),
            rollouts,
            Analyzer(PrometheusClient(self.prometheus.url, timeout_s=5)),
            lineage,
            registry,
            routers=routers,
        )
        self._metrics_server = start_http_server(
            self.ports["canary"], addr="127.0.0.1", registry=registry
        )
        t = threading.Thread(
            target=self.controller.run, args=(self._stop, 1.0), name="canary", daemon=True
        )
        t.start()
        self._threads.append(t)
        self.say(f"canary controller running ({how})")

    def _spawn(
        self,
        name: str,
        argv: list[str],
        port: int,
        timeout: float = 90.0,
        env: dict[str, str] | None = None,
    ) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        proc = ManagedProcess(name, argv, log, env={**os.environ, **env} if env else None)
        proc.start()
        self._servers.append(proc)
        proc.wait_ready(lambda: port_is_open("127.0.0.1", port), timeout, f"port {port}")
        self.say(f"{name} ready on 127.0.0.1:{port} (log {proc.log_path})")

    def lineage(self) -> list[dict[str, Any]]:
        """The model's lineage as `GET /v1/models/{model}/history` serves it (bearer token)."""
        import json
        import urllib.request

        token = (self.workdir / "trigger-token").read_text().strip()
        req = urllib.request.Request(
            f"{self.trigger.url}/v1/models/{MODEL}/history",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(req, timeout=20) as r:
            data = json.loads(r.read())
        return list(data.get("events") or [])

    # --- stop ------------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        if self._metrics_server is not None:
            server, thread = self._metrics_server
            server.shutdown()
            thread.join(timeout=5)
        if self.trigger is not None:
            with contextlib.suppress(Exception):
                self.trigger.stop()
        if self._created_namespace and not self.options.keep:
            self._delete_namespace()
        if self.cluster is not None:
            self.cluster.close()
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.close()
                self.api.rest_client.pool_manager.clear()
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                server.stop()
        self._servers.clear()
        if not self.options.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


class _Closing:
    """Gives a LineageLog the `stop()` the server list calls."""

    def __init__(self, lineage: Any) -> None:
        self.lineage = lineage

    def stop(self) -> None:
        self.lineage.close()


def _check_text(c: Any) -> str:
    """`prediction pass (0.31 <= 0.5)`: a check's verdict and, once it has one, the judged
    value against its limit."""
    if c.value is None or c.limit is None:
        return f"{c.check} {c.verdict.value}"
    relation = "<=" if c.value <= c.limit else ">"
    return f"{c.check} {c.verdict.value} ({c.value:.3g} {relation} {c.limit:g})"


def _worsen(artifact: Path) -> None:
    """Make a trained model worse on purpose: a constant predictor (the output layer's
    weights zeroed, its bias pinned to the last class). The trainer's gate passed before
    this; only the canary can catch it now, on its prediction-spread check.
    (Negating the layer was tried first: on drifted traffic the inverted model was only
    ~0.03 worse than v1, itself poor there, which is within a tolerance and not a clear
    rollback.)"""
    import torch

    path = artifact / "model.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["head.weight"] = torch.zeros_like(state["head.weight"])
    bias = torch.zeros_like(state["head.bias"])
    bias[-1] = 4.0
    state["head.bias"] = bias
    torch.save(state, path)


def _sample_sum(registry: CollectorRegistry, name: str, **labels: str) -> float:
    total = 0.0
    for family in registry.collect():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def _alert_state(prometheus: PrometheusServer) -> str:
    states = {
        a.get("state") for a in prometheus.alerts() if a.get("labels", {}).get("alertname") == ALERT
    }
    return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"


class Watcher:
    """Reads the loop's state once a second: Prometheus, the trigger, the local Jobs, the
    canary controller; announces each milestone once (`say`) and records the timeline."""

    def __init__(self, demo: Demo, stats: TrafficStats) -> None:
        self.demo = demo
        self.stats = stats
        self.m = Milestones()
        self.timeline: list[dict[str, Any]] = []
        self._said: set[str] = set()
        self._events_seen = 0

    def once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.demo.say(message)

    def poll(self, snap: Snapshot, start: float) -> None:
        d, m, now = self.demo, self.m, time.time()
        assert d.prometheus is not None and d.cluster is not None
        snap.elapsed_s = time.monotonic() - start
        snap.drifting = self.stats.first_drifted_at is not None
        snap.requests_sent = self.stats.sent
        if m.first_drifted is None and self.stats.first_drifted_at is not None:
            m.first_drifted = self.stats.first_drifted_at
            self.once(
                "drift", "drift starts now: inputs move and the outcome's relation to them changes"
            )
        with contextlib.suppress(Exception):  # a slow scrape must not end the demo
            snapshot_from_prometheus(d.prometheus.query, snap)
            snap.alert_state = _alert_state(d.prometheus)
        if snap.alert_state == "firing" and m.alert_firing is None:
            m.alert_firing = now
            self.once("firing", f"alert {ALERT} firing in Prometheus")
        received = _sample_sum(
            d.trigger.registry,
            "driftwarden_alerts_received_total",
            alertname=ALERT,
            status="firing",
        )
        if received and m.alert_delivered is None:
            m.alert_delivered = now
            self.once("delivered", f"alert {ALERT} delivered to the retrain trigger")
        snap.alert_delivered = m.alert_delivered is not None
        for run in list(d.cluster.runs.values()):
            m.job, snap.job = run.name, run.name
            if m.job_launched is None:
                m.job_launched = run.started_at
                self.once(
                    "launched",
                    f"trigger decision: launched; Job {run.name} started (trainer subprocess)",
                )
            snap.job_epoch, snap.job_epochs, snap.job_outcome = run.epoch, run.epochs, run.outcome
            if run.epoch:
                self.once(f"epoch{run.epoch}", f"retraining: epoch {run.epoch}/{run.epochs}")
            if run.finished_at is not None and m.retrained is None:
                m.retrained, m.job_outcome = run.finished_at, run.outcome
                self.once("trained", f"Job {run.name} {run.outcome} (exit {run.exit_code})")
        state = d.controller.states().get(MODEL)
        if state is not None:
            m.new_version = state.version
            snap.canary_version, snap.canary_phase = state.version, state.phase.value
            snap.canary_weight, snap.canary_step = state.canary_weight, state.step
            snap.canary_steps = len(d.options.timings.steps)
            snap.checks = {c.check: c.verdict.value for c in state.checks}
            if m.canary_started is None:
                m.canary_started = state.started_at
            if state.phase.value == "progressing":
                self.once(
                    f"step{state.step}",
                    f"canary {state.version} step {state.step + 1}/{snap.canary_steps}: "
                    f"{state.weight}% of traffic",
                )
            if state.checks:
                verdicts = ", ".join(_check_text(c) for c in state.checks)
                self.once(
                    f"analysis{state.analyses}", f"canary analysis {state.analyses}: {verdicts}"
                )
            if state.phase.terminal and m.rollout_finished is None:
                m.rollout_finished, m.outcome = state.finished_at or now, state.phase.value
                self.once(
                    "finished", f"rollout of {state.version} {state.phase.value}: {state.reason}"
                )
        for e in d.cluster.events[self._events_seen :]:
            self.demo.say(f"event {e.object} {e.reason}: {e.message}")
        self._events_seen = len(d.cluster.events)
        versions = {ep.version for ep in d.split.endpoints().values()} | {
            v for (v, _) in self.stats.accuracy
        }
        second = int(snap.elapsed_s)
        snap.accuracy = {v: self.stats.recent_accuracy(v, second) for v in sorted(versions)}
        snap.served = dict(self.stats.served)
        self.timeline.append(
            {
                "t": round(snap.elapsed_s, 1),
                "drifting": snap.drifting,
                "drift_share": snap.drift_share,
                "alert": snap.alert_state,
                "weight": d.split.canary_weight(),
                "phase": snap.canary_phase,
                "accuracy": {v: a for v, a in snap.accuracy.items() if a is not None},
            }
        )


async def _run(demo: Demo, show: Callable[[Snapshot], None]) -> tuple[Watcher, TrafficStats]:
    o, p = demo.options, demo.options.timings
    stats = TrafficStats()
    stop = asyncio.Event()
    plan = TrafficPlan(rate=p.rate, drift_after_s=p.drift_after_s if o.drift else None, seed=o.seed)
    traffic = asyncio.create_task(run_traffic(plan, demo.split, stats, stop))
    watcher = Watcher(demo, stats)
    start = time.monotonic()
    snap = Snapshot(window_rows=float(p.window_rows))
    done_at: float | None = None
    try:
        while time.monotonic() - start < o.duration_s:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(watcher.poll, snap, start)
            show(snap)
            failed = watcher.m.job_outcome == "failed"
            if done_at is None and (watcher.m.rollout_finished is not None or failed):
                done_at = time.monotonic()
                demo.say(f"the loop is complete; {p.tail_s:.0f}s more traffic, then stop")
            if done_at is not None and time.monotonic() - done_at >= p.tail_s:
                break
    finally:
        stop.set()
        await traffic
    return watcher, stats


def run_demo(
    options: DemoOptions, say: Callable[[str], None], show: Callable[[Snapshot], None]
) -> DemoResult:
    """Start everything, run traffic with drift, follow the loop to its end, stop everything."""
    from driftwarden.demo.report import write_report

    demo = Demo(options, say)
    try:
        demo.start()
        p = options.timings
        say(
            f"sending {p.rate:.0f} req/s; "
            + (f"drift starts after {p.drift_after_s:.0f}s" if options.drift else "no drift")
        )
        watcher, stats = asyncio.run(_run(demo, show))
        lineage: list[dict[str, Any]] = []
        try:
            lineage = demo.lineage()
        except Exception as e:
            say(f"could not read the lineage from the trigger: {e}")
        result = DemoResult(
            stats=stats,
            milestones=watcher.m,
            timeline=watcher.timeline,
            lineage=lineage,
            workdir=demo.workdir,
            report=None,
            events=[f"{e.reason}: {e.message}" for e in demo.cluster.events]
            if demo.cluster
            else [],
        )
        report = options.report or Path("out") / "demo-report.html"
        write_report(result, report)
        result.report = report.resolve()
        return result
    finally:
        say("stopping every process")
        demo.close()
