"""Every panel query of every dashboard, evaluated by a real Prometheus.

The four monitoring dashboards: Prometheus scrapes a real detectors process (fed with
drifted data, bad data and labels through real Kafka) and a real collector process
(proxying a model server), with the generated recording rules loaded. The retraining
dashboard: Prometheus scrapes the real retrain trigger and the real canary controller's
registry, driven through real decisions, Jobs and rollouts against the real API server.
Template variables are resolved as Grafana does (`label_values` through the Prometheus
API) and substituted; every query must return data.
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

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from alerts import load_config, render_rule_files
from alerts.contract import substitute
from dashboards import all_dashboards, panel_queries, retraining, variable_queries
from driftwarden.services.http import request_json
from driftwarden.services.ports import free_port
from retrain_trigger.canary.controller import Controller
from retrain_trigger.canary.kube import KubeRollouts
from retrain_trigger.canary.machine import Phase, RolloutState
from retrain_trigger.canary.prometheus import Analyzer, PrometheusClient
from retrain_trigger.kube import api_client
from retrain_trigger.lineage import LineageLog, lineage_topic
from retrain_trigger.runner import TriggerService
from tests.kits.canary import BAD, GOOD, SyntheticExporter
from tests.kits.collector import ModelServer
from tests.kits.detectors import ServiceProcess, SyntheticModel, produce
from tests.kits.trigger import TriggerEnv, notification, trigger_env

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


def _unanswered(
    prom: Any, doc: dict[str, Any], values: dict[str, str], deadline: float
) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    """Evaluate every panel query of `doc` with `values` substituted, polling each until it
    returns data or `deadline` passes: (the queries left without data, panel title/refId ->
    the result)."""
    missing: list[str] = []
    results: dict[str, list[dict[str, Any]]] = {}
    for q in panel_queries(doc):
        expr = substitute(q.expr, values)
        while not (result := prom.query(expr)):
            if time.monotonic() > deadline:
                missing.append(f"{doc['uid']} / {q.panel} / {q.ref_id}: {expr}")
                break
            time.sleep(0.5)
        results[f"{q.panel}/{q.ref_id}"] = result
    return missing, results


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
            if uid == retraining.UID:  # fed by the trigger and canary: the test below
                continue
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
            missing += _unanswered(prom, doc, values, deadline)[0]
        print(f"all panel queries answered after {time.monotonic() - t_start:.1f}s")
        assert not missing, "queries without data:\n" + "\n".join(missing)
    finally:
        detectors.stop()


# --- Retraining and rollouts ------------------------------------------------------------------

RETRAIN_NO_NODE = {"driftwarden.io/no-such-node": "x"}  # the Job's pod stays Pending


def _post(svc: TriggerService, env: TriggerEnv, body: dict[str, Any]) -> str:
    r = httpx.post(f"{svc.url}/v1/alertmanager", json=body, headers=env.headers(), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["decisions"][0]["decision"]


def _finished_jobs(env: TriggerEnv) -> dict[str, tuple[str, str]]:
    """model -> (outcome, version) of the Jobs the trigger has recorded as finished."""
    done = {}
    for job in env.jobs():
        meta = job.metadata
        outcome = (meta.annotations or {}).get("driftwarden.io/outcome")
        if outcome:
            done[meta.labels["driftwarden.io/model"]] = (
                outcome,
                meta.labels["driftwarden.io/version"],
            )
    return done


def _roll(controller: Controller, model: str, until: Any, what: str) -> RolloutState:
    deadline = time.monotonic() + 90
    while True:
        state = controller.reconcile(model)
        if state is not None and until(state):
            return state
        assert time.monotonic() < deadline, f"{what}: last state {state}"
        time.sleep(0.5)


def test_retraining_dashboard_returns_data(
    k8s: Any, kafka: Any, prometheus_factory: Any, tmp_path: Path
) -> None:
    """The real trigger (HTTP receiver, Job watcher, its /metrics) and the real canary
    controller (its registry served over HTTP) against the real API server, with kwok running
    the pods; the canary's analysis reads a real Prometheus scraping the synthetic canary/
    stable request series of tests/kits/canary.py.

    - fraud: alert -> Job -> Complete -> the controller picks the Job's version up, the
      analysis fails it (bad error rate and latency) -> rolled back; then v2 (good) is
      started by hand and left progressing after its first passed analysis;
    - churn: its Job's pod never schedules -> a running Job;
    - spam: its Job hits activeDeadlineSeconds -> a failed Job;
    - the fraud alert again once its Job finished, then resolved -> decisions cooldown and
      resolved.
    """
    t_start = time.monotonic()
    env = trigger_env(k8s, tmp_path, kafka.bootstrap, models=("fraud", "churn", "spam"))
    env.write_policy(
        "fraud",
        canary={
            "steps": [25, 50, 100],
            "check_interval_s": 2,
            "step_deadline_s": 60,
            "thresholds": {"min_requests": 30, "min_labelled_rows": 200},
        },
    )
    env.write_policy("churn", trainer={"image": "img", "node_selector": RETRAIN_NO_NODE})
    env.write_policy(
        "spam",
        active_deadline_seconds=2,
        backoff_limit=0,
        trainer={"image": "img", "node_selector": RETRAIN_NO_NODE},
    )
    synthetic = SyntheticExporter("fraud", {"v1": GOOD})
    registry = CollectorRegistry()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    kube = KubeRollouts(api_client(k8s.kubeconfig), [env.namespace])
    lineage = LineageLog(kafka.bootstrap, lineage_topic(env.prefix), partitions=1)
    try:
        with env.service() as svc:
            prom = prometheus_factory(
                scrape_targets=[
                    f"127.0.0.1:{svc.port}",
                    f"127.0.0.1:{server.server_port}",
                    synthetic.target,
                ]
            )
            controller = Controller(
                {"fraud": svc.policies["fraud"]},
                kube,
                Analyzer(PrometheusClient(prom.url)),
                lineage,
                registry,
            )

            # The outcome series exist at 0 from the trigger's start: once Prometheus holds
            # the zero, the Jobs' outcomes below read as increases.
            prom.wait_for('driftwarden_retrain_jobs_total{model="spam",outcome="failed"} == 0')
            for model in ("fraud", "churn", "spam"):
                assert _post(svc, env, notification(model)) == "launched"
            done = k8s.wait(
                lambda: (d := _finished_jobs(env)).keys() >= {"fraud", "spam"} and d,
                timeout=90,
                what="the fraud Job Complete and the spam Job Failed",
            )
            assert done["fraud"][0] == "succeeded" and done["spam"][0] == "failed", done
            # The same alert again after the Job finished; then the alert resolves.
            assert _post(svc, env, notification("fraud")) == "cooldown"
            assert _post(svc, env, notification("fraud", status="resolved")) == "resolved"

            # The retrained version is bad: error rate and latency fail, it is rolled back.
            retrained = done["fraud"][1]
            synthetic.set(retrained, BAD)
            prom.wait_for(f'driftwarden_collector_requests_total{{version="{retrained}"}}')
            state = _roll(controller, "fraud", lambda s: s.phase.terminal, "rollback")
            assert (state.version, state.phase) == (retrained, Phase.ROLLED_BACK), state
            # A good v2, by hand, left running after its first analysis passed.
            synthetic.set("v2", GOOD)
            prom.wait_for('driftwarden_collector_requests_total{version="v2"}')
            controller.start("fraud", version="v2", artifact="/artifacts/fraud/v2")
            state = _roll(
                controller,
                "fraud",
                lambda s: s.phase is Phase.PROGRESSING and s.analyses >= 1,
                "the first analysis of v2",
            )
            assert {c.verdict.value for c in state.checks} == {"pass"}, state.checks

            print(f"\nsetup done after {time.monotonic() - t_start:.1f}s")
            doc = all_dashboards()[retraining.UID]
            (var,) = variable_queries(doc)
            found = _label_values(prom.url, var.selector, var.label)
            assert {"fraud", "churn", "spam"} <= set(found), found
            # 'All': the models are spread over the panels (churn runs, spam failed, fraud
            # rolls out).
            missing, results = _unanswered(prom, doc, {"model": ".*"}, time.monotonic() + 60)
            print(f"all panel queries answered after {time.monotonic() - t_start:.1f}s")
            assert not missing, "queries without data:\n" + "\n".join(missing)

            def labels(key: str, label: str) -> set[str]:
                return {r["metric"].get(label, "") for r in results[key]}

            assert labels("Retrain Jobs finished, by outcome/A", "outcome") == {
                "succeeded",
                "failed",
            }
            finished: dict[str, float] = {}
            for r in results["Retrain Jobs finished, by outcome/A"]:
                outcome = r["metric"]["outcome"]
                finished[outcome] = finished.get(outcome, 0.0) + float(r["value"][1])
            # The trigger creates each policy model's outcome series at 0 at start-up, so the
            # first failed Job is an increase (what DriftwardenRetrainFailed fires on).
            assert finished.get("failed", 0) > 0.5, finished
            rollouts = {
                r["metric"]["outcome"]: float(r["value"][1])
                for r in results["Rollouts finished, by outcome/A"]
            }
            # The controller creates both outcomes' series at 0, so the rollback is an increase.
            assert rollouts.get("rolled_back", 0) > 0.5, rollouts
            assert {"launched", "cooldown", "resolved"} <= labels(
                "Retrain decisions per minute, by decision/A", "decision"
            )
            assert labels("Alerts received per minute, by status/A", "status") == {
                "firing",
                "resolved",
            }
            running = {
                r["metric"]["model"]: float(r["value"][1])
                for r in results["Retrain Jobs running/A"]
            }
            assert running.get("churn") == 1.0, running
            weights = {
                r["metric"]["model"]: float(r["value"][1]) for r in results["Canary weight/A"]
            }
            assert weights["fraud"] > 0, weights
            checks = {
                r["metric"]["check"]: float(r["value"][1])
                for r in results["Canary check verdicts/A"]
            }
            assert checks and set(checks.values()) == {1.0}, checks
    finally:
        kube.close()
        lineage.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        synthetic.close()
