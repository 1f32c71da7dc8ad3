"""Every panel query of every dashboard, evaluated by a real Prometheus that scrapes a real
detectors process (fed with drifted data, bad data and labels through real Kafka) and a
real collector process (proxying a model server), with the generated recording rules
loaded. Template variables are resolved as Grafana does (`label_values` through the
Prometheus API) and substituted; every query must return data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import load_config, render_rule_files
from alerts.contract import substitute
from dashboards import all_dashboards, panel_queries, variable_queries
from driftwarden.services.http import request_json
from driftwarden.services.ports import free_port
from tests.kits.collector import ModelServer
from tests.kits.detectors import ServiceProcess, SyntheticModel, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "dash-churn"
WINDOW = 200
DRIFTED = {"num_0", "num_1", "cat_0"}


def _bad_quality(payload: bytes, i: int) -> bytes:
    """Some rows with a missing value, an out-of-range value, an unseen category and a
    mistyped value, so that every data quality check has failing rows."""
    ev = json.loads(payload)
    f = ev["features"]
    if i % 5 == 0:
        f["num_1"] = None
    if i % 7 == 0:
        f["num_2"] = 1e9
    if i % 6 == 0:
        f["cat_1"] = "never-seen"
    if i % 11 == 0:
        f["num_0"] = "oops"
    return json.dumps(ev).encode()


@pytest.fixture
def collector_process(tmp_path: Path, kafka: Any) -> Iterator[dict[str, Any]]:
    """`driftwarden collector run` in front of the trivial model server."""
    prefix = f"dwdash-{uuid.uuid4().hex[:8]}"
    model = SyntheticModel(MODEL, n_numerical=3, n_categorical=2, seed=5)
    specs = tmp_path / "specs"
    spec_path = model.write(
        specs,
        reference_rows=2000,
        window_rows=WINDOW,
        performance=("accuracy", "roc_auc", "log_loss"),
        multivariate=True,
    )
    config = tmp_path / "collector.yaml"
    config.write_text(yaml.safe_dump({"topic_prefix": prefix}))
    port, admin = free_port(), free_port()
    with ModelServer() as upstream:
        log = (tmp_path / "collector.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "driftwarden",
                "collector",
                "run",
                "--model",
                MODEL,
                "--model-version",
                "v1",
                "--model-port",
                str(upstream.port),
                "--port",
                str(port),
                "--admin-port",
                str(admin),
                "--host",
                "127.0.0.1",
                "--bootstrap",
                kafka.bootstrap,
                "--payload-format",
                "kserve-v1",
                "--spec",
                str(spec_path),
                "--config",
                str(config),
                "--spool-dir",
                str(tmp_path / "spool"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield {
                "prefix": prefix,
                "model": model,
                "specs": specs,
                "port": port,
                "admin": admin,
                "proc": proc,
                "log": tmp_path / "collector.log",
            }
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"collector exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout}s: {log.read_text()[-2000:]}")


def _send_requests(port: int, model: SyntheticModel, n: int) -> None:
    rows = model.rows(n, seed=99)
    for i in range(n):
        row = {f: rows[f].iloc[i] for f in model.features}
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict",
            data=json.dumps({"instances": [row]}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200


def _label_values(prom_url: str, selector: str, label: str) -> list[str]:
    answer = request_json(f"{prom_url}/api/v1/label/{label}/values", params={"match[]": selector})
    return list(answer["data"])


def test_every_panel_query_returns_data(
    kafka: Any, prometheus_factory: Any, collector_process: dict[str, Any], tmp_path: Path
) -> None:
    t_start = time.monotonic()
    c = collector_process
    model: SyntheticModel = c["model"]
    prefix = c["prefix"]

    # Rules as committed, with short holds and ranges so that recorded series (floor,
    # ceiling, baseline, persistence) exist within seconds.
    cfg = load_config().with_for("1s")
    cfg = cfg.model_copy(
        update={
            "min_window_rows": 100,
            "feature_drift": cfg.feature_drift.model_copy(update={"range": "1m"}),
            "performance": cfg.performance.model_copy(update={"ceilings": {"log_loss": 5.0}}),
            "performance_drop": cfg.performance_drop.model_copy(
                update={"baseline_range": "5m", "baseline_offset": "2s", "baseline_interval": "1s"}
            ),
        }
    )
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name, text in render_rule_files(cfg).items():
        (rules_dir / name).write_text(text)

    # The detectors subscribe at start; topics created later would only be seen after a
    # metadata refresh (minutes), so create them first.
    for suffix in ("predictions", "feedback", "deadletter"):
        kafka.create_topic(f"{prefix}.{suffix}")
    detectors = ServiceProcess(
        specs=c["specs"],
        bootstrap=kafka.bootstrap,
        metrics_port=free_port(),
        group_id=f"{prefix}-detectors",
        topic_prefix=prefix,
        log_path=tmp_path / "detectors.log",
    )
    detectors.start()
    try:
        detectors.wait_healthy(timeout=90)
        _wait_http(f"http://127.0.0.1:{c['admin']}/healthz", c["proc"], c["log"], 60)
        prom = prometheus_factory(
            scrape_targets=[f"127.0.0.1:{detectors.metrics_port}", f"127.0.0.1:{c['admin']}"],
            rule_files=sorted(rules_dir.iterdir()),
        )

        # Traffic through the collector (the collector's own metrics, events to Kafka) ...
        _send_requests(c["port"], model, 150)
        # ... and a drifted stream with bad rows, labels and undecodable records.
        now = time.time()
        stream = model.stream(
            6 * WINDOW, drift_from=2 * WINDOW, drifted=DRIFTED, seed=7, start_ts=now - 120
        )
        records = [(k, _bad_quality(v, i)) for i, (k, v) in enumerate(stream.records())]
        produce(kafka.bootstrap, f"{prefix}.predictions", records)
        produce(kafka.bootstrap, f"{prefix}.feedback", stream.feedback_records(delay_s=1.0))
        produce(
            kafka.bootstrap,
            f"{prefix}.predictions",
            [(MODEL.encode(), b"{not json"), (MODEL.encode(), b'{"schema": "nope"}')],
        )
        prom.wait_for(f'driftwarden_model_performance{{model="{MODEL}"}}', timeout=120)
        prom.wait_for(f'driftwarden:model_performance:baseline{{model="{MODEL}"}}', timeout=60)

        print(f"\nsetup done after {time.monotonic() - t_start:.1f}s")
        deadline = time.monotonic() + 60
        missing: list[str] = []
        for uid, doc in all_dashboards().items():
            # Resolve the template variables the way Grafana does, in order.
            values: dict[str, str] = {}
            for var in variable_queries(doc):
                selector = substitute(var.selector, values)
                found = _label_values(prom.url, selector, var.label)
                assert found, f"{uid}: variable {var.name} ({selector}) has no values"
                if var.name == "feature":
                    # 'All' (the variable's allValue): a single numerical feature has, by
                    # design, no unseen-category series.
                    assert "num_1" in found and "cat_1" in found, found
                    values[var.name] = ".*"
                    continue
                pick = {"model": MODEL, "version": "v1"}[var.name]
                assert pick in found, f"{uid}: {var.name}={pick} not in {found}"
                values[var.name] = pick
            for q in panel_queries(doc):
                expr = substitute(q.expr, values)
                while True:
                    if prom.query(expr):
                        break
                    if time.monotonic() > deadline:
                        missing.append(f"{uid} / {q.panel} / {q.ref_id}: {expr}")
                        break
                    time.sleep(0.5)
        print(f"all panel queries answered after {time.monotonic() - t_start:.1f}s")
        assert not missing, "queries without data:\n" + "\n".join(missing)
    finally:
        detectors.stop()
