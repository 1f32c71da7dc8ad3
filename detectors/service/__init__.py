"""The streaming detectors service: Kafka in, window statistics out as Prometheus metrics.

    settings = ServiceSettings(specs=Path("specs"), bootstrap="127.0.0.1:9092", metrics_port=0)
    stop = threading.Event()
    run_service(settings, stop)            # blocks until stop.set()

    service, thread = start_service(settings, stop)   # the same on a background thread

See docs/detectors-service.md for the design (windows, checkpoints, label join).
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from detectors.service.consumer import DetectorService
from detectors.service.results import FeatureResult, WindowResult, decode_result
from detectors.service.settings import ServiceSettings

__all__ = [
    "DetectorService",
    "FeatureResult",
    "ServiceSettings",
    "WindowResult",
    "decode_result",
    "run_service",
    "start_service",
]


def run_service(
    settings: ServiceSettings,
    stop: threading.Event,
    *,
    registry: CollectorRegistry | None = None,
) -> DetectorService:
    """Run the service in this thread until `stop` is set; returns it (for its history)."""
    service = DetectorService(settings, registry=registry)
    service.run(stop)
    return service


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
