"""The streaming detectors service: Kafka in, window statistics out as Prometheus metrics.

    settings = ServiceSettings(specs=Path("specs"), bootstrap="127.0.0.1:9092", metrics_port=0)
    stop = threading.Event()
    run_service(settings, stop)            # blocks until stop.set()

    service, thread = start_service(settings, stop)   # the same on a background thread

See docs/detectors-service.md for the design (windows, checkpoints, label join).
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from detectors.service.consumer import DetectorService
    from detectors.service.results import FeatureResult, WindowResult, decode_result
    from detectors.service.settings import ServiceSettings

# Imported on first use (PEP 562): the CLI reads `ServiceSettings` (its flag defaults)
# without loading Kafka, numpy and the statistics core.
_LAZY: dict[str, str] = {
    "DetectorService": "detectors.service.consumer",
    "FeatureResult": "detectors.service.results",
    "WindowResult": "detectors.service.results",
    "decode_result": "detectors.service.results",
    "ServiceSettings": "detectors.service.settings",
}

__all__ = [
    "DetectorService",
    "FeatureResult",
    "ServiceSettings",
    "WindowResult",
    "decode_result",
    "run_service",
    "run_until_signalled",
    "start_service",
]


def run_service(
    settings: ServiceSettings,
    stop: threading.Event,
    *,
    registry: CollectorRegistry | None = None,
) -> DetectorService:
    """Run the service in this thread until `stop` is set; returns it (for its history)."""
    from detectors.service.consumer import DetectorService

    service = DetectorService(settings, registry=registry)
    service.run(stop)
    return service


def run_until_signalled(settings: ServiceSettings) -> DetectorService:
    """`run_service` until SIGTERM or SIGINT (then drain: finish, checkpoint, commit).

    The entry points (`driftwarden detectors run`, `python -m detectors.service`) call this
    after building `settings` and configuring logging."""
    import signal

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return run_service(settings, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start_service(
    settings: ServiceSettings,
    stop: threading.Event,
    *,
    registry: CollectorRegistry | None = None,
    timeout: float = 60.0,
) -> tuple[DetectorService, threading.Thread]:
    """Run the service on a daemon thread; return once it consumes (or raise what failed).

    Stop it with `stop.set(); thread.join()`. An exception in the thread is kept in
    `thread.error` (None on a clean exit)."""
    from detectors.service.consumer import DetectorService

    service = DetectorService(settings, registry=registry)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run(stop)
        except BaseException as e:  # handed to the caller through thread.error
            errors.append(e)

    thread = threading.Thread(target=target, name="detectors", daemon=True)
    thread.start()
    deadline = timeout
    while not service.started.wait(0.05):
        deadline -= 0.05
        if errors:
            thread.join()
            raise errors[0]
        if deadline <= 0 or not thread.is_alive():
            stop.set()
            thread.join(10)
            raise TimeoutError(f"detectors service did not start in {timeout}s")
    thread.error = errors  # type: ignore[attr-defined]
    return service, thread


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
