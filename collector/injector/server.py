"""The webhook's HTTPS server: raw asyncio protocols on uvloop, parsed by httptools.

`POST /mutate` and `POST /mutate/namespace` take an AdmissionReview v1 and answer one (the
request's uid echoed, `allowed: true` always, a base64 JSONPatch when the sidecar is
injected); `GET /metrics` and `GET /healthz` serve Prometheus and the kubelet. A body that
is not an AdmissionReview is a 400 with a reason, an oversize one a 413: never a 5xx of our
own, whatever arrives (the fuzz test sends garbage). Handling is synchronous on the event
loop: the patch builder is pure and takes well under a millisecond, so there is nothing
to wait for and responses leave in the order requests came.

Why not an ASGI framework: the API server waits for this answer before it stores the pod,
for every pod in the cluster (the annotation opt-in webhook sees them all), so the round
trip is kept to the TLS record, the parse and the patch (DESIGN.md measured FastAPI at
~530 req/s against ~14,000 for this stack on one core).

TLS: the certificate and key come from files (a mounted Secret) and are reloaded when the
files change (`os.stat` polled every `reload_interval_s`: a Secret update swaps a symlink,
which inotify on the file itself misses). The new chain is loaded into the same
`SSLContext`, so new connections get it and open ones keep theirs; a half-written pair (the
certificate updated, the key not yet) fails to load and is retried at the next poll.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httptools
import msgspec
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from collector.injector.certs import not_after
from collector.injector.config import InjectorConfig
from collector.injector.metrics import InjectorMetrics, InjectorStats
from collector.injector.patch import BadReview, Decision, decide, parse_review, response
from driftwarden.errors import DriftwardenError

_log = logging.getLogger("collector.injector")

_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
}
_JSON: Final = b"application/json"
_QUIET: Final = frozenset({"not_opted_in"})  # one per pod in the cluster: debug, not info


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Where and how the webhook listens. Sizes in bytes, times in seconds."""

    host: str = "0.0.0.0"
    #: HTTPS port of /mutate, /metrics, /healthz (0: any free port, for tests).
    port: int = 8443
    cert_file: Path = Path("/etc/driftwarden/tls/tls.crt")
    key_file: Path = Path("/etc/driftwarden/tls/tls.key")
    #: Plain-HTTP port for /metrics and /healthz only (0: off), for a Prometheus without TLS.
    metrics_port: int = 0
    #: How often the certificate files are checked for a change.
    reload_interval_s: float = 10.0
    #: A Pod object is at most ~1.5 MiB (etcd's request limit); room for the review around it.
    max_body_bytes: int = 8 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    #: Keep-alive connections idle this long are closed (the API server reuses its own).
    idle_timeout_s: float = 90.0
    tls_handshake_timeout_s: float = 5.0


