"""`driftwarden demo --fast --kubeconfig`: the same loop against a real API server (the test
control plane). The trigger creates a real Job, the Job controller completes it from the
status of the pod the demo's node ran, the canary controller creates and scales real
Deployments, and the Deployment controller rolls the stable one to the new version; the
demo's node runs every pod as local processes."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client as kclient
from kubernetes.client.exceptions import ApiException

from tests.e2e.test_demo import (
    ROOT,
    _accuracy,
    _alive,
    _common_milestones,
    _run_demo,
    _seconds,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_runs_the_loop_on_a_real_api_server(tmp_path: Path, k8s) -> None:
    namespace = f"demo-{secrets.token_hex(3)}"
    try:
        output, workdir, _ = _run_demo(
            tmp_path, "--kubeconfig", str(k8s.kubeconfig), "--namespace", namespace
        )
        new = _common_milestones(output)
        assert f"namespace {namespace} created" in output
        assert "ready: its pods run on this machine" in output
        assert f"rollout of {new} promoted" in output and "CanaryPromoted" in output
        assert _seconds(output, "retrained model") < _seconds(output, "promoted") < 240
        assert _accuracy(output, new) > _accuracy(output, "v1") + 0.15
        assert _alive(workdir) == []
        with k8s.api_client() as api:
            batch, apps = kclient.BatchV1Api(api), kclient.AppsV1Api(api)
            core = kclient.CoreV1Api(api)
            jobs = batch.list_namespaced_job(namespace).items
            assert len(jobs) == 1 and jobs[0].status.succeeded == 1
            assert any(c.type == "Complete" for c in jobs[0].status.conditions)
            stable = apps.read_namespaced_deployment("credit", namespace)
            assert stable.metadata.annotations["driftwarden.io/model-version"] == new
            template = stable.spec.template
            assert template.metadata.labels["version"] == new
            names = [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items]
            assert names == ["credit"]  # the canary Deployment was deleted after the promotion
            reasons = {e.reason for e in core.list_namespaced_event(namespace).items}
            expected = {"RetrainLaunched", "RetrainSucceeded", "CanaryStarted", "CanaryPromoted"}
            assert expected <= reasons, reasons
            with pytest.raises(ApiException) as gone:
                core.read_node(template.spec.node_selector["driftwarden.io/demo-node"])
            assert gone.value.status == 404  # the demo removed its node
    finally:
        with k8s.api_client() as api, contextlib.suppress(ApiException):
            kclient.CoreV1Api(api).delete_namespace(namespace)


def test_an_existing_namespace_is_refused_in_one_line(tmp_path: Path, k8s) -> None:
    namespace = k8s.namespace("demo")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "driftwarden", "demo", "--fast", "--no-live"),
            *("--workdir", str(tmp_path / "demo"), "--cache-dir", str(ROOT / ".cache" / "demo")),
            *("--kubeconfig", str(k8s.kubeconfig), "--namespace", namespace),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert f"--namespace: {namespace} already exists" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
