"""The reverse proxy on the hot path: raw asyncio protocols on uvloop, parsed by httptools.

Every request on the proxy's port goes to the model on `127.0.0.1:<model port>` and its
response comes back unchanged:

- Requests are parsed (llhttp via httptools) and forwarded with the same method, target,
  HTTP version, header names, values and order, and body (a chunked body is re-chunked as
  it streams; trailers are kept). Nothing is added or removed, except `traceparent` when
  tracing is on (the upstream span's, so the model's spans nest under it).
- Responses are forwarded byte for byte as they arrive (streaming, chunked, SSE and
  1xx responses included); the response parser only watches for the end of the message.
- Upstream connections are pooled and reused; one request is outstanding per upstream
  connection (pipelined client requests wait their turn on their client connection). A
  connection goes back to the pool only once its response is complete and nothing
  follows it. A reused connection that the model closed in the meantime is retried once
  on a fresh one when no byte of the response had arrived.
- `Upgrade` (WebSocket): the bytes after the request head are held, not forwarded, until
  the model answers. Only `101 Switching Protocols` turns both connections into a raw
  tunnel; any other answer is an ordinary response and the held bytes are parsed as the
  next requests. `CONNECT` is refused (405): the model is not a forward proxy.
- The proxy answers only for itself: 400/431/505 for requests it cannot parse (HTTP/0.9
  included), 405 for CONNECT, 408 when a client is too slow (`header_timeout_s`,
  `body_timeout_s`), 502 when the model is unreachable or drops the connection before
  answering, 504 when it does not start answering within `upstream_timeout_s`, and 503
  when the connection cap is reached with no idle connection to close.
- Idle keep-alive connections close after `idle_timeout_s`; at `max_connections` the
  connection idle the longest is closed to make room. One timer sweeps every connection
  a few times per timeout; the hot path only stores timestamps.

Counting (`driftwarden_collector_requests_total{code}`): the status the model answered;
`aborted` when the model closed the connection after the response head had reached the
client (the client got a truncated response, not a 502); `499` (nginx's code) for a request
whose client went away before its response was complete.

For a prediction route (see `Capturer.wants`), the request and response bodies are kept
(up to `max_body_bytes`) and handed to the `Capturer` after the response was written to
the client; the JSON work happens on the delivery thread, never before the response.
Every captured request ends in exactly one of: submitted (event or dead letter), or
rejected with a reason (`oversize`, `incomplete`, `upstream_status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httptools

from collector.capture import Capturer
from collector.events import normalise_request_id
from collector.metrics import CollectorStats
from collector.tracing import RequestTrace, Tracing, parse_traceparent

_log = logging.getLogger("collector.proxy")

_VERSIONS: Final = {"1.1": b" HTTP/1.1\r\n", "1.0": b" HTTP/1.0\r\n"}
_LAST_CHUNK: Final = b"0\r\n"
_CRLF: Final = b"\r\n"


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Limits of the proxy itself. Sizes in bytes, times in seconds."""

    upstream_host: str = "127.0.0.1"
    upstream_port: int = 8080
    #: Request line plus headers; beyond it the proxy answers 431.
    max_header_bytes: int = 64 * 1024
    #: Pipelined requests waiting on one client connection before reading pauses.
    max_pipeline: int = 32
    #: Request bytes kept to retry a request on a fresh connection (see module doc).
    retry_buffer_bytes: int = 1024 * 1024
    #: Request bytes buffered while the upstream connection opens, before reading pauses.
    max_buffer_bytes: int = 4 * 1024 * 1024
    #: Idle upstream connections kept for reuse.
    pool_size: int = 256
    connect_timeout_s: float = 5.0
    #: On shutdown: how long in-flight requests may take before their connections close.
    shutdown_timeout_s: float = 10.0
    #: From a request's first byte (or the connection's accept) to the end of its head;
    #: slower clients get 408 (slow-loris).
    header_timeout_s: float = 10.0
    #: A request body that makes no progress this long gets 408.
    body_timeout_s: float = 30.0
    #: A keep-alive client connection idle this long is closed (longer than the 60 s of
    #: common load balancers, so that their side closes first).
    idle_timeout_s: float = 75.0
    #: The model must start its response this long after the request reached it; 504.
    upstream_timeout_s: float = 60.0
    #: Client connections; at the cap the one idle the longest is closed for a new one.
    #: Also capped by half the process's file descriptor limit (each may need an upstream).
    max_connections: int = 10_000


