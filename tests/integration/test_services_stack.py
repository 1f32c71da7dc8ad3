"""Proof for `make services-up` / `make services-down`: `python -m driftwarden.services up`
starts all three detached and writes their addresses; `down` leaves nothing running."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from driftwarden.services.http import http_ok, request_json
from driftwarden.services.process import pid_alive
from driftwarden.services.stack import read_env

pytestmark = pytest.mark.integration


def _services(state_dir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "driftwarden.services", "--dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _query(prometheus_url: str, promql: str) -> list:
    answer = request_json(f"{prometheus_url}/api/v1/query", params={"query": promql})
    return answer["data"]["result"]


def _poll(fetch: Callable[[], list], timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while not (result := fetch()):
        assert time.monotonic() < deadline, "no data before the deadline"
        time.sleep(0.25)
    return result


def test_services_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "services"
    registry = CollectorRegistry()
    Gauge("dw_stack_proof", "proof", registry=registry).set(5)
    exporter, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    pids: list[int] = []
    try:
        done = _services(state, "up")
        assert done.returncode == 0, done.stderr + done.stdout
        env = read_env(state)
        assert set(env) >= {"KAFKA_BOOTSTRAP", "PROMETHEUS_URL", "ALERTMANAGER_URL"}
        assert env["KAFKA_BOOTSTRAP"].startswith("127.0.0.1:")
        pids = [
            int((state / f"{n}.pid").read_text()) for n in ("kafka", "prometheus", "alertmanager")
        ]
        assert all(pid_alive(p) for p in pids)
        timings = json.loads((state / "startup.json").read_text())
        assert set(timings) == {"kafka", "prometheus", "alertmanager", "total"}

        # All three answer; Prometheus knows the Alertmanager.
        meta = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP"]}).list_topics(timeout=10)
        assert meta.brokers
        assert http_ok(f"{env['ALERTMANAGER_URL']}/-/ready")

        # A second `up` is a no-op; `status` sees all three.
        again = _services(state, "up")
        assert again.returncode == 0 and "already running" in again.stdout
        assert _services(state, "status").returncode == 0

        # Targets dropped into PROMETHEUS_TARGETS_DIR are scraped without a restart.
        targets = Path(env["PROMETHEUS_TARGETS_DIR"]) / "proof.json"
        targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{exporter.server_port}"]}]))
        prom = env["PROMETHEUS_URL"]
        assert _poll(lambda: _query(prom, "dw_stack_proof"), timeout=30)[0]["value"][1] == "5"
        active = _poll(
            lambda: request_json(f"{prom}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        )
        assert active[0]["url"].startswith(env["ALERTMANAGER_URL"])
    finally:
        down = _services(state, "down")
        exporter.shutdown()
        exporter.server_close()
        thread.join(timeout=5)
    assert down.returncode == 0, down.stderr
    assert "stopped kafka" in down.stdout
    assert not any(pid_alive(p) for p in pids)
    assert not (state / "env").exists()
    assert _services(state, "status").returncode == 1
    assert "nothing running" in _services(state, "down").stdout
