"""`driftwarden trigger validate|run` as a user runs them: a real process, one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwarden", "trigger", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def write_policy(folder: Path, **doc: object) -> None:
    base = {"model": "fraud", "trainer": {"image": "img"}, "spec": "/s.yaml", "output": "/a"}
    (folder / f"{doc.get('model', 'fraud')}.yaml").write_text(yaml.safe_dump({**base, **doc}))


def test_validate_lists_each_model(tmp_path: Path) -> None:
    write_policy(tmp_path)
    write_policy(tmp_path, model="churn", namespace="ml")
    r = run("validate", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("ok churn: namespace ml")
    assert len(r.stdout.splitlines()) == 2


def test_validate_errors_are_one_line(tmp_path: Path) -> None:
    write_policy(tmp_path, cooldown_s="soon")
    r = run("validate", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "cooldown_s" in r.stderr and "Traceback" not in r.stderr
    r = run("validate", str(tmp_path / "nope"))
    assert r.returncode == 2 and "not a directory" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("validate", str(empty))
    assert r.returncode == 2 and "no policy files" in r.stderr


def test_validate_checks_namespaces(tmp_path: Path) -> None:
    write_policy(tmp_path, namespace="ml")
    r = run("validate", str(tmp_path), "--namespaces", "prod,staging")
    assert r.returncode == 2 and "'ml' is not one of" in r.stderr


def test_run_refuses_a_missing_token_file_in_one_line(tmp_path: Path) -> None:
    write_policy(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    r = run(
        "run",
        "--policies",
        str(tmp_path),
        "--token-file",
        str(tmp_path / "missing"),
        "--kubeconfig",
        str(kubeconfig),
        "--bootstrap",
        "",
    )
    assert r.returncode == 2
    assert "--token-file" in r.stderr and "cannot read the token" in r.stderr
    assert "Traceback" not in r.stderr
