"""The injected sidecar's configuration is a working collector: `driftwarden collector run`
started with nothing but the environment the patch gives it (ports and Kafka pointed at
this machine, as the pod network would) proxies the model and delivers events to the real
Kafka broker labelled with the pod's annotations."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from collector.injector import InjectorConfig, decide
from driftwarden.services.ports import free_port
from tests.kits.collector import ModelServer, read_topic
from tests.kits.injector import apply, model_pod, review

pytestmark = pytest.mark.integration


def _sidecar_env(annotations: dict[str, str]) -> dict[str, str]:
    pod = model_pod(annotations)
    out = apply(pod, decide(review(pod)["request"], InjectorConfig()).patch)
    side = out["spec"]["initContainers"][-1]
    assert side["command"] == ["driftwarden", "collector", "run"]
    env = {e["name"]: e["value"] for e in side["env"] if "value" in e}
    downward = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in side["env"] if "valueFrom" in e
    }
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    return env


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_injected_environment_runs_the_collector(kafka: Any, tmp_path: Path) -> None:
    env = _sidecar_env(
        {
            "driftwarden.io/inject": "true",
            "driftwarden.io/model": "credit-inj",
            "driftwarden.io/model-version": "v9",
            "driftwarden.io/payload-format": "kserve-v1",
            "driftwarden.io/sample-rate": "1",
        }
    )
    prefix = f"inj{uuid.uuid4().hex[:8]}"
    (tmp_path / "collector.yaml").write_text(f"topic_prefix: {prefix}\n")
    with ModelServer() as model:
        proxy, admin = free_port(), free_port()
        # What the pod network and the kubelet provide, and nothing else: the values the
        # patch chose for ports, Kafka and the spool are pointed at this machine.
        overrides = {
            "DRIFTWARDEN_MODEL_PORT": str(model.port),
            "DRIFTWARDEN_PORT": str(proxy),
            "DRIFTWARDEN_ADMIN_PORT": str(admin),
            "DRIFTWARDEN_BOOTSTRAP": kafka.bootstrap,
            "DRIFTWARDEN_SPOOL_DIR": str(tmp_path / "spool"),
        }
        assert set(overrides) <= set(env)
        assert env["DRIFTWARDEN_MODEL_PORT"] == "8080" and env["DRIFTWARDEN_PORT"] == "8480"
        child_env = {
            "PATH": os.environ.get("PATH", ""),
            **env,
            **overrides,
            "DRIFTWARDEN_CONFIG": str(tmp_path / "collector.yaml"),
            "DRIFTWARDEN_HOST": "127.0.0.1",
            "POD_NAME": "credit-7d9f",
            "POD_NAMESPACE": "models",
        }
        log = (tmp_path / "collector.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftwarden", "collector", "run"],
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if _get(admin, "/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "collector did not get ready from the injected environment: "
                        + (tmp_path / "collector.log").read_text()[-2000:],
                        pytrace=False,
                    )
                time.sleep(0.2)
            body = json.dumps({"instances": [{"age": 31, "income": 1200.0}]}).encode()
            conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=5)
            conn.request(
                "POST",
                "/v1/models/credit:predict",
                body,
                {"Content-Type": "application/json", "X-Request-ID": "inj-1"},
            )
            r = conn.getresponse()
            answer = r.read()
            conn.close()
            assert r.status == 200
            assert json.loads(answer)["predictions"][0][1] > 0.5
            records = read_topic(kafka.bootstrap, f"{prefix}.predictions", at_least=1, timeout=60)
            events = [json.loads(value) for _, value, _ in records]
            assert len(events) == 1, events
            event = events[0]
            assert (event["model"], event["version"], event["id"]) == ("credit-inj", "v9", "inj-1")
            assert event["meta"]["pod"] == "credit-7d9f" and event["meta"]["namespace"] == "models"
            assert event["features"] == {"age": 31, "income": 1200.0}
            # JSON logs, as the patch asked.
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            lines = (tmp_path / "collector.log").read_text().splitlines()
            assert lines and all(json.loads(line)["level"] for line in lines if line.strip())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
