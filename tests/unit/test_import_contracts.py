"""The layering of docs/architecture.md is checked by import-linter (`.importlinter`): a
wrong import anywhere in the packages fails this test, and so `make test` and CI."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".importlinter"
COMPONENTS = {"collector", "detectors", "dashboards", "alerts", "retrain_trigger"}
APPS = {"driftwarden.cli", "driftwarden.demo", "driftwarden.services", "driftwarden.report"}


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    found = str(exe) if exe.exists() else shutil.which("lint-imports")
    assert found, "lint-imports is not installed: `make install` installs the dev extra"
    return found


def test_import_contracts_hold() -> None:
    proc = subprocess.run(
        [_lint_imports(), "--config", str(CONFIG), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"import contracts broken:\n{proc.stdout}\n{proc.stderr}"
    assert "0 broken" in proc.stdout


def _contracts() -> dict[str, dict[str, set[str]]]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    out: dict[str, dict[str, set[str]]] = {}
    for section in parser.sections():
        if section.startswith("importlinter:contract:"):
            out[section.split(":", 2)[2]] = {
                key: set(value.split()) for key, value in parser[section].items()
            }
    return out


def test_every_component_and_app_is_covered() -> None:
    """A new component package must be added to the contracts, not slip past them."""
    on_disk = {
        p.parent.name
        for p in REPO.glob("*/__init__.py")
        if p.parent.name not in {"driftwarden", "tests", "bench"}
    }
    assert on_disk <= COMPONENTS, f"packages missing from .importlinter: {on_disk - COMPONENTS}"
    c = _contracts()
    assert c["components-are-independent"]["modules"] == COMPONENTS
    assert c["components-import-no-app"]["source_modules"] == COMPONENTS
    assert c["components-import-no-app"]["forbidden_modules"] >= APPS
    bottom = c["contracts-are-the-bottom-layer"]
    assert bottom["forbidden_modules"] >= COMPONENTS | APPS
    assert {"driftwarden.schema", "driftwarden.spec", "driftwarden.config"} <= bottom[
        "source_modules"
    ]
    pure = c["pure-modules-do-no-io"]["forbidden_modules"]
    assert {"confluent_kafka", "aiohttp", "fastapi", "uvicorn", "kubernetes", "requests"} <= pure
