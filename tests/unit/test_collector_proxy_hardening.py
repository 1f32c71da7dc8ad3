"""Regression tests of issue 18 for the proxy, over real sockets on 127.0.0.1, against model
stand-ins that misbehave on purpose: Upgrade answered without 101, responses followed by
bytes nobody asked for, timeouts (head, body, idle, upstream), the connection cap,
HTTP/0.9 and CONNECT, a model that closes mid-response, and clients that walk away."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.kits.collector import LoopThread, ModelServer, proxy_to

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@contextmanager
def stand_in(handler: Handler) -> Iterator[int]:
    """A model stand-in on 127.0.0.1 (its own loop); yields its port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    async def cancel_handlers() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    lt = LoopThread()
    server = lt.run(asyncio.start_server(serve, "127.0.0.1", 0))
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        lt.run(cancel_handlers())
        lt.run(server.wait_closed())
        lt.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), extra, body)


def recv_until(s: socket.socket, needle: bytes, timeout: float = 5) -> bytes:
    s.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def recv_all(s: socket.socket, timeout: float = 5) -> bytes:
    s.settimeout(timeout)
    buf = b""
    while chunk := s.recv(65536):
        buf += chunk
    return buf


def wait_for(cond: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def echo_path_model(seen: list[bytes]) -> Handler:
    """Answers each request with its path as the body; `/hidden` after 1 s. Ignores Upgrade."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await read_head(reader)
                line = head.split(b"\r\n", 1)[0]
                seen.append(line)
                path = line.split(b" ")[1]
                if path.startswith(b"/hidden"):
                    await asyncio.sleep(1.0)
                writer.write(ok(path))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return handler


# --- item 2: Upgrade and pooled connections ------------------------------------------------


def test_an_upgrade_answered_200_is_no_tunnel_and_crosses_no_responses() -> None:
    seen: list[bytes] = []
    with stand_in(echo_path_model(seen)) as model, proxy_to(model) as (port, proxy):
        attacker = socket.create_connection(("127.0.0.1", port), timeout=5)
        attacker.sendall(
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"
            b"GET /hidden?delay=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as victim:
            victim.sendall(b"GET /victim HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = recv_all(victim)
        assert answer.endswith(b"/victim") and b"/hidden" not in answer
        # The attacker's second request was parsed as HTTP and answered on its connection.
        got = recv_until(attacker, b"/hidden?delay=1")
        attacker.close()
        assert got.count(b"HTTP/1.1 200 OK") == 2 and got.endswith(b"/hidden?delay=1")
        assert b"GET /hidden?delay=1 HTTP/1.1" in seen
        assert wait_for(lambda: proxy.stats.requests[200] == 3)


def test_a_101_still_makes_a_tunnel_and_held_bytes_follow_it() -> None:
    async def ws(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: t\r\nConnection: Upgrade\r\n\r\n"
        )
        data = await reader.readexactly(9)
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()

    with stand_in(ws) as model, proxy_to(model) as (port, proxy):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            # the first tunnel bytes come in the same packet as the head: held, then sent
            s.sendall(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: t\r\nConnection: Upgrade\r\n\r\nraw bytes"
            )
            got = recv_all(s)
        assert got.startswith(b"HTTP/1.1 101") and got.endswith(b"echo:raw bytes")
        assert wait_for(lambda: proxy.stats.requests[101] == 1)


def test_an_upgrade_answered_200_with_upgrade_headers_stays_http() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with_upgrade = b"connection: upgrade\r\nupgrade: foo\r\n"
        try:
            while True:
                head = await read_head(reader)
                path = head.split(b" ")[1]
                writer.write(ok(path, with_upgrade if path == b"/up" else b""))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    with stand_in(handler) as model, proxy_to(model) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
            first = recv_until(s, b"/up")
            s.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            rest = recv_all(s)
        assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"/up")
        assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"/next")


def test_a_connection_with_bytes_after_its_response_is_not_reused() -> None:
    """The model writes its answer plus the start of a response nobody asked for; the next
    client must get its own answer, not the leftover."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await read_head(reader)
                path = head.split(b" ")[1]
                junk = (
                    b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nleft" if path == b"/a" else b""
                )
                writer.write(ok(path) + junk)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    with stand_in(handler) as model, proxy_to(model) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            recv_all(s)
        for i in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /b%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i)
                got = recv_all(s)
            assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"/b%d" % i)
            assert b"left" not in got


# --- item 3: timeouts and the connection cap ----------------------------------------------


def test_a_half_sent_head_gets_408_and_a_silent_connection_closes(model: ModelServer) -> None:
    with proxy_to(model.port, header_timeout_s=0.3) as (port, proxy):
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            got = recv_all(s)
        assert got.startswith(b"HTTP/1.1 408 Request Timeout") and b"head" in got
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            assert recv_all(s) == b""  # closed without a word: it never asked anything
        assert time.monotonic() - t0 < 3
        assert proxy.stats.connections_closed["header_timeout"] == 2
        assert proxy.stats.requests[408] == 1


