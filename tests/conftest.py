# Real services (Kafka, Prometheus, Alertmanager) for integration and e2e tests.
pytest_plugins = ["tests.kits.services", "tests.kits.kubernetes", "tests.kits.secure_kafka"]
