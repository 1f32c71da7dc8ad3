"""Proof that the Prometheus fixture runs the real server: it scrapes a tiny exporter,
answers PromQL over its HTTP API, and `promtool` is callable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from driftwarden.errors import ServiceError
from driftwarden.services import (
    PrometheusServer,
    promtool_check_config,
    promtool_check_rules,
    promtool_test_rules,
    render_prometheus_config,
)

pytestmark = pytest.mark.integration

RULES = """\
groups:
  - name: services-proof
    rules:
      - record: job:dw_proof_events:rate1m
        expr: sum by (job) (rate(dw_proof_events_total[1m]))
      - alert: DwProofGaugeHigh
        expr: dw_proof_gauge > 10
        for: 1m
        labels:
          severity: warning
        annotations:
          summary: "gauge is {{ $value }}"
"""

RULE_TESTS = """\
rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'dw_proof_gauge{job="x"}'
        values: '1 20 20 20'
    alert_rule_test:
      - eval_time: 1m
        alertname: DwProofGaugeHigh
        exp_alerts: []
      - eval_time: 3m
        alertname: DwProofGaugeHigh
        exp_alerts:
          - exp_labels: {severity: warning, job: x}
            exp_annotations: {summary: "gauge is 20"}
"""


class Exporter:
    """A prometheus_client registry served on a free loopback port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauge = Gauge("dw_proof_gauge", "proof gauge", ["model"], registry=self.registry)
        self.events = Counter("dw_proof_events", "proof events", registry=self.registry)
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    exp = Exporter()
    try:
        yield exp
    finally:
        exp.close()


def test_prometheus_scrapes_exporter_and_answers_promql(prometheus_factory, exporter) -> None:
    exporter.gauge.labels(model="fraud").set(42)
    exporter.events.inc(7)
    prom = prometheus_factory(scrape_targets=[exporter.target])
    assert prom.url.startswith("http://127.0.0.1:")

    up = prom.wait_for('up{job="driftwarden"} == 1', timeout=20)
    assert up[0]["metric"]["instance"] == exporter.target

    result = prom.wait_for('dw_proof_gauge{model="fraud"}', timeout=20)
    assert float(result[0]["value"][1]) == 42.0

    exporter.gauge.labels(model="fraud").set(3)
    changed = prom.wait_for(
        'dw_proof_gauge{model="fraud"}',
        predicate=lambda r: float(r[0]["value"][1]) == 3.0,
        timeout=20,
    )
    assert changed[0]["metric"]["job"] == "driftwarden"
    assert prom.query("vector(1) + 1")[0]["value"][1] == "2"
    assert [t["health"] for t in prom.targets()] == ["up"]


def test_prometheus_loads_rules_and_reports_bad_queries(prometheus_factory, tmp_path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    prom = prometheus_factory(rule_files=[rules])
    groups = prom.rules()
    assert [g["name"] for g in groups] == ["services-proof"]
    assert {r["name"] for r in groups[0]["rules"]} == {
        "job:dw_proof_events:rate1m",
        "DwProofGaugeHigh",
    }
    with pytest.raises(ServiceError, match="HTTP 400"):
        prom.query("sum(")
    with pytest.raises(ServiceError, match="did not return matching data"):
        prom.wait_for("absent_metric_for_sure", timeout=0.5)


def test_promtool_test_rules_passes_and_fails(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "rules_test.yml").write_text(RULE_TESTS)
    promtool_check_rules(tmp_path / "rules.yml")
    done = promtool_test_rules(tmp_path / "rules_test.yml")
    assert "SUCCESS" in done.stdout

    (tmp_path / "wrong_test.yml").write_text(RULE_TESTS.replace("gauge is 20", "gauge is 21"))
    with pytest.raises(ServiceError, match="FAILED"):
        promtool_test_rules(tmp_path / "wrong_test.yml")


def test_rendered_config_passes_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        render_prometheus_config(
            scrape_targets=["127.0.0.1:9"],
            rule_files=[rules],
            alertmanager_url="http://127.0.0.1:9093",
            file_sd_files=[tmp_path / "targets" / "*.json"],
        )
    )
    promtool_check_config(config)


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    server = PrometheusServer(
        tmp_path / "p", config_yaml=render_prometheus_config(), binary="no-such-prometheus"
    )
    with pytest.raises(ServiceError, match=r"not found on PATH.*make services-install"):
        server.start()


def test_failed_start_reports_the_log_tail(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path / "p", config_yaml="global: {scrape_interval: nonsense}\n")
    with pytest.raises(ServiceError, match=r"exited with code \d+(.|\n)*last lines(.|\n)*nonsense"):
        server.start(timeout=20)
    assert not server.running()
