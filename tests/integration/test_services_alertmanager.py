"""Proof that a rule firing in the real Prometheus reaches the real Alertmanager, which
delivers the webhook (payload version 4) to a local listener; `amtool` is callable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from driftwarden.errors import ServiceError
from driftwarden.services import amtool_check_config, render_alertmanager_config

pytestmark = pytest.mark.integration

ALERT_RULES = """\
groups:
  - name: services-proof-alerts
    rules:
      - alert: DwProofDriftDetected
        expr: dw_proof_drift_detected == 1
        labels:
          severity: critical
          driftwarden_action: retrain
        annotations:
          summary: "drift on {{ $labels.model }}"
"""


@pytest.fixture
def drift_exporter() -> Iterator[tuple[str, Gauge]]:
    registry = CollectorRegistry()
    gauge = Gauge("dw_proof_drift_detected", "proof", ["model"], registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}", gauge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_rule_fires_and_alertmanager_delivers_webhook(
    prometheus_factory, alertmanager_factory, webhook_listener, drift_exporter, tmp_path
) -> None:
    target, gauge = drift_exporter
    gauge.labels(model="fraud").set(1)
    rules = tmp_path / "alerts.yml"
    rules.write_text(ALERT_RULES)

    alertmanager = alertmanager_factory(webhook_url=webhook_listener.url)
    prom = prometheus_factory(
        scrape_targets=[target], rule_files=[rules], alertmanager_url=alertmanager.url
    )

    firing = webhook_listener.wait_for(
        predicate=lambda bodies: any(b["status"] == "firing" for b in bodies), timeout=45
    )
    payload = next(b for b in firing if b["status"] == "firing")
    assert payload["version"] == "4"
    assert payload["receiver"] == "webhook"
    assert payload["groupLabels"] == {"alertname": "DwProofDriftDetected"}
    [alert] = payload["alerts"]
    assert alert["labels"]["model"] == "fraud"
    assert alert["labels"]["driftwarden_action"] == "retrain"
    assert alert["annotations"]["summary"] == "drift on fraud"
    assert alert["generatorURL"].startswith("http://")
    assert [a["labels"]["alertname"] for a in alertmanager.alerts()] == ["DwProofDriftDetected"]
    assert prom.alerts()[0]["state"] == "firing"

    # The drift goes away: the same receiver gets the resolved notification.
    gauge.labels(model="fraud").set(0)
    webhook_listener.wait_for(
        predicate=lambda bodies: any(b["status"] == "resolved" for b in bodies), timeout=60
    )


def test_alertmanager_posted_alert_reaches_webhook(alertmanager_factory, webhook_listener) -> None:
    alertmanager = alertmanager_factory(webhook_url=webhook_listener.url)
    alertmanager.post_alerts([{"labels": {"alertname": "DwDirect", "model": "m"}}])
    [body] = webhook_listener.wait_for(n=1, timeout=20)
    assert body["version"] == "4"
    assert body["commonLabels"] == {"alertname": "DwDirect", "model": "m"}


def test_alertmanager_without_webhook_and_with_custom_config(alertmanager_factory) -> None:
    assert alertmanager_factory().url.startswith("http://127.0.0.1:")
    custom = render_alertmanager_config("http://127.0.0.1:9/hook", group_by=["model"])
    assert alertmanager_factory(config_yaml=custom).alerts() == []


def test_amtool_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(render_alertmanager_config("http://127.0.0.1:9/hook"))
    assert "SUCCESS" in amtool_check_config(good).stdout
    bad = tmp_path / "bad.yml"
    bad.write_text("route: {receiver: missing}\nreceivers: []\n")
    with pytest.raises(ServiceError, match="amtool"):
        amtool_check_config(bad)
