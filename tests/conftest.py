# Real services (Kafka, Prometheus, Alertmanager) for integration and e2e tests.
pytest_plugins = ["driftwarden.services.pytest_plugin"]
