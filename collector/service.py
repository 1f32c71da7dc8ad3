"""Wiring: the collector sidecar as one object, and the process entry point.

    CollectorService(settings)
      ├── Proxy          (port: model traffic, capture)         ─┐
      ├── AdminServer    (admin port: metrics, health, feedback)  ├── one uvloop event loop
      ├── Delivery       (thread: producer + spool)              ─┘
      └── CollectorMetrics on a registry of its own

`run_collector` runs it until SIGTERM/SIGINT, then drains: the proxy stops accepting and
finishes in-flight requests, queued events go to Kafka (or the spool), and the process
exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from typing import Any

from prometheus_client import CollectorRegistry

from collector.admin import AdminServer, build_admin_app
from collector.auth import FeedbackAuth
from collector.capture import Capturer
from collector.delivery import Delivery, DrainReport
from collector.errors import CollectorError
from collector.events import EventBuilder
from collector.metrics import CollectorMetrics, CollectorStats
from collector.payloads import make_parser
from collector.proxy import Proxy
from collector.redaction import Redactor
from collector.sampling import Sampler
from collector.settings import CollectorSettings
from collector.spool import Spool
from collector.tracing import Tracing
from driftwarden.kafka import Topics

_log = logging.getLogger("collector")


class CollectorService:
    def __init__(
        self,
        settings: CollectorSettings,
        *,
        tracer_provider: Any | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        cfg = settings.config
        self.stats = CollectorStats()
        self.topics = Topics.with_prefix(cfg.topic_prefix)
        self.builder = EventBuilder(
            model=settings.model,
            version=settings.version,
            topics=self.topics,
            redactor=Redactor(cfg.redact.features, cfg.redact.mode, cfg.redact.salt),
            meta={**settings.meta, **cfg.meta},
        )
        try:
            parser = make_parser(
                settings.payload_format, spec=settings.spec, json_paths=cfg.json_paths.paths()
            )
            sampler = Sampler(settings.sample_rate)
            s = cfg.spool
            self.spool = Spool(
                settings.spool_dir,
                max_bytes=s.max_bytes,
                segment_bytes=s.segment_bytes,
                fsync=s.fsync,
                fsync_interval_s=s.fsync_interval_s,
                drop_policy=s.drop_policy,
            )
        except ValueError as e:
            raise CollectorError(str(e)) from e
        self.delivery = Delivery(
            bootstrap=settings.bootstrap,
            stats=self.stats,
            spool=self.spool,
            settings=cfg.delivery.settings(),
            producer_overrides=dict(cfg.kafka),
            security=settings.kafka_security,
        )
        self.capturer = Capturer(
            parser=parser,
            builder=self.builder,
            delivery=self.delivery,
            stats=self.stats,
            sampler=sampler,
            routes=cfg.routes,
            max_body_bytes=cfg.capture.max_body_bytes,
            max_json_depth=cfg.capture.max_json_depth,
        )
        self.tracing = Tracing(tracer_provider)
        self.proxy = Proxy(
            settings.proxy_settings(),
            stats=self.stats,
            capturer=self.capturer,
            tracing=self.tracing,
        )
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(CollectorMetrics(self.stats, settings.model, settings.version))
        self.admin = AdminServer(
            build_admin_app(
                registry=self.registry,
                delivery=self.delivery,
                builder=self.builder,
                ready=lambda: self.proxy.serving,
                feedback_auth=FeedbackAuth.from_settings(
                    settings.feedback_token_file, settings.feedback_open
                ),
            ),
            settings.host,
            settings.admin_port,
        )
        self.port: int | None = None
        self.admin_port: int | None = None
        self._started = False

    async def start(self) -> None:
        """Open the spool, bind both ports, then start delivery. A port that cannot be
        bound is a `CollectorError` before anything else runs."""
        s = self.settings
        self.spool.open()
        try:
            try:
                self.port = await self.proxy.start(s.host, s.port)
            except OSError as e:
                raise CollectorError(f"--port {s.port}: cannot listen ({_why(e)})") from e
            try:
                await self.admin.start()
            except OSError as e:
                raise CollectorError(
                    f"--admin-port {s.admin_port}: cannot listen ({_why(e)})"
                ) from e
        except BaseException:
            await self.proxy.close()
            self.spool.close()
            raise
        self.admin_port = self.admin.port
        self.delivery.start()
        self._started = True
        _log.info(
            "collector for model %s: proxy on %s:%d -> 127.0.0.1:%d, admin on %d, kafka %s (%s)",
            s.model,
            s.host,
            self.port,
            s.model_port,
            self.admin_port,
            s.bootstrap,
            s.kafka_security.describe(),
        )

    async def stop(self) -> DrainReport:
        """Drain and stop everything; idempotent."""
        if not self._started:
            return self.delivery.report
        self._started = False
        await self.proxy.close()
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(None, self.delivery.close)
        await self.admin.stop()
        self.tracing.shutdown()
        log = _log.info if report.flushed and not report.dropped else _log.warning
        log(
            "collector stopped: flushed=%s, spooled at shutdown=%d, lost=%d, "
            "spool holds %d bytes%s",
            report.flushed,
            report.spooled,
            report.dropped,
            report.left_in_spool_bytes,
            f" (delivery had failed: {report.failed})" if report.failed else "",
        )
        return report


def _why(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else str(e)


def tracer_provider_for(settings: CollectorSettings, environ: dict[str, str]) -> Any | None:
    """An OTLP tracer provider when an endpoint is configured, else None (tracing off)."""
    t = settings.config.tracing
    if t.otlp_endpoint is None and not (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return None
    from collector.tracing import otlp_tracer_provider

    return otlp_tracer_provider(t.otlp_endpoint, t.service_name)


def run_collector(settings: CollectorSettings, *, tracer_provider: Any | None = None) -> None:
    """Run until SIGTERM/SIGINT, then drain and return."""

    async def main() -> None:
        service = CollectorService(settings, tracer_provider=tracer_provider)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await service.start()
        # Everything allocated so far (imports, FastAPI, pydantic models) lives for the
        # process: keep it out of the collector's generations so a full collection does
        # not walk it while requests wait.
        gc.collect()
        gc.freeze()
        try:
            await stop.wait()
            _log.info("signal received: draining")
        finally:
            await service.stop()

    # The delivery thread gives the GIL back often; a shorter switch interval bounds how
    # long the event loop can wait for it when it does not.
    sys.setswitchinterval(0.0005)
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main())