class Webhook:
    """Decode, decide, encode: the request handling, without sockets (tests call it directly)."""

    def __init__(
        self,
        config: InjectorConfig,
        stats: InjectorStats,
        registry: CollectorRegistry,
    ) -> None:
        self.config = config
        self.stats = stats
        self._registry = registry
        self._decoder = msgspec.json.Decoder()
        self._encoder = msgspec.json.Encoder()

    def handle(
        self, method: str, path: str, body: bytes, admission: bool = True
    ) -> tuple[int, bytes, bytes]:
        """(status, content type, body) for one request; never raises."""
        path = path.split("?", 1)[0]
        if path in ("/mutate", "/mutate/namespace") and admission:
            if method != "POST":
                return self._error(405, "bad_request", f"{method} {path}: use POST")
            return self.review(body, namespace_opt_in=path == "/mutate/namespace")
        if path == "/healthz":
            return 200, b"text/plain; charset=utf-8", b"ok\n"
        if path == "/metrics":
            try:
                return 200, CONTENT_TYPE_LATEST.encode(), generate_latest(self._registry)
            except Exception:  # a broken collector must not turn into a 5xx
                _log.exception("metrics exposition failed")
                return 200, CONTENT_TYPE_LATEST.encode(), b""
        return 404, _JSON, self._encoder.encode({"error": "not_found", "detail": path[:200]})

    def review(self, body: bytes, namespace_opt_in: bool = False) -> tuple[int, bytes, bytes]:
        try:
            doc = self._decoder.decode(body)
        except Exception as e:  # msgspec.DecodeError, RecursionError on absurd nesting
            return self._error(400, "bad_json", f"body is not JSON: {str(e)[:200]}")
        try:
            api, uid, request = parse_review(doc)
        except BadReview as e:
            return self._error(400, "not_admission_review", str(e))
        decision = decide(request, self.config, namespace_opt_in=namespace_opt_in)
        try:
            patch = (
                base64.b64encode(self._encoder.encode(decision.patch)).decode()
                if decision.patch
                else None
            )
            out = self._encoder.encode(response(api, uid, decision, patch))
        except Exception as e:  # the patch holds only decoded JSON; belt and braces
            decision = Decision("error", "internal", f"encoding the answer: {e}"[:300])
            out = self._encoder.encode(response(api, uid, decision, None))
        self.stats.count(decision.outcome, decision.reason)
        self._log(request, uid, decision)
        return 200, _JSON, out

    def _error(self, status: int, reason: str, detail: str) -> tuple[int, bytes, bytes]:
        self.stats.count("invalid", reason)
        _log.info("rejected request: %s (%s)", reason, detail)
        return status, _JSON, self._encoder.encode({"error": reason, "detail": detail})

    @staticmethod
    def _log(request: Any, uid: str, d: Decision) -> None:
        level = logging.DEBUG if d.reason in _QUIET else logging.INFO
        if d.outcome == "error":
            level = logging.ERROR
        if not _log.isEnabledFor(level):
            return
        pod = request.get("object") if hasattr(request, "get") else None
        meta = pod.get("metadata") if isinstance(pod, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        name = meta.get("name") or f"{meta.get('generateName') or ''}*"
        _log.log(
            level,
            "pod %s/%s: %s (%s) %s [uid %s]",
            str(request.get("namespace"))[:63],
            str(name)[:253],
            d.outcome,
            d.reason,
            d.detail,
            uid[:64],
        )


def _http(status: int, ctype: bytes, body: bytes, close: bool) -> bytes:
    head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n" % (
        status,
        _REASONS.get(status, "Error").encode(),
        ctype,
        len(body),
    )
    if close:
        head += b"connection: close\r\n"
    return head + b"\r\n" + body


class _Protocol(asyncio.Protocol):
    """One HTTP/1.1 connection (keep-alive, pipelining answered in order)."""

    def __init__(self, server: InjectorServer, admission: bool) -> None:
        self._server = server
        self._admission = admission
        self._settings = server.settings
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._body_len = 0
        self._head_len = 0
        self._header_name = b""
        self._too_large = False
        self._head_too_large = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # --- connection ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server.connections.add(self)
        self._last = self._server.loop.time()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None

    def _arm(self) -> None:
        self._timer = self._server.loop.call_later(self._settings.idle_timeout_s, self._idle)

    def _idle(self) -> None:
        if self._transport is None:
            return
        idle = self._server.loop.time() - self._last
        if idle >= self._settings.idle_timeout_s:
            self._transport.close()
        else:
            self._timer = self._server.loop.call_later(
                self._settings.idle_timeout_s - idle, self._idle
            )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # A client that pipelines requests without reading the answers stops being read too,
    # instead of growing our write buffer.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._last = self._server.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(400, _JSON, b'{"error":"bad_request","detail":"no upgrades here"}', True)
        except httptools.HttpParserError as e:  # callback errors arrive wrapped in it
            self._server.webhook.stats.count("invalid", "bad_request")
            if self._head_too_large:
                body = b'{"error":"bad_request","detail":"request head too large"}'
                self._finish(431, _JSON, body, True)
            else:
                detail = msgspec.json.encode({"error": "bad_request", "detail": str(e)[:200]})
                self._finish(400, _JSON, detail, True)

    def _finish(self, status: int, ctype: bytes, body: bytes, close: bool) -> None:
        t = self._transport
        if t is None or t.is_closing():
            return
        t.write(_http(status, ctype, body, close))
        if close:
            t.close()

    # --- httptools callbacks -------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []
        self._body_len = 0
        self._head_len = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_len += len(url)
        self._check_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_len += len(name) + len(value)
        self._check_head()
        if name.lower() == b"expect" and value.lower() == b"100-continue" and self._transport:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _check_head(self) -> None:
        if self._head_len > self._settings.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLarge

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._settings.max_body_bytes:
            self._too_large = True
            self._body = []
        elif not self._too_large:
            self._body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        if self._too_large:
            self._server.webhook.stats.count("invalid", "too_large")
            self._finish(413, _JSON, b'{"error":"too_large","detail":"body over the limit"}', True)
            return
        method = self._parser.get_method().decode("latin-1")
        try:
            path = self._url.decode("latin-1")
            status, ctype, body = self._server.webhook.handle(
                method, path, b"".join(self._body), self._admission
            )
        except Exception:  # Webhook.handle does not raise; if it ever does: a 400, logged
            _log.exception("request handling failed")
            status, ctype, body = 400, _JSON, b'{"error":"bad_request","detail":"unhandled"}'
        self._finish(status, ctype, body, not keep_alive)


