"""In-process logging from Python model code, without the sidecar.

    import collector

    collector.configure(model="fraud", bootstrap="kafka:9092", spool_dir="/var/spool/dw")
    # TLS / SASL: kafka_security=KafkaSecurity(...) or the DRIFTWARDEN_KAFKA_* variables
    event_id = collector.log_prediction({"amount": 12.5, "country": "DE"}, 0.93)
    ...
    collector.log_feedback(event_id, label=1)

Events are the same as the sidecar's (same builder, redaction, sampling) and travel
through the same `Delivery`: a background thread, librdkafka, and the disk spool when
Kafka is away. Logging never raises for bad data and never blocks: a row that does not
fit is counted and dead-lettered (pass `strict=True` to get the `CaptureError` instead).
`configure()` without arguments reads the DRIFTWARDEN_* variables the sidecar uses.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from collector.delivery import Delivery, DeliverySettings, DrainReport
from collector.errors import CaptureError, CollectorError
from collector.events import EventBuilder, normalise_request_id
from collector.metrics import CollectorStats
from collector.payloads import PredictionReducer, RowMapper
from collector.redaction import RedactionMode, Redactor
from collector.sampling import Sampler
from collector.spool import Spool
from driftwarden.kafka import DEFAULT_TOPIC_PREFIX, KafkaSecurity, Topics, security_from_args
from driftwarden.schema import new_event_id
from driftwarden.spec import ModelSpec, load_spec

_log = logging.getLogger("collector.sdk")


def _current_trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover
        return None
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


class CollectorClient:
    """Logs predictions and feedback from the model's own process."""

    def __init__(
        self,
        *,
        model: str,
        bootstrap: str,
        version: str = "",
        spec: ModelSpec | str | Path | None = None,
        spool_dir: str | Path | None = None,
        sample_rate: float = 1.0,
        redact: Sequence[str] = (),
        redact_mode: RedactionMode = "drop",
        redact_salt: str = "",
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        meta: Mapping[str, Any] | None = None,
        delivery: DeliverySettings | None = None,
        spool_max_bytes: int = 512 * 1024 * 1024,
        fsync: str = "interval",
        producer_overrides: Mapping[str, Any] | None = None,
        stats: CollectorStats | None = None,
        kafka_security: KafkaSecurity | None = None,
    ) -> None:
        if kafka_security is not None:
            kafka_security.check()  # an unreadable Secret is one line now, not a dropped event
        if isinstance(spec, str | Path):
            spec = load_spec(spec)
        self.spec = spec
        self.stats = stats or CollectorStats()
        self.sampler = Sampler(sample_rate)
        self.builder = EventBuilder(
            model=model,
            version=version or (spec.version if spec is not None and spec.version else ""),
            topics=Topics.with_prefix(topic_prefix),
            redactor=Redactor(redact, redact_mode, redact_salt),
            meta=meta,
        )
        self._rows = RowMapper(spec.feature_names if spec is not None else None)
        self._reduce = PredictionReducer.from_spec(spec.prediction if spec is not None else None)
        self.spool = (
            Spool(
                spool_dir,
                max_bytes=spool_max_bytes,
                segment_bytes=min(8 * 1024 * 1024, spool_max_bytes // 2),
                fsync=fsync,  # type: ignore[arg-type]
            ).open()
            if spool_dir is not None
            else None
        )
        self.delivery = Delivery(
            bootstrap=bootstrap,
            stats=self.stats,
            spool=self.spool,
            settings=delivery,
            producer_overrides=dict(producer_overrides or {}),
            name=f"driftwarden-sdk-{model}",
            security=kafka_security,
        ).start()
        self._closed = False

    @property
    def model(self) -> str:
        return self.builder.model

    def log_prediction(
        self,
        features: Mapping[str, Any] | Sequence[Any],
        prediction: Any,
        *,
        id: str | None = None,
        latency_ms: float = 0.0,
        ts: float | None = None,
        trace_id: str | None = None,
        strict: bool = False,
    ) -> str | None:
        """Log one prediction; returns its event id, or None when sampled out or invalid."""
        ids = self.log_predictions(
            [features],
            [prediction],
            request_id=id,
            latency_ms=latency_ms,
            ts=ts,
            trace_id=trace_id,
            strict=strict,
        )
        return ids[0] if ids else None

    def log_predictions(
        self,
        rows: Sequence[Mapping[str, Any] | Sequence[Any]],
        predictions: Sequence[Any],
        *,
        request_id: str | None = None,
        latency_ms: float = 0.0,
        ts: float | None = None,
        trace_id: str | None = None,
        strict: bool = False,
    ) -> list[str]:
        """Log a batch (one event per row, ids `<request id>-<row>`); returns the ids."""
        rid = normalise_request_id(request_id) or new_event_id()
        if not self.sampler.keep(rid):
            return []
        ts = time.time() if ts is None else ts
        try:
            if len(rows) != len(predictions):
                raise CaptureError(
                    "row_count_mismatch", f"{len(rows)} rows but {len(predictions)} predictions"
                )
            parsed = [
                (self._rows(dict(r) if isinstance(r, Mapping) else list(r)), self._reduce(p))
                for r, p in zip(rows, predictions, strict=True)
            ]
        except CaptureError as e:
            if strict:
                raise
            self.stats.add_dropped(self.model, e.reason)
            self.delivery.submit(self.builder.deadletter(e.reason, e.detail, ts=ts, request_id=rid))
            _log.debug("prediction not logged: %s", e)
            return []
        events = self.builder.predictions(
            parsed,
            request_id=rid,
            ts=ts,
            latency_ms=latency_ms,
            trace_id=trace_id or _current_trace_id(),
        )
        for record in self.builder.prediction_records(events):
            self.delivery.submit(record)
        return [e.id for e in events]

    def log_feedback(self, id: str, label: Any, *, ts: float | None = None) -> bool:
        """Log the ground truth of prediction `id`; False when the queue refused it."""
        event = self.builder.feedback(id, label, ts)
        return self.delivery.submit(self.builder.feedback_record(event))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything logged so far is in Kafka (True) or the timeout passes."""
        return self.delivery.wait_idle(timeout)

    def counts(self) -> dict[str, Counter[Any]]:
        return {
            "sent": Counter(self.stats.sent()),
            "spooled": Counter(self.stats.spooled()),
            "dropped": Counter(self.stats.dropped()),
        }

    def close(self, timeout: float | None = None) -> DrainReport:
        """Drain to Kafka (or the spool) and stop the delivery thread. Idempotent."""
        if self._closed:
            return self.delivery.report
        self._closed = True
        return self.delivery.close(timeout)

    def __enter__(self) -> CollectorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the module-level convenience API -----------------------------------------------------

_lock = threading.Lock()
_default: CollectorClient | None = None
_exit_hook_registered = False


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, env in (
        ("model", "DRIFTWARDEN_MODEL"),
        ("version", "DRIFTWARDEN_MODEL_VERSION"),
        ("bootstrap", "DRIFTWARDEN_BOOTSTRAP"),
        ("spool_dir", "DRIFTWARDEN_SPOOL_DIR"),
        ("spec", "DRIFTWARDEN_SPEC"),
    ):
        if environ.get(env):
            out[key] = environ[env]
    if environ.get("DRIFTWARDEN_SAMPLE_RATE"):
        out["sample_rate"] = float(environ["DRIFTWARDEN_SAMPLE_RATE"])
    if any(k.startswith("DRIFTWARDEN_KAFKA_") and v for k, v in environ.items()):
        # the same settings group, variables and checks as every component (docs/security.md)
        out["kafka_security"], _ = security_from_args((), environ, prog="collector.configure")
    return out


def configure(**kwargs: Any) -> CollectorClient:
    """Create the default client (closing an earlier one). Arguments as `CollectorClient`;
    missing ones come from DRIFTWARDEN_MODEL, DRIFTWARDEN_BOOTSTRAP, ... variables, and
    `kafka_security` (TLS / SASL) from DRIFTWARDEN_KAFKA_* (driftwarden.kafka)."""
    global _default, _exit_hook_registered
    settings = {**_from_env(os.environ), **kwargs}
    for required in ("model", "bootstrap"):
        if not settings.get(required):
            raise CollectorError(
                f"collector.configure: {required!r} is required "
                f"(argument or DRIFTWARDEN_{required.upper()})"
            )
    with _lock:
        old, _default = _default, None
        if old is not None:
            old.close()
        _default = CollectorClient(**settings)
        if not _exit_hook_registered:  # drain the default client at interpreter exit
            atexit.register(shutdown)
            _exit_hook_registered = True
        return _default


def _client() -> CollectorClient:
    client = _default
    if client is None:
        raise CollectorError("call collector.configure(...) before logging")
    return client


def log_prediction(
    features: Mapping[str, Any] | Sequence[Any], prediction: Any, **kwargs: Any
) -> str | None:
    """`CollectorClient.log_prediction` on the default client."""
    return _client().log_prediction(features, prediction, **kwargs)


def log_predictions(
    rows: Sequence[Mapping[str, Any] | Sequence[Any]], predictions: Sequence[Any], **kwargs: Any
) -> list[str]:
    return _client().log_predictions(rows, predictions, **kwargs)


def log_feedback(id: str, label: Any, **kwargs: Any) -> bool:
    """`CollectorClient.log_feedback` on the default client."""
    return _client().log_feedback(id, label, **kwargs)


def shutdown(timeout: float | None = None) -> DrainReport | None:
    """Drain and close the default client (also run at interpreter exit)."""
    global _default
    with _lock:
        client, _default = _default, None
    return client.close(timeout) if client is not None else None
