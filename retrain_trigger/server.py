"""The HTTP receiver: Alertmanager's webhook, the lineage history, /metrics and /healthz.

    POST /v1/alertmanager            Alertmanager webhook (payload version 4), bearer token
    GET  /v1/models/{model}/history  the model's lineage (bearer token)
    GET  /metrics, GET /healthz      unauthenticated

Input never causes a 5xx: no or wrong token → 401, a body over the limit → 413, not JSON →
400, JSON of the wrong shape → 422 naming the field. A 503 (with Retry-After) means the API
server or Kafka is unreachable, so Alertmanager retries the notification; 502 means the API
server refused the Job (RBAC, admission): the reason is in the body and the log.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from driftwarden.errors import DriftwardenError, GiveUp, RetryLater
from driftwarden.schema import LineageEvent
from retrain_trigger.service import Trigger
from retrain_trigger.webhook import PayloadError, parse_notification

__all__ = ["TokenError", "TokenFile", "create_app"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class TokenError(DriftwardenError):
    """The bearer token file is missing, unreadable or empty at start-up."""


class TokenFile:
    """The expected bearer token, read from a file (a mounted Secret) and re-read whenever the
    file changes (a Secret update swaps the file: new inode, mtime or size). The token is
    never logged; comparison is constant-time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._key: tuple[int, int, int, int] | None = None
        self._token: bytes | None = None
        self.reloads = 0
        self._refresh(required=True)

    def _refresh(self, *, required: bool = False) -> None:
        try:
            st = os.stat(self.path)
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            if key == self._key:
                return
            text = self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            if required:
                raise TokenError(f"--token-file {self.path}: cannot read the token ({e})") from e
            # A Secret update briefly removes the file: keep the last good token.
            return
        if not text:
            if required:
                raise TokenError(f"--token-file {self.path}: the file is empty")
            log.error(
                "token file %s became empty; every request is refused until it is set", self.path
            )
        self._key = key
        self._token = text.encode() if text else None
        self.reloads += 1
        if not required:
            log.info("token file %s changed; the new token is in use", self.path)

    def verify(self, authorization: str | None) -> bool:
        """True when `authorization` is `Bearer <the token>`."""
        with self._lock:
            self._refresh()
            token = self._token
        if token is None or not authorization:
            return False
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("latin-1", "replace"), token)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="driftwarden"'}


def create_app(
    trigger: Trigger,
    token: TokenFile,
    registry: CollectorRegistry,
    *,
    history: Callable[[str], list[LineageEvent]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The receiver's ASGI app around a `Trigger` (all dependencies injected)."""
    app = FastAPI(
        title="driftwarden retrain trigger", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.post("/v1/alertmanager")
    async def alertmanager(request: Request) -> Response:
        if not token.verify(request.headers.get("authorization")):
            return JSONResponse(
                {"error": "missing or invalid bearer token"}, status_code=401, headers=_UNAUTHORIZED
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return _error(413, f"body is {declared} bytes; the limit is {max_body_bytes}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                return _error(413, f"body exceeds the limit of {max_body_bytes} bytes")
        try:
            data = json.loads(bytes(body))
        except (ValueError, RecursionError) as e:
            return _error(400, f"body is not JSON: {str(e)[:200]}")
        try:
            notification = parse_notification(data)
        except PayloadError as e:
            field = str(e).split(":", 1)[0]
            return _error(422, f"not an Alertmanager v4 notification: {e}", field=field)
        except RecursionError:
            return _error(
                422, "not an Alertmanager v4 notification: nested too deeply", field="(top level)"
            )
        try:
            decisions = await run_in_threadpool(trigger.handle, notification)
        except RetryLater as e:
            log.warning(
                "notification %s not handled, Alertmanager will retry: %s", notification.groupKey, e
            )
            return JSONResponse(
                {"error": f"temporarily unavailable: {e}"},
                status_code=503,
                headers={"Retry-After": "10"},
            )
        except GiveUp as e:
            log.error("notification %s refused by the API server: %s", notification.groupKey, e)
            return _error(502, f"the API server refused the retrain: {e}")
        return JSONResponse(
            {"decisions": [{**asdict(d), "decision": d.decision.value} for d in decisions]}
        )

    @app.get("/v1/models/{model}/history")
    async def model_history(model: str, request: Request) -> Response:
        if not token.verify(request.headers.get("authorization")):
            return JSONResponse(
                {"error": "missing or invalid bearer token"}, status_code=401, headers=_UNAUTHORIZED
            )
        if history is None:
            return _error(404, "lineage is not configured (no --bootstrap)")
        try:
            events = await run_in_threadpool(history, model)
        except RetryLater as e:
            return JSONResponse({"error": str(e)}, status_code=503, headers={"Retry-After": "10"})
        return JSONResponse({"model": model, "events": msgspec.to_builtins(events)})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> Response:
        return PlainTextResponse("ok")

    return app
