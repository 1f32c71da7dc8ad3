"""Proof for `make k8s-up` / `make k8s-down`: `python -m driftwarden.services k8s-up` starts
a detached control plane that kubectl can use; `k8s-down` leaves nothing running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from driftwarden.services.kubernetes import COMPONENTS, k8s_bin_dir
from driftwarden.services.process import pid_alive

pytestmark = pytest.mark.integration


def _services(state_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwarden.services", "--dir", str(state_dir), command],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_k8s_up_serves_kubectl_and_k8s_down_leaves_nothing_running(tmp_path: Path) -> None:
    state = tmp_path / "k8s"
    pids: dict[str, int] = {}
    up = _services(tmp_path, "k8s-up")
    try:
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={state / 'kubeconfig'}" in up.stdout
        pids.update({name: int((state / f"{name}.pid").read_text()) for name in COMPONENTS})
        assert all(pid_alive(pid) for pid in pids.values())

        nodes = subprocess.run(
            [str(k8s_bin_dir() / "kubectl"), "get", "nodes", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            env={"KUBECONFIG": str(state / "kubeconfig"), "PATH": "/usr/bin:/bin"},
        )
        assert nodes.returncode == 0, nodes.stderr
        (node,) = json.loads(nodes.stdout)["items"]
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
        assert set(json.loads((state / "startup.json").read_text())) >= {"total", "etcd"}

        again = _services(tmp_path, "k8s-up")  # already running: left as it is
        assert again.returncode == 0 and "already running" in again.stdout
        assert {n: int((state / f"{n}.pid").read_text()) for n in COMPONENTS} == pids
    finally:
        down = _services(tmp_path, "k8s-down")
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not list(state.glob("*.pid"))
    assert "nothing running" in _services(tmp_path, "k8s-down").stdout
