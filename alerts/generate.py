"""Write the generated rule files and the Alertmanager example into the repository."""

from __future__ import annotations

from pathlib import Path

from alerts.alertmanager import EXAMPLE_FILE, example_config
from alerts.config import AlertsConfig
from alerts.rules import HEADER, dump_yaml, render_rule_files

PACKAGE_DIR = Path(__file__).resolve().parent
RULES_DIR = PACKAGE_DIR / "rules"
ALERTMANAGER_DIR = PACKAGE_DIR / "alertmanager"
#: promtool unit tests (hand-written; they exercise the committed rules).
TESTS_DIR = PACKAGE_DIR / "tests"


def generated_files(cfg: AlertsConfig) -> dict[Path, str]:
    """Absolute path -> content of every file the generator owns."""
    files = {RULES_DIR / name: text for name, text in render_rule_files(cfg).items()}
    files[ALERTMANAGER_DIR / EXAMPLE_FILE] = HEADER.replace(
        "alerts/config.yaml (alerts/rules.py)", "alerts/alertmanager.py"
    ) + dump_yaml(example_config())
    return files


def write_files(files: dict[Path, str]) -> list[Path]:
    """Write the files whose content changed; return those paths."""
    changed = []
    for path, text in files.items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed
