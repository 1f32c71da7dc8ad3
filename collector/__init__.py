"""Collector: capture sidecar, SDK and feedback endpoint that stream events to Kafka.

The sidecar (`driftwarden collector run`) is a reverse proxy in front of the model that
turns prediction requests into `driftwarden.prediction/v1` events; the SDK logs the same
events from the model's own Python process; both deliver through a background
librdkafka producer with an on-disk spool. See docs/collector.md.
"""

from collector.capture import DEFAULT_ROUTES, Capturer, RouteMatcher
from collector.delivery import Delivery, DeliverySettings, DrainReport
from collector.errors import CAPTURE_REASONS, CaptureError, CollectorError, SpoolError
from collector.events import EventBuilder, Record
from collector.feedback import FeedbackError, parse_feedback
from collector.metrics import CollectorMetrics, CollectorStats
from collector.payloads import (
    PAYLOAD_FORMATS,
    FieldPath,
    JsonPaths,
    PredictionReducer,
    decode_body,
    make_parser,
)
from collector.proxy import Proxy, ProxySettings
from collector.redaction import Redactor
from collector.sampling import Sampler
from collector.sdk import (
    CollectorClient,
    configure,
    log_feedback,
    log_prediction,
    log_predictions,
    shutdown,
)
from collector.settings import CollectorConfig, CollectorSettings, load_config
from collector.spool import Spool
from collector.tracing import Tracing

# The sidecar's wiring imports FastAPI (the admin port); SDK users should not pay for it.
_LAZY = {"CollectorService": "collector.service", "run_collector": "collector.service"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'collector' has no attribute {name!r}")


__all__ = [
    "CAPTURE_REASONS",
    "DEFAULT_ROUTES",
    "PAYLOAD_FORMATS",
    "CaptureError",
    "Capturer",
    "CollectorClient",
    "CollectorConfig",
    "CollectorError",
    "CollectorMetrics",
    "CollectorService",
    "CollectorSettings",
    "CollectorStats",
    "Delivery",
    "DeliverySettings",
    "DrainReport",
    "EventBuilder",
    "FeedbackError",
    "FieldPath",
    "JsonPaths",
    "PredictionReducer",
    "Proxy",
    "ProxySettings",
    "Record",
    "Redactor",
    "RouteMatcher",
    "Sampler",
    "Spool",
    "SpoolError",
    "Tracing",
    "configure",
    "decode_body",
    "load_config",
    "log_feedback",
    "log_prediction",
    "log_predictions",
    "make_parser",
    "parse_feedback",
    "run_collector",
    "shutdown",
]