class _HeadTooLarge(Exception):
    pass


class _Refuse(Exception):
    """A request the proxy answers itself (raised from a parser callback)."""

    def __init__(self, status: int, reason: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.reason = reason
        self.text = text


def simple_response(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class _Exchange:
    """One request/response pair on a client connection."""

    __slots__ = (
        "capture",
        "chunked",
        "down",
        "head_done",
        "headers",
        "hsize",
        "keep_alive",
        "method",
        "out",
        "out_size",
        "path",
        "req_body",
        "req_encoding",
        "req_size",
        "request_done",
        "resp_body",
        "resp_encoding",
        "resp_framed",
        "resp_keep_alive",
        "resp_size",
        "resp_started",
        "retries",
        "retry_log",
        "retry_size",
        "rid",
        "status",
        "t0",
        "t_done",
        "t_up",
        "trace",
        "trace_id",
        "traceparent",
        "trailers",
        "up",
        "upgrade",
        "url",
        "version",
    )

    def __init__(self, down: _Downstream, t0: float) -> None:
        self.down = down
        self.t0 = t0
        self.t_up = t0
        self.t_done = 0.0
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.hsize = 0
        self.head_done = False
        self.trailers: list[bytes] | None = None
        self.method = b""
        self.version = "1.1"
        self.path = b""
        self.keep_alive = True
        self.chunked = False
        self.upgrade = False
        self.rid: str | None = None
        self.traceparent: bytes | None = None
        self.trace: RequestTrace | None = None
        self.trace_id: str | None = None
        self.req_encoding: str | None = None
        self.capture = False
        self.req_body: list[bytes] | None = None
        self.req_size = 0
        self.out: list[bytes] = []
        self.out_size = 0
        self.up: _Upstream | None = None
        self.request_done = False
        self.retry_log: list[bytes] | None = None
        self.retry_size = 0
        self.retries = 0
        self.resp_started = False
        self.status = 0
        self.resp_body: list[bytes] | None = None
        self.resp_size = 0
        self.resp_encoding: str | None = None
        self.resp_framed = False
        self.resp_keep_alive = True

    def send(self, data: bytes) -> None:
        """Request bytes towards the model (written now, or buffered until connected)."""
        up = self.up
        if self.retry_log is not None:
            self.retry_size += len(data)
            if self.retry_size > self.down.proxy.settings.retry_buffer_bytes:
                self.retry_log = None
            else:
                self.retry_log.append(data)
        if up is not None and up.transport is not None:
            down = self.down
            if down.in_feed:  # coalesced: written once when the client's chunk is parsed
                down.wbuf.append(data)
                down.wup = up
            else:
                up.transport.write(data)
            return
        self.out.append(data)
        self.out_size += len(data)
        if self.out_size > self.down.proxy.settings.max_buffer_bytes:
            self.down.pause_reading()


class _Downstream(asyncio.Protocol):
    """A client connection."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[_Exchange] = deque()
        self.cur: _Exchange | None = None
        self.tunnel = False
        self.closed = False
        self.draining = False  # close once the queue is empty (shutdown, parse error)
        self.error_response: bytes | None = None
        self._reading_paused = False
        # Request bytes produced while parsing one chunk go out in one write (one syscall
        # for head and body instead of one each).
        self.in_feed = False
        self.wbuf: list[bytes] = []
        self.wup: _Upstream | None = None
        # Bytes after an Upgrade request's head, held until the model answers it.
        self.held: list[bytes] | None = None
        self.held_size = 0
        # perf_counter times for the timeout sweep: last byte read, idle since.
        self.t_read = 0.0
        self.t_idle = 0.0
        self.served = 0

    # -- transport events --

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.t_read = self.t_idle = time.perf_counter()
        self.proxy._accepted(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        abandoned = not self.closed  # we did not close it: the client went away
        self.closed = True
        proxy = self.proxy
        proxy._lost(self)
        if self.queue:
            now = time.perf_counter()
            for ex in self.queue:
                if ex.up is not None:
                    ex.up.abandon()
                    ex.up = None
                if self.tunnel:
                    proxy._finish(ex, ex.status or 101, now)
                    continue
                if abandoned:
                    proxy._count_own(499, ex)
                proxy._drop_capture(ex, "incomplete", "the client closed the connection")
            self.queue.clear()
        self.cur = None
        self.held = None

    def data_received(self, data: bytes) -> None:
        self.t_read = time.perf_counter()
        if self.tunnel:
            if self.queue:
                self.queue[0].send(data)
            return
        if self.held is not None:
            self._hold(data)
            return
        if self.error_response is not None:
            return
        self.in_feed = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            # An Upgrade request is complete; what follows waits for the model's answer.
            self.held = []
            self.held_size = 0
            rest = data[e.args[0] :] if e.args else b""
            if rest:
                self._hold(rest)
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__
            if isinstance(cause, _HeadTooLarge):
                self._fail(431, "Request Header Fields Too Large", "request head too large")
            elif isinstance(cause, _Refuse):
                self._fail(cause.status, cause.reason, cause.text)
            else:
                _log.exception("proxy callback failed")
                self._fail(400, "Bad Request", "bad request")
        except httptools.HttpParserError as e:
            self._fail(400, "Bad Request", f"bad request: {e}")
        finally:
            self.in_feed = False
            if self.wbuf:
                self.flush()

    def _hold(self, data: bytes) -> None:
        self.held.append(data)  # type: ignore[union-attr]
        self.held_size += len(data)
        if self.held_size > self.proxy.settings.max_buffer_bytes:
            self.pause_reading()

    def start_tunnel(self, up: _Upstream) -> None:
        """The model agreed to the upgrade (101): from now on bytes pass unparsed."""
        self.tunnel = True
        held, self.held = self.held or [], None
        if held and up.transport is not None:
            up.transport.write(b"".join(held))
        self.resume_reading()

    def _resume_http(self) -> None:
        """The model did not switch protocols: the held bytes are the next requests."""
        held, self.held = self.held or [], None
        self.parser = httptools.HttpRequestParser(self)
        self.resume_reading()
        if held:
            self.data_received(b"".join(held))

    def flush(self) -> None:
        buf, self.wbuf = self.wbuf, []
        up, self.wup = self.wup, None
        if up is not None and not up.closed and up.transport is not None:
            up.transport.write(b"".join(buf) if len(buf) > 1 else buf[0])

    def eof_received(self) -> bool:
        """The client half-closed: answer what it sent in full, then close."""
        self.draining = True
        cur = self.cur
        if cur is not None and not cur.request_done:
            return False  # a truncated request: nothing sensible to answer
        return bool(self.queue)

    def pause_writing(self) -> None:
        ex = self.queue[0] if self.queue else None
        if ex is not None and ex.up is not None and ex.up.transport is not None:
            ex.up.transport.pause_reading()

    def resume_writing(self) -> None:
        ex = self.queue[0] if self.queue else None
        if ex is not None and ex.up is not None and ex.up.transport is not None:
            ex.up.transport.resume_reading()

    def pause_reading(self) -> None:
        if not self._reading_paused and not self.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        self.cur = _Exchange(self, time.perf_counter())
        self.proxy._idle.pop(self, None)

    def on_url(self, url: bytes) -> None:
        ex = self.cur
        ex.url += url  # type: ignore[union-attr]
        ex.hsize += len(url)  # type: ignore[union-attr]
        if ex.hsize > self.proxy.settings.max_header_bytes:  # type: ignore[union-attr]
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.cur
        assert ex is not None
        if ex.head_done:  # a trailer of a chunked body
            if ex.trailers is None:
                ex.trailers = []
            ex.trailers.append(name + b": " + value + _CRLF)
            return
        ex.headers.append((name, value))
        ex.hsize += len(name) + len(value) + 4
        if ex.hsize > self.proxy.settings.max_header_bytes:
            raise _HeadTooLarge
        n = len(name)
        if n == 12 or n == 11 or n == 16 or n == 17:
            lower = name.lower()
            if lower == b"x-request-id":
                if ex.rid is None:
                    ex.rid = normalise_request_id(value.decode("latin-1"))
            elif lower == b"traceparent":
                ex.traceparent = value
            elif lower == b"content-encoding":
                ex.req_encoding = value.decode("latin-1")
            elif lower == b"transfer-encoding":
                ex.chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        ex = self.cur
        assert ex is not None
        parser = self.parser
        ex.head_done = True
        ex.method = parser.get_method()
        ex.version = parser.get_http_version()
        if ex.version not in _VERSIONS:  # HTTP/0.9 (no headers, no status line) or 2.0
            raise _Refuse(505, "HTTP Version Not Supported", f"HTTP/{ex.version} is not supported")
        if ex.method == b"CONNECT":
            raise _Refuse(405, "Method Not Allowed", "CONNECT is not supported")
        ex.keep_alive = parser.should_keep_alive()
        ex.upgrade = parser.should_upgrade()
        url = ex.url
        q = url.find(b"?")
        ex.path = url if q < 0 else url[:q]
        capturer = self.proxy.capturer
        if capturer is not None and capturer.wants(ex.method, ex.path) and capturer.keep(ex.rid):
            ex.capture = True
            ex.req_body = []
        if ex.traceparent is not None:
            parsed = parse_traceparent(ex.traceparent)
            ex.trace_id = parsed[0] if parsed else None
        queue = self.queue
        queue.append(ex)
        if len(queue) == 1:
            self.proxy._activate(ex)
        elif len(queue) > self.proxy.settings.max_pipeline:
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        ex = self.cur
        assert ex is not None
        if ex.capture:
            ex.req_size += len(body)
            if ex.req_size > self.proxy.capturer.max_body_bytes:  # type: ignore[union-attr]
                ex.req_body = None
                self.proxy._oversize(ex, "request")
            else:
                ex.req_body.append(body)  # type: ignore[union-attr]
        if ex.chunked:
            ex.send(b"%x\r\n%b\r\n" % (len(body), body))
        else:
            ex.send(body)

    def on_message_complete(self) -> None:
        ex = self.cur
        assert ex is not None
        self.cur = None
        if ex.chunked:
            ex.send(_LAST_CHUNK + b"".join(ex.trailers or ()) + _CRLF)
        ex.request_done = True
        ex.t_done = time.perf_counter()

    # -- exchanges --

    def exchange_done(self, ex: _Exchange, upstream_keep_alive: bool) -> None:
        queue = self.queue
        if queue and queue[0] is ex:
            queue.popleft()
        self.served += 1
        if self.closed:
            return
        if not (ex.keep_alive and upstream_keep_alive):
            self.close()
            return
        if queue:
            self.proxy._activate(queue[0])
            if len(queue) <= self.proxy.settings.max_pipeline // 2:
                self.resume_reading()
        elif self.error_response is not None:
            self.transport.write(self.error_response)
            self.close()
        elif self.draining and self.cur is None:
            self.close()
        elif self.held is not None and ex.upgrade:
            self._resume_http()
            if not self.queue and self.cur is None and not self.closed:
                self._became_idle()
        else:
            if self.cur is None:
                self._became_idle()
            self.resume_reading()

    def _became_idle(self) -> None:
        self.t_idle = time.perf_counter()
        self.proxy._idle[self] = None

    def _fail(self, status: int, reason: str, text: str) -> None:
        """A request the proxy cannot parse: answer it once earlier ones are answered."""
        self.pause_reading()
        response = simple_response(status, reason, text)
        self.proxy._count_own(status)
        cur, self.cur = self.cur, None
        if cur is not None and cur in self.queue:
            self.proxy._drop_capture(cur, "incomplete", f"the request was refused ({status})")
            if cur is self.queue[0]:
                # Its head already went to the model: that connection is unusable now.
                if cur.up is not None:
                    cur.up.abandon()
                    cur.up = None
                self.queue.clear()
                if not cur.resp_started:
                    self.transport.write(response)
                self.close()
                return
            self.queue.remove(cur)
        if not self.queue:
            self.transport.write(response)
            self.close()
        else:
            self.error_response = response

    def bad_gateway(self, ex: _Exchange, why: str) -> None:
        """The model could not be reached, or dropped the connection: 502 when nothing of
        its response reached the client yet, else the client's response is cut off."""
        self.proxy._count_own(502 if not ex.resp_started else "aborted", ex)
        self.proxy._drop_capture(ex, "incomplete", why)
        self._abort(simple_response(502, "Bad Gateway", f"bad gateway: {why}"), ex)

    def gateway_timeout(self, ex: _Exchange) -> None:
        """The model did not start answering within `upstream_timeout_s`."""
        s = self.proxy.settings
        why = f"the model did not answer within {s.upstream_timeout_s:g}s"
        self.proxy._count_own(504, ex)
        self.proxy._drop_capture(ex, "incomplete", why)
        if ex.up is not None:
            ex.up.abandon()
            ex.up = None
        self._abort(simple_response(504, "Gateway Timeout", f"gateway timeout: {why}"), ex)

    def _abort(self, response: bytes, ex: _Exchange) -> None:
        if self.closed:
            return
        if not ex.resp_started:
            self.transport.write(response)
        for other in self.queue:
            if other is not ex:
                self.proxy._drop_capture(other, "incomplete", "an earlier request failed")
        self.queue.clear()
        self.close()

    def timeout(self, reason: str, text: str) -> None:
        """A client too slow (408 when a request was under way), or idle too long."""
        self.proxy.stats.connections_closed[reason] += 1
        if self.cur is None and not self.queue:
            self.close()
            return
        self._fail(408, "Request Timeout", text)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()


class _Upstream(asyncio.Protocol):
    """A connection to the model; serves one exchange at a time."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.ex: _Exchange | None = None
        self.uses = 0
        self.closed = False
        self.tunnel = False
        self._skip = False
        self._head_complete: tuple[_Exchange, int, bool] | None = None
        # A response that completed inside `feed_data`: finished once it returns, so that
        # whatever followed it in the same read is seen before the connection is reused.
        self._done: tuple[_Exchange, int, bool] | None = None
        self._extra = False

    def attach(self, ex: _Exchange) -> None:
        self.ex = ex
        ex.up = self
        self.uses += 1
        self._skip = False

    def abandon(self) -> None:
        """The client went away mid-exchange: this connection cannot be reused."""
        self.ex = None
        if not self.closed:
            self.closed = True
            self.transport.close()

    # -- transport events --

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.proxy._pool_discard(self)
        ex, self.ex = self.ex, None
        if ex is None:
            return
        ex.up = None
        down = ex.down
        if self.tunnel:
            self.proxy._finish(ex, ex.status or 101, time.perf_counter())
            down.exchange_done(ex, False)
            return
        if not ex.resp_started and ex.retry_log is not None and ex.retries == 0 and self.uses > 1:
            # The model closed an idle keep-alive connection just as we reused it.
            ex.retries += 1
            ex.out = list(ex.retry_log)
            ex.out_size = ex.retry_size
            ex.retry_log = None
            self.proxy._connect(ex)
            return
        if ex.status >= 200 and not ex.resp_framed:
            # A response delimited by the end of the connection is complete now.
            self.proxy._finish(ex, ex.status, time.perf_counter())
            down.exchange_done(ex, False)
            return
        down.bad_gateway(ex, "the model closed the connection")

    def data_received(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:  # nothing asked: a misbehaving upstream
            self.abandon()
            return
        ex.resp_started = True
        if not ex.down.closed:
            ex.down.transport.write(data)
        if self.tunnel:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._done is None and ex.upgrade and ex.status == 101:
                self.tunnel = True
                ex.down.start_tunnel(self)
                return
            if self._done is None:  # a switch the client did not ask for
                self.ex = None
                ex.up = None
                self.closed = True
                self.transport.close()
                ex.down.bad_gateway(ex, "the model switched protocols unasked")
                return
            # Bytes after a complete response that llhttp took for a switch: nothing more
            # on this connection can be trusted.
            self._extra = True
        except httptools.HttpParserError:
            if self._head_complete is not None:  # llhttp disliked what it took for a body
                self._finish_head()
                return
            if self._done is not None:  # junk after a complete response
                self._extra = True
            else:
                _log.warning("the model sent a response the proxy cannot parse; closing")
                self.ex = None
                ex.up = None
                self.closed = True
                self.transport.close()
                ex.down.bad_gateway(ex, "unparseable response")
                return
        if self._head_complete is not None:
            self._finish_head()
        elif self._done is not None:
            done, self._done = self._done, None
            extra, self._extra = self._extra, False
            self._complete(*done, reusable=not extra)

    def _finish_head(self) -> None:
        ex, status, keep_alive = self._head_complete  # type: ignore[misc]
        self._head_complete = None
        self._done = None
        self._extra = False
        self.parser = httptools.HttpResponseParser(self)
        self._complete(ex, status, keep_alive)

    def pause_writing(self) -> None:
        ex = self.ex
        if ex is not None:
            ex.down.pause_reading()

    def resume_writing(self) -> None:
        ex = self.ex
        if ex is not None:
            ex.down.resume_reading()

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        ex = self.ex
        if ex is None or self._done is not None:
            self._extra = True  # a second response nobody asked for
            return
        ex.resp_framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.ex
        if ex is None or self._skip or self._done is not None:
            return
        n = len(name)
        if n == 14 or n == 17 or n == 16:
            lower = name.lower()
            if lower == b"content-length" or lower == b"transfer-encoding":
                ex.resp_framed = True
            elif lower == b"content-encoding":
                ex.resp_encoding = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        ex = self.ex
        if ex is None or self._skip or self._done is not None:
            return
        status = self.parser.get_status_code()
        ex.status = status
        ex.resp_keep_alive = self.parser.should_keep_alive()
        if status == 204 or status == 304 or status < 200:
            ex.resp_framed = True
        if ex.capture:
            ex.resp_body = []
        if status >= 200 and ex.method == b"HEAD":
            # No body follows, whatever Content-Length says, but llhttp would wait for one:
            # ignore this parser from here and complete once `feed_data` returns.
            self._skip = True
            self._head_complete = (ex, status, ex.resp_keep_alive)

    def on_body(self, body: bytes) -> None:
        ex = self.ex
        if ex is None or self._skip or not ex.capture or self._done is not None:
            return
        ex.resp_size += len(body)
        if ex.resp_size > self.proxy.capturer.max_body_bytes:  # type: ignore[union-attr]
            ex.resp_body = None
            self.proxy._oversize(ex, "response")
        else:
            ex.resp_body.append(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        ex = self.ex
        if ex is None or self._skip or self._done is not None:
            return
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the final response follows
            return
        if ex.upgrade and status == 101:
            return  # HttpParserUpgrade follows; the connection becomes a tunnel
        self._done = (ex, status, ex.resp_keep_alive)

    def _complete(
        self, ex: _Exchange, status: int, keep_alive: bool, *, reusable: bool = True
    ) -> None:
        self.ex = None
        ex.up = None
        proxy = self.proxy
        proxy._finish(ex, status, time.perf_counter())
        if reusable and keep_alive and ex.request_done:
            proxy._pool_put(self)
        else:
            self.closed = True
            self.transport.close()
        ex.down.exchange_done(ex, keep_alive)


class Proxy:
    """The proxy server: client connections, the upstream pool, stats and capture."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        stats: CollectorStats | None = None,
        capturer: Capturer | None = None,
        tracing: Tracing | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.stats = stats or CollectorStats()
        self.capturer = capturer
        self.tracing = tracing if tracing is not None and tracing.enabled else None
        self._wall = wall_clock
        self._connections: set[_Downstream] = set()
        #: Idle client connections, the one idle the longest first (shed first at the cap).
        self._idle: dict[_Downstream, None] = {}
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        fd_cap = (soft - 64) // 2 if soft != resource.RLIM_INFINITY else settings.max_connections
        self.max_connections = max(16, min(settings.max_connections, fd_cap))
        self._sweeper: asyncio.TimerHandle | None = None
        self._pool: list[_Upstream] = []
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "0.0.0.0", port: int = 0) -> int:
        """Listen; returns the bound port."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Downstream(self), host, port, backlog=4096, reuse_address=True
        )
        self._schedule_sweep()
        return self._server.sockets[0].getsockname()[1]

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def close(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), close everything."""
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._connections):
            conn.draining = True
            if not conn.queue and conn.cur is None:
                conn.close()
        deadline = time.monotonic() + self.settings.shutdown_timeout_s
        while self._connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self._connections):
            conn.close()
        for up in self._pool:
            up.closed = True
            up.transport.close()
        self._pool.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        await asyncio.sleep(0)  # let transports finish closing

    # -- client connections: the cap and the timeouts --

    def _accepted(self, conn: _Downstream) -> None:
        conns = self._connections
        if len(conns) >= self.max_connections:
            if self._idle:
                oldest = next(iter(self._idle))
                del self._idle[oldest]
                self.stats.connections_closed["shed"] += 1
                oldest.close()
            else:
                self.stats.connections_closed["refused"] += 1
                conn.closed = True
                conn.transport.write(
                    simple_response(503, "Service Unavailable", "too many connections")
                )
                conn.transport.close()
                return
        conns.add(conn)
        self._idle[conn] = None
        self.stats.connections = len(conns)

    def _lost(self, conn: _Downstream) -> None:
        self._connections.discard(conn)
        self._idle.pop(conn, None)
        self.stats.connections = len(self._connections)

    def _schedule_sweep(self) -> None:
        s = self.settings
        shortest = min(s.header_timeout_s, s.body_timeout_s, s.idle_timeout_s, s.upstream_timeout_s)
        interval = min(1.0, max(0.02, shortest / 4))
        assert self._loop is not None
        self._sweeper = self._loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Close what waited too long; runs a few times per shortest timeout."""
        try:
            self.sweep(time.perf_counter())
        finally:
            if self._server is not None and self._server.is_serving():
                self._schedule_sweep()

    def sweep(self, now: float) -> None:
        s = self.settings
        for conn in list(self._connections):
            if conn.closed or conn.tunnel:
                continue
            queue = conn.queue
            if queue:
                ex = queue[0]
                if (
                    ex.up is not None
                    and ex.request_done
                    and not ex.resp_started
                    and now - max(ex.t_up, ex.t_done) > s.upstream_timeout_s
                ):
                    conn.gateway_timeout(ex)
                    continue
            cur = conn.cur
            if cur is not None:
                if not cur.head_done:
                    if now - cur.t0 > s.header_timeout_s:
                        conn.timeout(
                            "header_timeout",
                            f"request head not complete within {s.header_timeout_s:g}s",
                        )
                elif now - conn.t_read > s.body_timeout_s:
                    conn.timeout("body_timeout", f"request body stalled for {s.body_timeout_s:g}s")
            elif not queue and conn.held is None:
                # idle: a fresh connection must send its first request as fast as a head
                limit = s.idle_timeout_s if conn.served else s.header_timeout_s
                if now - max(conn.t_idle, conn.t_read) > limit:
                    conn.timeout("idle_timeout" if conn.served else "header_timeout", "")

    # -- upstream pool --

    def _activate(self, ex: _Exchange) -> None:
        """Send an exchange's head to the model (its body follows as it arrives)."""
        trace = (
            self.tracing.start(ex.traceparent, ex.method.decode("latin-1"))
            if self.tracing
            else None
        )
        headers = ex.headers
        if trace is not None:
            ex.trace = trace
            ex.trace_id = trace.trace_id
            headers = [(n, v) for n, v in headers if n.lower() != b"traceparent"]
            headers.append((b"traceparent", trace.traceparent))
        parts = [ex.method, b" ", ex.url, _VERSIONS.get(ex.version) or b" HTTP/1.1\r\n"]
        for name, value in headers:
            parts.append(name + b": " + value + _CRLF)
        parts.append(_CRLF)
        head = b"".join(parts)
        pool = self._pool
        while pool:
            up = pool.pop()
            if up.closed or up.transport.is_closing():
                continue
            up.attach(ex)
            ex.retry_log = [head, *ex.out]
            ex.retry_size = len(head) + ex.out_size
            ex.t_up = time.perf_counter()
            down = ex.down
            if down.in_feed:
                down.wbuf.append(head)
                down.wbuf.extend(ex.out)
                down.wup = up
            else:
                up.transport.write(b"".join([head, *ex.out]) if ex.out else head)
            if ex.out:
                ex.out = []
                ex.out_size = 0
                down.resume_reading()
            return
        ex.out.insert(0, head)
        ex.out_size += len(head)
        self._connect(ex)

    def _connect(self, ex: _Exchange) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._open(ex))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, ex: _Exchange) -> None:
        s = self.settings
        assert self._loop is not None
        try:
            _, up = await asyncio.wait_for(
                self._loop.create_connection(
                    lambda: _Upstream(self), s.upstream_host, s.upstream_port
                ),
                s.connect_timeout_s,
            )
        except (OSError, TimeoutError) as e:
            ex.down.bad_gateway(
                ex,
                f"cannot connect to the model on port {s.upstream_port} ({e.__class__.__name__})",
            )
            return
        if ex.down.closed:
            self._pool_put(up)
            return
        up.attach(ex)
        ex.t_up = time.perf_counter()
        write = up.transport.write
        for chunk in ex.out:
            write(chunk)
        ex.out = []
        ex.out_size = 0
        ex.down.resume_reading()

    def _pool_put(self, up: _Upstream) -> None:
        if up.closed:
            return
        if len(self._pool) >= self.settings.pool_size or (
            self._server is not None and not self._server.is_serving()
        ):
            up.closed = True
            up.transport.close()
            return
        self._pool.append(up)

    def _pool_discard(self, up: _Upstream) -> None:
        with contextlib.suppress(ValueError):
            self._pool.remove(up)

    # -- accounting and capture --

    def _count_own(self, status: int | str, ex: _Exchange | None = None) -> None:
        """A request answered by the proxy itself, cut off, or abandoned by its client."""
        self.stats.requests[status] += 1
        if ex is not None:
            self.stats.duration.observe(time.perf_counter() - ex.t0)
            if ex.trace is not None:
                ex.trace.upstream_done(None)
                ex.trace.finish(status if isinstance(status, int) else None)
                ex.trace = None

    def _finish(self, ex: _Exchange, status: int, t_end: float) -> None:
        stats = self.stats
        stats.requests[status] += 1
        duration = t_end - ex.t0
        upstream = t_end - ex.t_up
        stats.duration.observe(duration)
        stats.overhead.observe(duration - upstream if duration > upstream else 0.0)
        trace = ex.trace
        if trace is not None:
            trace.upstream_done(status)
        if ex.capture:
            ex.capture = False
            capturer = self.capturer
            assert capturer is not None
            if 200 <= status < 300 and ex.resp_body is not None and ex.req_body is not None:
                span = trace.enqueue_span() if trace is not None else None
                capturer.submit(
                    b"".join(ex.req_body),
                    b"".join(ex.resp_body),
                    request_id=ex.rid,
                    ts=self._wall(),
                    latency_ms=upstream * 1000.0,
                    trace_id=ex.trace_id,
                    request_encoding=ex.req_encoding,
                    response_encoding=ex.resp_encoding,
                    route=ex.path.decode("latin-1"),
                )
                if span is not None:
                    span.end()
            elif 200 <= status < 300:
                ex.capture = True
                self._drop_capture(ex, "incomplete", "no response body was kept")
            else:
                capturer.reject(
                    "upstream_status",
                    f"the model answered {status}",
                    ts=self._wall(),
                    request_id=ex.rid,
                    deadletter=False,
                )
        if trace is not None:
            trace.finish(status)
            ex.trace = None

    def _oversize(self, ex: _Exchange, which: str) -> None:
        self._drop_capture(
            ex,
            "oversize",
            f"{which} body larger than {self.capturer.max_body_bytes} bytes",  # type: ignore[union-attr]
        )

    def _drop_capture(self, ex: _Exchange, reason: str, detail: str) -> None:
        """A captured exchange that yields no event: counted and dead-lettered, once."""
        if not ex.capture:
            return
        ex.capture = False
        if self.capturer is not None:
            self.capturer.reject(
                reason,
                detail,
                ts=self._wall(),
                request_id=ex.rid,
                route=ex.path.decode("latin-1"),
            )