class _HeadTooLarge(Exception):
    pass


class TlsFiles:
    """An `SSLContext` over a certificate/key pair on disk, reloaded when the files change."""

    def __init__(self, cert_file: Path, key_file: Path, stats: InjectorStats | None = None) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._stats = stats
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self._signature: tuple[Any, ...] | None = None
        self.reloads = 0
        self._load()

    def _stat(self) -> tuple[Any, ...]:
        a, b = os.stat(self.cert_file), os.stat(self.key_file)
        return (a.st_ino, a.st_mtime_ns, a.st_size, b.st_ino, b.st_mtime_ns, b.st_size)

    def _load(self) -> None:
        try:
            signature = self._stat()
            self.context.load_cert_chain(self.cert_file, self.key_file)
            expiry = not_after(self.cert_file.read_bytes())
        except (OSError, ssl.SSLError, ValueError) as e:
            raise DriftwardenError(
                f"--cert-file {self.cert_file} / --key-file {self.key_file}: {e}"
            ) from e
        self._signature = signature
        if self._stats is not None:
            self._stats.cert_expiry = expiry

    def maybe_reload(self) -> bool:
        """Reload when the files changed; True when a new pair is now served."""
        try:
            if self._stat() == self._signature:
                return False
            self._load()
        except Exception as e:
            _log.warning("certificate reload failed, keeping the previous one: %s", e)
            return False
        self.reloads += 1
        _log.info("certificate reloaded from %s", self.cert_file)
        return True


class InjectorServer:
    """The HTTPS webhook (and the optional plain metrics port) on one event loop."""

    def __init__(
        self,
        settings: ServerSettings,
        config: InjectorConfig,
        stats: InjectorStats | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats or InjectorStats()
        if registry is None:
            registry = CollectorRegistry()
            registry.register(InjectorMetrics(self.stats))
        self.webhook = Webhook(config, self.stats, registry)
        self.tls = TlsFiles(settings.cert_file, settings.key_file, self.stats)
        self.connections: set[_Protocol] = set()
        self.port = 0
        self.metrics_port = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._reload_task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        s = self.settings
        https = await self.loop.create_server(
            lambda: _Protocol(self, admission=True),
            s.host,
            s.port,
            ssl=self.tls.context,
            ssl_handshake_timeout=s.tls_handshake_timeout_s,
            reuse_address=True,
            backlog=1024,
        )
        self._servers.append(https)
        self.port = https.sockets[0].getsockname()[1]
        if s.metrics_port:
            plain = await self.loop.create_server(
                lambda: _Protocol(self, admission=False), s.host, s.metrics_port, reuse_address=True
            )
            self._servers.append(plain)
            self.metrics_port = plain.sockets[0].getsockname()[1]
        self._reload_task = self.loop.create_task(self._reload_loop())
        _log.info("injector listening on https://%s:%d", s.host, self.port)

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            self.tls.maybe_reload()

    async def stop(self) -> None:
        for srv in self._servers:
            srv.close()
        if self._reload_task is not None:
            self._reload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload_task
        for conn in list(self.connections):
            conn.close()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 2.0)


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()


def run_injector(
    settings: ServerSettings,
    config: InjectorConfig,
    *,
    background: Callable[[InjectorStats, threading.Event], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; `background` (the reconciler) runs in a thread meanwhile."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = InjectorServer(settings, config)
    stop = asyncio.Event()
    stopping = threading.Event()
    thread = None
    try:
        loop.run_until_complete(server.start())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if background is not None:
            thread = threading.Thread(
                target=background, args=(server.stats, stopping), name="reconciler", daemon=True
            )
            thread.start()
        loop.run_until_complete(stop.wait())
        _log.info("stopping")
    finally:
        stopping.set()
        loop.run_until_complete(server.stop())
        if thread is not None:
            thread.join(5.0)
        loop.close()
