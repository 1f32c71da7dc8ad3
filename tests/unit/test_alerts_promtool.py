"""promtool and amtool on the committed rules and the Alertmanager example.

The binaries come from Debian's prometheus / prometheus-alertmanager packages
(`make services-install`); a missing binary fails these tests, it never skips them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import (
    ALERTMANAGER_DIR,
    RULES_DIR,
    TESTS_DIR,
    alert_names,
    alertmanager_config,
    load_config,
    render_rule_files,
)
from alerts.alertmanager import EXAMPLE_FILE, RETRAIN_RECEIVER
from alerts.rules import dump_yaml
from driftwarden.errors import ServiceError
from driftwarden.services.process import require_binary

TEST_FILES = sorted(TESTS_DIR.glob("*.test.yaml"))


def _tool(name: str) -> str:
    try:
        return require_binary(name)
    except ServiceError as e:
        pytest.fail(str(e), pytrace=False)


def _run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_promtool_check_rules_passes_on_the_committed_rules() -> None:
    files = sorted(RULES_DIR.glob("*.yaml"))
    assert len(files) == 2
    result = _run(_tool("promtool"), "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules_passes_on_the_short_test_variant(tmp_path: Path) -> None:
    for name, text in render_rule_files(load_config().with_for("2s")).items():
        (tmp_path / name).write_text(text)
    result = _run(_tool("promtool"), "check", "rules", *sorted(tmp_path.iterdir()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    assert TEST_FILES
    result = _run(_tool("promtool"), "test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def _checks() -> dict[str, list[dict]]:
    """alertname -> its alert_rule_test entries, over every promtool test file."""
    checks: dict[str, list[dict]] = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for check in test.get("alert_rule_test", []):
                checks.setdefault(check["alertname"], []).append(check)
    return checks


def test_every_alert_has_a_firing_case_and_cases_that_must_not_fire() -> None:
    """`exp_alerts` lists exactly the series that fire, so every check also asserts that
    the flapping / too-few-rows / resolved series of its test group stay silent; a check
    after the 'resolved' series recovered asserts the alert resolves."""
    checks = _checks()
    for name in alert_names(load_config()):
        mine = checks.get(name, [])
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no case where it fires"
        assert len({c["eval_time"] for c in mine}) >= 2, f"{name}: needs two evaluation times"


def _mutated_run(tmp_path: Path, cfg) -> subprocess.CompletedProcess[str]:
    """Run the committed promtool tests against rules generated from `cfg`."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    for name, text in render_rule_files(cfg).items():
        (tmp_path / "rules" / name).write_text(text)
    for path in TEST_FILES:
        shutil.copy(path, tmp_path / "tests" / path.name)
    return _run(_tool("promtool"), "test", "rules", *sorted((tmp_path / "tests").iterdir()))


def test_promtool_tests_catch_a_missing_tiny_sample_guard(tmp_path: Path) -> None:
    cfg = load_config()
    cfg = cfg.model_copy(update={"min_window_rows": 1, "models": {}})
    result = _mutated_run(tmp_path, cfg)
    assert result.returncode != 0
    assert 'model="few"' in result.stdout + result.stderr


def test_promtool_tests_catch_a_missing_for_duration(tmp_path: Path) -> None:
    result = _mutated_run(tmp_path, load_config().with_for("0s"))
    assert result.returncode != 0
    assert 'model="flap"' in result.stdout + result.stderr


# --- Alertmanager ---------------------------------------------------------------------------


def test_amtool_check_config_passes_on_the_example() -> None:
    result = _run(_tool("amtool"), "check-config", ALERTMANAGER_DIR / EXAMPLE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config_passes_with_an_inline_token(tmp_path: Path) -> None:
    path = tmp_path / "am.yaml"
    path.write_text(dump_yaml(alertmanager_config("http://127.0.0.1:1/hook", token="s3cret")))
    result = _run(_tool("amtool"), "check-config", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            ["alertname=DriftwardenDatasetDrift", "driftwarden_action=retrain", "model=churn"],
            f"{RETRAIN_RECEIVER},default",
        ),
        (["alertname=DriftwardenCollectorDown", "severity=critical"], "default"),
    ],
)
def test_example_routes_retrain_alerts_to_the_trigger(labels: list[str], receivers: str) -> None:
    result = _run(
        _tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_DIR / EXAMPLE_FILE}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_example_authenticates_with_a_bearer_token_file_and_groups_by_model() -> None:
    doc = yaml.safe_load((ALERTMANAGER_DIR / EXAMPLE_FILE).read_text())
    route, catch_all = doc["route"]["routes"]
    assert catch_all == {"receiver": "default"}
    assert route["matchers"] == ['driftwarden_action="retrain"']
    assert route["group_by"] == ["model"]
    receiver = next(r for r in doc["receivers"] if r["name"] == route["receiver"])
    (hook,) = receiver["webhook_configs"]
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert hook["http_config"]["authorization"]["credentials_file"]
    assert "credentials" not in hook["http_config"]["authorization"]


def test_example_webhook_url_is_a_route_the_trigger_serves() -> None:
    """The example posts to the path the retrain trigger's receiver listens on (a wrong
    path is a 404 on every notification: retraining silently never happens)."""
    from urllib.parse import urlsplit

    from prometheus_client import CollectorRegistry

    from retrain_trigger.server import create_app

    doc = yaml.safe_load((ALERTMANAGER_DIR / EXAMPLE_FILE).read_text())
    receiver = next(r for r in doc["receivers"] if r["name"] == RETRAIN_RECEIVER)
    (hook,) = receiver["webhook_configs"]
    app = create_app(None, None, CollectorRegistry())  # type: ignore[arg-type]
    posts = {r.path for r in app.routes if "POST" in getattr(r, "methods", ())}
    assert urlsplit(hook["url"]).path in posts, (hook["url"], posts)


def test_alertmanager_config_needs_exactly_one_token_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        alertmanager_config("http://x/hook")
    with pytest.raises(ValueError, match="exactly one"):
        alertmanager_config("http://x/hook", token="a", token_file="/b")
