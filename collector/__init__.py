"""Collector: capture sidecar, SDK and feedback endpoint that stream events to Kafka."""
