"""The collector's admin port: `/metrics`, `/healthz`, `/readyz` and `POST /v1/feedback`.

`/v1/feedback` is guarded by `collector.auth.FeedbackAuth` (default: callers inside the
pod only; a bearer token when a token file is set); the other routes are always open.

FastAPI is fine here (DESIGN.md: not on the proxy path). The app is built from the
objects it reports on, so a test builds one with its own registry and delivery.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from collector.auth import FeedbackAuth
from collector.delivery import Delivery
from collector.events import EventBuilder
from collector.feedback import FeedbackError, parse_feedback


def build_admin_app(
    *,
    registry: CollectorRegistry,
    delivery: Delivery,
    builder: EventBuilder,
    ready: Callable[[], bool] = lambda: True,
    feedback_auth: FeedbackAuth | None = None,
) -> FastAPI:
    auth = feedback_auth if feedback_auth is not None else FeedbackAuth("loopback")

    app = FastAPI(
        title="driftwarden collector",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> Response:
        # Liveness: fails only when delivery cannot recover (its thread restarted too often
        # in a row): restarting the container is then the cure, and the spool is kept.
        if not delivery.healthy:
            return JSONResponse(
                {"status": "failed", "reason": f"delivery: {delivery.failed or 'stopped'}"},
                status_code=503,
            )
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        # Kafka being down does not make the sidecar unready: the proxy keeps serving and
        # events go to the spool. Only a proxy or delivery thread that is not running does.
        ok = ready() and delivery.alive and delivery.healthy
        spool = delivery.spool
        body: dict[str, Any] = {
            "ready": ok,
            "delivery": delivery.mode,
            "queued": delivery.queued,
            "spool_bytes": spool.pending_bytes if spool is not None else 0,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> Response:
        client = request.client
        decision = auth.check(
            request.headers.get("authorization"), client.host if client is not None else None
        )
        if not decision.allowed:
            headers = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else None
            return JSONResponse(
                {"error": decision.reason, "detail": decision.detail},
                status_code=decision.status,
                headers=headers,
            )
        body = await request.body()
        try:
            events = parse_feedback(body, model=builder.model)
        except FeedbackError as e:
            return JSONResponse(e.body(), status_code=e.status)
        # One model per sidecar: a label for another model would only add metric series
        # (and events nobody joins), so the whole body is refused.
        others = sorted({e.model for e in events if e.model != builder.model})
        if others:
            delivery.stats.add_dropped(builder.model, "wrong_model", len(events))
            return JSONResponse(
                {
                    "error": "wrong_model",
                    "detail": f"this collector takes feedback for model {builder.model!r} "
                    f"only, not {others[0][:64]!r}",
                },
                status_code=422,
            )
        records = [builder.feedback_record(event) for event in events]
        limit = delivery.max_message_bytes
        for event, record in zip(events, records, strict=True):
            if len(record.key) + len(record.value) > limit:
                delivery.stats.add_dropped(builder.model, "oversize", len(events))
                return JSONResponse(
                    {
                        "error": "oversize",
                        "detail": f"the feedback event for id {event.id[:64]!r} is "
                        f"{len(record.value)} bytes, Kafka takes at most {limit}",
                    },
                    status_code=413,
                )
        accepted = 0
        for record in records:
            if delivery.submit(record):
                accepted += 1
        if accepted < len(events):
            return JSONResponse(
                {
                    "error": "queue_full",
                    "detail": "the collector is overloaded",
                    "accepted": accepted,
                },
                status_code=503,
                headers={"Retry-After": "1"},
            )
        return JSONResponse({"accepted": accepted}, status_code=202)

    return app


class AdminServer:
    """uvicorn serving the admin app inside the proxy's event loop."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            # The collector handles SIGTERM itself (drain), uvicorn must not.
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="httptools",
        )
        self.server = _Server(self.config)
        self._task: Any = None
        self._sock: Any = None

    async def start(self) -> None:
        """Bind (errors such as a port in use raise `OSError` here) and serve."""
        import asyncio
        import socket

        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.host, self.config.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise OSError(f"admin server on port {self.port} did not start")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        if self._sock is not None:
            return int(self._sock.getsockname()[1])
        return self.config.port

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        await self._task
        self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