def test_a_stalled_body_gets_408(model: ModelServer) -> None:
    with proxy_to(model.port, body_timeout_s=0.3) as (port, proxy):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            got = recv_all(s)
        assert (
            got.startswith(b"HTTP/1.1 408") and proxy.stats.connections_closed["body_timeout"] == 1
        )


def test_an_idle_keep_alive_connection_is_closed(model: ModelServer) -> None:
    with proxy_to(model.port, idle_timeout_s=0.3) as (port, proxy):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_until(s, b"ok").startswith(b"HTTP/1.1 200")
            t0 = time.monotonic()
            assert recv_all(s) == b""
            assert 0.2 < time.monotonic() - t0 < 3
        assert proxy.stats.connections_closed["idle_timeout"] == 1


def test_a_hanging_model_gets_a_504_with_the_reason() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(30)

    with stand_in(hang) as model, proxy_to(model, upstream_timeout_s=0.4) as (port, proxy):
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            got = recv_all(s)
        assert got.startswith(b"HTTP/1.1 504 Gateway Timeout")
        assert b"did not answer within 0.4s" in got
        assert time.monotonic() - t0 < 5
        assert proxy.stats.requests[504] == 1 and proxy.stats.requests.get(502, 0) == 0


def test_at_the_cap_the_oldest_idle_connection_is_shed(model: ModelServer) -> None:
    with proxy_to(model.port, max_connections=16) as (port, proxy):
        idle = []
        for _ in range(16):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            n = len(idle)
            assert wait_for(lambda: proxy.stats.connections == n)  # noqa: B023
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert recv_all(s).startswith(b"HTTP/1.1 200")
        assert recv_all(idle[0]) == b""  # the oldest went first
        idle[1].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert recv_all(idle[1]).startswith(b"HTTP/1.1 200")  # the others still serve
        for s in idle:
            s.close()
        assert proxy.stats.connections_closed["shed"] == 1


def test_at_the_cap_with_nothing_idle_a_new_connection_gets_503(model: ModelServer) -> None:
    with proxy_to(model.port, max_connections=16) as (port, proxy):
        busy = []
        for _ in range(16):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /slow/1500 HTTP/1.1\r\nHost: x\r\n\r\n")
            busy.append(s)
        assert wait_for(lambda: proxy.stats.connections == 16 and not proxy._idle)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            assert recv_all(s).startswith(b"HTTP/1.1 503")
        for s in busy:
            assert recv_until(s, b"slow").endswith(b"slow")
            s.close()
        assert proxy.stats.connections_closed["refused"] == 1


# --- item 6: HTTP/0.9, CONNECT, aborted and abandoned responses ----------------------------


def test_http_0_9_and_connect_are_refused_not_forwarded() -> None:
    seen: list[bytes] = []
    with stand_in(echo_path_model(seen)) as model, proxy_to(model) as (port, proxy):
        for raw, status in [
            (b"GET /\r\n\r\n", b"505"),
            (b"GET / HTTP/0.9\r\n\r\n", b"505"),
            (b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", b"405"),
        ]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(raw)
                assert recv_all(s).startswith(b"HTTP/1.1 " + status)
        assert seen == []
        assert proxy.stats.requests[505] == 2 and proxy.stats.requests[405] == 1


def test_a_model_closing_mid_response_is_counted_aborted_not_502() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..")
        await writer.drain()
        writer.close()

    with stand_in(cut) as model, proxy_to(model) as (port, proxy):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            got = recv_all(s)
        assert got.startswith(b"HTTP/1.1 200 OK") and b"502" not in got
        assert wait_for(lambda: proxy.stats.requests["aborted"] == 1)
        assert proxy.stats.requests.get(502, 0) == 0


def test_a_request_abandoned_by_its_client_is_counted_499(model: ModelServer) -> None:
    with proxy_to(model.port) as (port, proxy):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /slow/500 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert wait_for(lambda: proxy.stats.connections == 1)
            time.sleep(0.1)
            # gone for good (a reset; a plain FIN is a half-close that still gets its answer)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert wait_for(lambda: proxy.stats.requests[499] == 1)
        assert proxy.stats.requests.get(200, 0) == 0 and proxy.stats.requests.get(502, 0) == 0


def test_the_proxy_serves_normally_after_all_of_it(model: ModelServer) -> None:
    with proxy_to(model.port, header_timeout_s=0.2, max_connections=16) as (port, _):
        for _ in range(20):  # more connections than the cap, one after another
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert recv_all(s).endswith(b"ok")
