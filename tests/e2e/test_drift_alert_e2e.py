"""End to end: drift injected into a prediction stream -> the detectors service (a real
process consuming real Kafka) -> a real Prometheus scraping it and evaluating the generated
rules -> a real Alertmanager routing the retrain alert, with a bearer token, to a local
webhook. Measures the time from the first drifted event to the webhook call.

The rules are the committed generator's, with every `for:` shortened to 1s and the
tiny-sample minimum lowered to the test's window size (`AlertsConfig.with_for`); the
Alertmanager config is `alertmanager_config(...)` with 1s group timers.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from alerts import alertmanager_config, load_config, render_rule_files
from alerts.rules import dump_yaml
from driftwarden.services.ports import free_port
from driftwarden.services.webhook import Delivery, WebhookListener
from tests.kits.detectors import ServiceProcess, SyntheticModel, produce

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "e2e-retrain-token"
MODEL = "e2e-churn"
WINDOW = 500
DRIFTED = {"num_0", "num_1", "num_2", "cat_0"}


def _first_retrain(listener: WebhookListener, model: str, timeout: float) -> Delivery:
    """The first delivery carrying a firing retrain alert for `model`."""

    def match(d: Delivery) -> bool:
        return any(
            a.get("status") == "firing"
            and a.get("labels", {}).get("driftwarden_action") == "retrain"
            and a.get("labels", {}).get("model") == model
            for a in d.body.get("alerts", [])
        )

    listener.wait_for(timeout=timeout, predicate=lambda _: any(map(match, listener.deliveries)))
    return next(d for d in listener.deliveries if match(d))


def _save_artifacts(prom: Any, drift_at: float, webhook_at: float) -> None:
    """With DRIFTWARDEN_ARTIFACTS=DIR, keep the run's series for docs/alerts.md's picture."""
    out = os.environ.get("DRIFTWARDEN_ARTIFACTS")
    if not out:
        return
    end = time.time() + 1
    series = {
        expr: prom.api(
            "query_range",
            {"query": expr, "start": str(drift_at - 20), "end": str(end), "step": "0.5"},
        )["result"]
        for expr in (
            f'driftwarden_dataset_drift_share{{model="{MODEL}"}}',
            f'driftwarden_window_rows{{model="{MODEL}"}}',
            f'ALERTS{{model="{MODEL}",driftwarden_action="retrain"}}',
        )
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "e2e-drift-alert.json").write_text(
        json.dumps({"drift_at": drift_at, "webhook_at": webhook_at, "series": series})
    )


def _retrain_alerts(prom: Any) -> list[dict[str, Any]]:
    return [a for a in prom.alerts() if a["labels"].get("driftwarden_action") == "retrain"]


def test_drift_reaches_the_retrain_webhook(
    kafka: Any,
    prometheus_factory: Any,
    alertmanager_factory: Any,
    webhook_listener: WebhookListener,
    tmp_path: Path,
    record_property: Any,
) -> None:
    prefix = f"dwe2e-{uuid.uuid4().hex[:8]}"
    model = SyntheticModel(MODEL, n_numerical=4, n_categorical=2, seed=11)
    specs = tmp_path / "specs"
    model.write(specs, reference_rows=5000, window_rows=WINDOW, performance=("accuracy",))

    # The real rules, with 1s holds and a minimum window the test's windows reach.
    cfg = load_config().with_for("1s").model_copy(update={"min_window_rows": WINDOW // 2})
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name, text in render_rule_files(cfg).items():
        (rules_dir / name).write_text(text)

    am = alertmanager_factory(
        config_yaml=dump_yaml(
            alertmanager_config(
                webhook_listener.url,
                token=TOKEN,
                group_wait="1s",
                group_interval="1s",
                repeat_interval="1h",
            )
        )
    )
    for suffix in ("predictions", "feedback", "deadletter"):
        kafka.create_topic(f"{prefix}.{suffix}")
    detectors = ServiceProcess(
        specs=specs,
        bootstrap=kafka.bootstrap,
        metrics_port=free_port(),
        group_id=f"{prefix}-detectors",
        topic_prefix=prefix,
        log_path=tmp_path / "detectors.log",
    )
    detectors.start()
    try:
        detectors.wait_healthy(timeout=90)
        prom = prometheus_factory(
            scrape_targets=[f"127.0.0.1:{detectors.metrics_port}"],
            rule_files=sorted(rules_dir.iterdir()),
            alertmanager_url=am.url,
        )
        topic = f"{prefix}.predictions"
        now = time.time()

        # 1. Two clean windows: evaluated, scraped, and no retrain alert.
        clean = model.stream(2 * WINDOW, seed=21, start_ts=now - 60, rate=100.0)
        produce(kafka.bootstrap, topic, clean.records())
        prom.wait_for(f'driftwarden_windows_total{{model="{MODEL}"}} >= 2', timeout=90)
        prom.wait_for(f'driftwarden:window_rows:sufficient{{model="{MODEL}"}}', timeout=30)
        watch_until = time.monotonic() + 3.0  # 3 rule evaluations on clean data
        while time.monotonic() < watch_until:
            assert not _retrain_alerts(prom), prom.alerts()
            time.sleep(0.5)
        assert not webhook_listener.deliveries

        # 2. Drift: four of six features move; one window of drifted rows.
        drifted = model.stream(
            WINDOW,
            drift_from=0,
            drifted=DRIFTED,
            seed=22,
            start_ts=now - 40,
            rate=100.0,
            id_prefix="drifted",
        )
        t0, t0_wall = time.monotonic(), time.time()
        produce(kafka.bootstrap, topic, drifted.records())
        delivery = _first_retrain(webhook_listener, MODEL, timeout=90)
        seconds = delivery.at - t0
        _save_artifacts(prom, t0_wall, t0_wall + seconds)
        record_property("first_drifted_event_to_webhook_s", round(seconds, 2))
        print(f"\nfirst drifted event -> retrain webhook: {seconds:.2f}s")

        # 3. What the retrain trigger receives.
        assert delivery.headers.get("Authorization") == f"Bearer {TOKEN}"
        body = delivery.body
        assert body["receiver"] == "driftwarden-retrain"
        assert body["groupLabels"] == {"model": MODEL}
        names = {a["labels"]["alertname"] for a in body["alerts"]}
        assert "DriftwardenDatasetDrift" in names, names
        for alert in body["alerts"]:
            assert alert["labels"]["driftwarden_action"] == "retrain"
            assert alert["labels"]["model"] == MODEL
            assert alert["labels"]["severity"] in {"warning", "critical"}
            assert alert["annotations"]["runbook_url"].startswith("docs/alerts.md#")
        share = prom.query(f'driftwarden_dataset_drift_share{{model="{MODEL}"}}')
        assert float(share[0]["value"][1]) >= 0.5
        assert seconds < 60
    finally:
        detectors.stop()
