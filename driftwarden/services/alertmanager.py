"""Alertmanager from Debian's `prometheus-alertmanager` package, on 127.0.0.1, gossip off
(`--cluster.listen-address=`), its own data directory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from driftwarden.services.http import request_json
from driftwarden.services.ports import LOOPBACK
from driftwarden.services.server import HttpServerProcess

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


class AlertmanagerServer(HttpServerProcess):
    """An Alertmanager with its own storage directory on a free loopback port."""

    name = "alertmanager"
    default_binary = BINARY

    def flags(self) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--storage.path={self.data_dir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds now (API v2)."""
        return list(request_json(f"{self.url}/api/v2/alerts") or [])

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Push alerts directly (API v2), as Prometheus would."""
        request_json(f"{self.url}/api/v2/alerts", method="POST", body=alerts)
