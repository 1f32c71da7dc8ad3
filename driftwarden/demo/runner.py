"""`driftwarden demo`: model server, collector, Kafka, detectors, Prometheus with the real
rules, and Alertmanager delivering the drift alert to a local listener, on one machine.

Every process is a real one started here and stopped here (the kernel kills them too if
this process dies). Nothing is mocked; the rules are the generated production rules with
short `for:` durations so the alert arrives within a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from driftwarden.demo.data import MODEL, VERSION, reference_frame, spec_document
from driftwarden.demo.traffic import TrafficPlan, TrafficStats, run_traffic
from driftwarden.demo.view import Snapshot, snapshot_from_prometheus
from driftwarden.kafka import Topics
from driftwarden.services.alertmanager import AlertmanagerServer, render_alertmanager_config
from driftwarden.services.kafka import KafkaBroker
from driftwarden.services.ports import free_port, port_is_open
from driftwarden.services.process import ManagedProcess
from driftwarden.services.prometheus import PrometheusServer, render_prometheus_config
from driftwarden.services.webhook import WebhookListener

ALERT = "DriftwardenDatasetDrift"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float = 120.0  # stop after this long (Ctrl-C stops earlier)
    rate: float = 100.0  # requests per second
    drift_after_s: float = 30.0  # drift starts this long after traffic starts
    window_rows: int = 500  # rows per detector window
    alert_for: str = "10s"  # `for:` of every alert rule in the demo
    stop_on_alert: bool = False  # end as soon as the drift alert arrived (CI's short mode)
    live: bool = True  # rich live view (off: one progress line every few seconds)
    keep: bool = False  # keep the work folder (logs, configs) for inspection
    workdir: Path | None = None


@dataclass
class DemoResult:
    requests_sent: int
    requests_ok: int
    labels_sent: int
    first_drifted_at: float | None
    alert_received_at: float | None
    alert: dict | None
    workdir: Path
    processes: list[str] = field(default_factory=list)

    @property
    def seconds_to_alert(self) -> float | None:
        if self.first_drifted_at is None or self.alert_received_at is None:
            return None
        return self.alert_received_at - self.first_drifted_at


def _drift_alert(listener: WebhookListener) -> dict | None:
    for payload in listener.received:
        for alert in payload.get("alerts", []):
            labels = alert.get("labels", {})
            if alert.get("status") == "firing" and labels.get("alertname") == ALERT:
                return alert
    return None


def _rule_files(workdir: Path, alert_for: str) -> list[Path]:
    from alerts.config import load_config
    from alerts.rules import render_rule_files

    rules_dir = workdir / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_rule_files(load_config().with_for(alert_for)).items():
        path = rules_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _job(name: str, port: int) -> dict[str, object]:
    return {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "driftwarden", *args]


class Demo:
    """Owns every process of one demo run; `close()` stops them all."""

    def __init__(self, options: DemoOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.workdir = options.workdir or Path(tempfile.mkdtemp(prefix="driftwarden-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._servers: list[object] = []
        self.listener: WebhookListener | None = None
        self.prometheus: PrometheusServer | None = None
        self.ports: dict[str, int] = {}

    # --- start -----------------------------------------------------------------------
    def start(self) -> None:
        w = self.workdir
        o = self.options
        self.say("writing reference data (20,000 rows) and the model's monitoring spec")
        (w / "specs").mkdir(exist_ok=True)
        reference_frame().to_parquet(w / "reference.parquet")
        spec_path = w / "specs" / f"{MODEL}.yaml"
        spec_path.write_text(yaml.safe_dump(spec_document("../reference.parquet", o.window_rows)))

        self.listener = WebhookListener()
        self._servers.append(self.listener)
        self.say(f"alert receiver listening on {self.listener.url}")

        kafka = KafkaBroker(w / "kafka")
        self._servers.append(kafka)
        am = AlertmanagerServer(
            w / "alertmanager",
            config_yaml=render_alertmanager_config(
                self.listener.url, group_by=("alertname", "model")
            ),
        )
        self._servers.append(am)
        for name in ("model", "proxy", "admin", "detectors"):
            self.ports[name] = free_port()
        t0 = time.monotonic()
        kafka.start()
        self.say(f"Kafka (KRaft) ready on {kafka.bootstrap}")
        am.start()
        self.say(f"Alertmanager ready on {am.url}")
        rules = _rule_files(w, o.alert_for)
        self.prometheus = PrometheusServer(
            w / "prometheus",
            config_yaml=render_prometheus_config(
                rule_files=rules,
                alertmanager_url=am.url,
                extra_scrape_configs=[
                    _job("driftwarden-collector", self.ports["admin"]),
                    _job("driftwarden-detectors", self.ports["detectors"]),
                ],
            ),
        )
        self._servers.append(self.prometheus)
        self.prometheus.start()
        self.say(f"Prometheus ready on {self.prometheus.url} ({len(rules)} rule files)")
        topics = Topics.with_prefix()
        for topic in (topics.predictions, topics.feedback, topics.deadletter):
            kafka.create_topic(topic, partitions=3)

        self._spawn(
            "model",
            [
                sys.executable,
                "-m",
                "driftwarden.demo.model_server",
                "--port",
                str(self.ports["model"]),
            ],
            self.ports["model"],
        )
        self._spawn(
            "collector",
            _cli(
                "collector",
                "run",
                "--model",
                MODEL,
                "--model-version",
                VERSION,
                "--model-port",
                str(self.ports["model"]),
                "--port",
                str(self.ports["proxy"]),
                "--admin-port",
                str(self.ports["admin"]),
                "--bootstrap",
                kafka.bootstrap,
                "--payload-format",
                "kserve-v1",
                "--spec",
                str(spec_path),
                "--spool-dir",
                str(w / "spool"),
            ),
            self.ports["proxy"],
        )
        self._spawn(
            "detectors",
            _cli(
                "detectors",
                "run",
                "--specs",
                str(w / "specs"),
                "--bootstrap",
                kafka.bootstrap,
                "--metrics-port",
                str(self.ports["detectors"]),
                "--group-id",
                "driftwarden-demo",
            ),
            self.ports["detectors"],
        )
        self.say(f"all components up in {time.monotonic() - t0:.1f}s; work folder {w}")

    def _spawn(self, name: str, argv: list[str], port: int, timeout: float = 60.0) -> None:
        proc = ManagedProcess(name, argv, self.workdir / "logs" / f"{name}.log")
        proc.start()
        self._servers.append(proc)
        proc.wait_ready(lambda: port_is_open("127.0.0.1", port), timeout, f"port {port}")
        self.say(f"{name} ready on 127.0.0.1:{port} (log {proc.log_path})")

    # --- stop ------------------------------------------------------------------------
    def close(self) -> None:
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                if isinstance(server, WebhookListener):
                    server.close()
                else:
                    server.stop()  # type: ignore[attr-defined]
        self._servers.clear()
        if not self.options.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _alert_state(prometheus: PrometheusServer) -> str:
    states = {
        a.get("state") for a in prometheus.alerts() if a.get("labels", {}).get("alertname") == ALERT
    }
    return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"


async def _watch(
    demo: Demo, stats: TrafficStats, stop: asyncio.Event, show: Callable[[Snapshot], None]
) -> DemoResult:
    o = demo.options
    assert demo.prometheus is not None and demo.listener is not None
    prometheus, listener = demo.prometheus, demo.listener
    start = time.monotonic()
    alert_at: float | None = None
    alert: dict | None = None
    snap = Snapshot()
    while time.monotonic() - start < o.duration_s:
        await asyncio.sleep(1.0)
        snap.elapsed_s = time.monotonic() - start
        snap.drifting = stats.first_drifted_at is not None
        snap.requests_sent = stats.sent
        with contextlib.suppress(Exception):  # a slow scrape must not end the demo
            await asyncio.to_thread(snapshot_from_prometheus, prometheus.query, snap)
            snap.alert_state = await asyncio.to_thread(_alert_state, prometheus)
        if alert is None:
            alert = _drift_alert(listener)
            if alert is not None:
                alert_at = time.time()
        snap.alert_delivered = alert is not None
        show(snap)
        if alert is not None and o.stop_on_alert:
            break
    stop.set()
    return DemoResult(
        requests_sent=stats.sent,
        requests_ok=stats.ok,
        labels_sent=stats.labels_sent,
        first_drifted_at=stats.first_drifted_at,
        alert_received_at=alert_at,
        alert=alert,
        workdir=demo.workdir,
    )


async def _run(demo: Demo, show: Callable[[Snapshot], None]) -> DemoResult:
    o = demo.options
    stats = TrafficStats()
    stop = asyncio.Event()
    plan = TrafficPlan(
        proxy_url=f"http://127.0.0.1:{demo.ports['proxy']}",
        feedback_url=f"http://127.0.0.1:{demo.ports['admin']}/v1/feedback",
        rate=o.rate,
        drift_after_s=o.drift_after_s,
    )
    traffic = asyncio.create_task(run_traffic(plan, stats, stop))
    try:
        return await _watch(demo, stats, stop, show)
    finally:
        stop.set()
        await traffic


def run_demo(
    options: DemoOptions, say: Callable[[str], None], show: Callable[[Snapshot], None]
) -> DemoResult:
    """Start everything, run traffic with drift, watch for the alert, stop everything."""
    demo = Demo(options, say)
    try:
        demo.start()
        say(f"sending {options.rate:.0f} req/s; drift starts after {options.drift_after_s:.0f}s")
        return asyncio.run(_run(demo, show))
    finally:
        say("stopping every process")
        demo.close()
