"""Prometheus alerting and recording rules, their promtool tests, and the Alertmanager
routing example, generated from `alerts/config.yaml` (see docs/alerts.md).

    from alerts import load_config, render_rule_files
    files = render_rule_files(load_config().with_for("2s"))   # test rules: fire in seconds
"""

from alerts.alertmanager import alertmanager_config, example_config
from alerts.config import AlertsConfig, AlertsConfigError, load_config
from alerts.generate import ALERTMANAGER_DIR, RULES_DIR, TESTS_DIR, generated_files, write_files
from alerts.rules import (
    PROMETHEUS_SYNTHETIC,
    RECORDED_NAMES,
    alert_names,
    alerting_groups,
    recorded_names,
    recording_groups,
    render_rule_files,
)

__all__ = [
    "ALERTMANAGER_DIR",
    "PROMETHEUS_SYNTHETIC",
    "RECORDED_NAMES",
    "RULES_DIR",
    "TESTS_DIR",
    "AlertsConfig",
    "AlertsConfigError",
    "alert_names",
    "alerting_groups",
    "alertmanager_config",
    "example_config",
    "generated_files",
    "load_config",
    "recorded_names",
    "recording_groups",
    "render_rule_files",
    "write_files",
]
