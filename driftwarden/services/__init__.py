"""Real Kafka, Prometheus and Alertmanager servers on 127.0.0.1 for integration tests,
end-to-end tests and the demo.

Binaries come from `scripts/install-services.sh` (Debian packages, Kafka jars from Maven
Central). Each server class renders its config with a pure function, starts the real binary
with `subprocess.Popen`, waits for readiness against a deadline and stops by PID; failures
raise `driftwarden.errors.ServiceError` with the tail of the service's log.
"""

from driftwarden.services.alertmanager import AlertmanagerServer, render_alertmanager_config
from driftwarden.services.kafka import KafkaBroker, new_cluster_id, render_server_properties
from driftwarden.services.ports import free_port
from driftwarden.services.prometheus import PrometheusServer, render_prometheus_config
from driftwarden.services.tools import (
    amtool_check_config,
    promtool_check_config,
    promtool_check_rules,
    promtool_test_rules,
)
from driftwarden.services.webhook import WebhookListener

__all__ = [
    "AlertmanagerServer",
    "KafkaBroker",
    "PrometheusServer",
    "WebhookListener",
    "amtool_check_config",
    "free_port",
    "new_cluster_id",
    "promtool_check_config",
    "promtool_check_rules",
    "promtool_test_rules",
    "render_alertmanager_config",
    "render_prometheus_config",
    "render_server_properties",
]
