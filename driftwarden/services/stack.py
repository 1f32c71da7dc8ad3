"""All three services together, detached, for `make services-up` / `make demo` / `make bench`.

State lives in one folder (default `.services/`):

    env                   KAFKA_BOOTSTRAP=…, PROMETHEUS_URL=…, ALERTMANAGER_URL=… (+ folders)
    <name>.pid            one PID per service; `down` stops exactly these
    startup.json          measured start-up seconds per service
    kafka/ prometheus/ alertmanager/   data, generated config and <name>.log
    prometheus/targets/*.json          file_sd target files, picked up within seconds
    prometheus/rules/*.yml             rule files, loaded at start and on POST /-/reload
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from driftwarden.services.alertmanager import AlertmanagerServer, render_alertmanager_config
from driftwarden.services.kafka import DEFAULT_JVM_OPTS, KafkaBroker
from driftwarden.services.process import pid_alive, stop_pid
from driftwarden.services.prometheus import PrometheusServer, render_prometheus_config

SERVICES = ("kafka", "prometheus", "alertmanager")


@dataclass(frozen=True)
class StackOptions:
    """What `services up` starts."""

    #: Extra Prometheus scrape targets ("host:port"), job "driftwarden".
    scrape_targets: Sequence[str] = ()
    #: Extra rule files (besides prometheus/rules/*.yml).
    rule_files: Sequence[Path] = ()
    #: Where Alertmanager sends every alert; None drops them.
    webhook_url: str | None = None
    #: Scrape and rule-evaluation period; short so the demo reacts within seconds.
    scrape_interval: str = "5s"
    evaluation_interval: str = "5s"
    #: Deadline for all three to become ready, seconds.
    timeout: float = 120.0
    kafka_jvm_opts: Sequence[str] = field(default=DEFAULT_JVM_OPTS)


def env_lines(kafka: str, prometheus: str, alertmanager: str, state_dir: Path) -> list[str]:
    """Contents of the `env` file (pure)."""
    return [
        f"KAFKA_BOOTSTRAP={kafka}",
        f"PROMETHEUS_URL={prometheus}",
        f"ALERTMANAGER_URL={alertmanager}",
        f"PROMETHEUS_TARGETS_DIR={state_dir / 'prometheus' / 'targets'}",
        f"PROMETHEUS_RULES_DIR={state_dir / 'prometheus' / 'rules'}",
    ]


def read_env(state_dir: Path) -> dict[str, str]:
    """The `env` file as a dict ({} when absent)."""
    path = state_dir / "env"
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def _pid(state_dir: Path, name: str) -> int | None:
    try:
        return int((state_dir / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def status(state_dir: Path) -> dict[str, int | None]:
    """PID of each service that is running, None for the others."""
    result: dict[str, int | None] = {}
    for name in SERVICES:
        pid = _pid(state_dir, name)
        result[name] = pid if pid is not None and pid_alive(pid) else None
    return result


def down(state_dir: Path, log: Callable[[str], None] = print) -> list[str]:
    """Stop every service recorded under `state_dir` by PID; remove PID and env files.
    Returns the names of the services that were stopped."""
    state_dir = state_dir.resolve()
    stopped = []
    for name in SERVICES:
        pid = _pid(state_dir, name)
        if pid is not None and stop_pid(pid, must_contain=str(state_dir / name), timeout=15):
            log(f"services: stopped {name} (pid {pid})")
            stopped.append(name)
        (state_dir / f"{name}.pid").unlink(missing_ok=True)
    (state_dir / "env").unlink(missing_ok=True)
    return stopped


def up(
    state_dir: Path, options: StackOptions = StackOptions(), log: Callable[[str], None] = print
) -> dict[str, str]:
    """Start Kafka, Prometheus (sending alerts to) Alertmanager, detached; write `env`.

    Idempotent: when all three are already running, returns their addresses as they are.
    A partial or stale set is stopped and started afresh (with empty data).
    """
    state_dir = state_dir.resolve()
    running = status(state_dir)
    if all(running.values()) and (state_dir / "env").exists():
        log(f"services: already running ({', '.join(f'{k} pid {v}' for k, v in running.items())})")
        return read_env(state_dir)
    down(state_dir, log)
    for name in SERVICES:
        shutil.rmtree(state_dir / name, ignore_errors=True)
    (state_dir / "prometheus" / "targets").mkdir(parents=True)
    (state_dir / "prometheus" / "rules").mkdir(parents=True)

    t0 = time.monotonic()
    alertmanager = AlertmanagerServer(
        state_dir / "alertmanager",
        config_yaml=render_alertmanager_config(options.webhook_url),
        detach=True,
    )
    prometheus = PrometheusServer(
        state_dir / "prometheus",
        config_yaml=render_prometheus_config(
            scrape_targets=options.scrape_targets,
            rule_files=[state_dir / "prometheus" / "rules" / "*.yml", *options.rule_files],
            alertmanager_url=alertmanager.url,
            scrape_interval=options.scrape_interval,
            evaluation_interval=options.evaluation_interval,
            file_sd_files=[state_dir / "prometheus" / "targets" / "*.json"],
        ),
        detach=True,
    )
    kafka = KafkaBroker(state_dir / "kafka", jvm_opts=options.kafka_jvm_opts, detach=True)
    services = {"kafka": kafka, "prometheus": prometheus, "alertmanager": alertmanager}
    try:
        # Launch all (Kafka first: its storage format runs before its JVM starts), then
        # wait for all, quickest first: start-up overlaps, total ~ the slowest (Kafka).
        for name, service in services.items():
            service.launch()
            (state_dir / f"{name}.pid").write_text(f"{service.pid}\n")
        deadline = t0 + options.timeout
        for service in (alertmanager, prometheus, kafka):
            service.wait_ready(max(1.0, deadline - time.monotonic()))
    except BaseException:
        for service in services.values():
            service.stop(timeout=5)
        down(state_dir, lambda _msg: None)
        raise
    total = time.monotonic() - t0
    timings = {name: round(s.startup_seconds or 0.0, 2) for name, s in services.items()}
    timings["total"] = round(total, 2)
    (state_dir / "startup.json").write_text(json.dumps(timings, indent=2) + "\n")
    lines = env_lines(kafka.bootstrap, prometheus.url, alertmanager.url, state_dir)
    (state_dir / "env").write_text("\n".join(lines) + "\n")
    for name, service in services.items():
        log(
            f"services: {name} ready in {service.startup_seconds:.1f}s (pid {service.pid}, log {service.log_path})"
        )
    log(f"services: all up in {total:.1f}s; addresses in {state_dir / 'env'}")
    return read_env(state_dir)


__all__ = ["SERVICES", "StackOptions", "down", "env_lines", "read_env", "status", "up"]
