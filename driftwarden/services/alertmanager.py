"""Alertmanager from Debian's `prometheus-alertmanager` package, on 127.0.0.1, gossip off
(`--cluster.listen-address=`), its own data directory."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from driftwarden.services.http import http_ok, request_json
from driftwarden.services.ports import LOOPBACK, free_port
from driftwarden.services.process import ManagedProcess, require_binary

BINARY = "prometheus-alertmanager"
WEBHOOK_RECEIVER = "webhook"
NULL_RECEIVER = "null"

# --- pure configuration ------------------------------------------------------------------


def render_alertmanager_config(
    webhook_url: str | None = None,
    *,
    group_by: Sequence[str] = ("alertname",),
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    send_resolved: bool = True,
) -> str:
    """alertmanager.yml routing every alert to `webhook_url` (or to a receiver that
    drops them when None), with short group_wait/group_interval for tests."""
    receiver: dict[str, Any] = {"name": NULL_RECEIVER}
    if webhook_url:
        receiver = {
            "name": WEBHOOK_RECEIVER,
            "webhook_configs": [{"url": webhook_url, "send_resolved": send_resolved}],
        }
    config = {
        "route": {
            "receiver": receiver["name"],
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [receiver],
    }
    return yaml.safe_dump(config, sort_keys=False)


# --- the server process ------------------------------------------------------------------


class AlertmanagerServer:
    """An Alertmanager with its own storage directory on a free loopback port."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        config_yaml: str,
        port: int | None = None,
        binary: str = BINARY,
        detach: bool = False,
        start_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.config_yaml = config_yaml
        self.port = port or free_port()
        self.binary = binary
        self.detach = detach
        self.start_timeout = start_timeout
        self.config_path = self.data_dir / "alertmanager.yml"
        self.log_path = self.data_dir / "alertmanager.log"
        self.startup_seconds: float | None = None
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def launch(self) -> None:
        binary = require_binary(self.binary)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_yaml)
        self._t0 = time.monotonic()
        self._process = ManagedProcess(
            f"alertmanager {self.url}",
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.path={self.data_dir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--cluster.listen-address=",
                "--log.level=info",
            ],
            self.log_path,
            detach=self.detach,
        )
        self._process.start()

    def wait_ready(self, timeout: float | None = None) -> float:
        assert self._process is not None, "launch() first"
        self._process.wait_ready(
            lambda: http_ok(f"{self.url}/-/ready"), timeout or self.start_timeout, "GET /-/ready"
        )
        self.startup_seconds = time.monotonic() - self._t0
        return self.startup_seconds

    def start(self, timeout: float | None = None) -> AlertmanagerServer:
        try:
            self.launch()
            self.wait_ready(timeout)
        except BaseException:
            if self._process is not None:
                self._process.kill()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is not None:
            self._process.stop(timeout)

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds now (API v2)."""
        return list(request_json(f"{self.url}/api/v2/alerts") or [])

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Push alerts directly (API v2), as Prometheus would."""
        request_json(f"{self.url}/api/v2/alerts", method="POST", body=alerts)

    def __repr__(self) -> str:
        return f"AlertmanagerServer(url={self.url!r}, data_dir={str(self.data_dir)!r})"
