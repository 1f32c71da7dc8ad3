"""A tiny HTTP server that records the JSON bodies POSTed to it (an Alertmanager webhook
receiver for tests and the demo)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from driftwarden.errors import ServiceError
from driftwarden.services.ports import LOOPBACK


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST as it arrived: when (time.monotonic()), where, with which headers."""

    at: float
    path: str
    headers: dict[str, str]
    body: Any


class WebhookListener:
    """Listens on a free loopback port; every POST body (JSON) is appended to `received`,
    and the whole request (arrival time, path, headers, body) to `deliveries`.

    Answers 200 to valid JSON and 400 otherwise. Use as a context manager or call
    `close()`.
    """

    def __init__(self, host: str = LOOPBACK, port: int = 0, path: str = "/") -> None:
        self.received: list[Any] = []
        self.paths: list[str] = []
        self.deliveries: list[Delivery] = []
        self._cond = threading.Condition()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with listener._cond:
                    listener.received.append(body)
                    listener.paths.append(self.path)
                    listener.deliveries.append(
                        Delivery(at, self.path, dict(self.headers.items()), body)
                    )
                    listener._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._path = path if path.startswith("/") else f"/{path}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self._path}"

    def wait_for(
        self,
        n: int = 1,
        timeout: float = 30.0,
        predicate: Callable[[list[Any]], bool] | None = None,
    ) -> list[Any]:
        """Block until at least `n` bodies arrived (and `predicate(received)` holds);
        return a copy of `received`. ServiceError at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (len(self.received) >= n and (predicate is None or predicate(self.received))):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServiceError(
                        f"webhook {self.url}: {len(self.received)} POST(s) after {timeout:.0f}s, "
                        f"wanted {n}; received: {self.received}"
                    )
                self._cond.wait(remaining)
            return list(self.received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
