"""Collector: capture sidecar, SDK and feedback endpoint that stream events to Kafka.

The public surface of this package is the SDK, for logging from a model's own Python
process:

    import collector

    collector.configure(model="fraud", bootstrap="kafka:9092", spool_dir="/var/spool/dw")
    event_id = collector.log_prediction({"amount": 12.5}, 0.93)
    collector.log_feedback(event_id, label=1)

The sidecar (`driftwarden collector run`: `collector.service`) and its parts (proxy,
delivery, spool, payload formats) are imported from their modules by the CLI and tests.
Importing this package has no side effects (the SDK's exit hook is registered by
`configure`). See docs/collector.md.
"""

from collector.errors import CaptureError, CollectorError
from collector.sdk import (
    CollectorClient,
    configure,
    log_feedback,
    log_prediction,
    log_predictions,
    shutdown,
)

__all__ = [
    "CaptureError",
    "CollectorClient",
    "CollectorError",
    "configure",
    "log_feedback",
    "log_prediction",
    "log_predictions",
    "shutdown",
]
