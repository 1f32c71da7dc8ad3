"""The proxy against the trivial model on loopback (no Kafka): requests and responses pass
unchanged, streaming, HEAD, 100-continue, keep-alive and its races, upgrades, and the
proxy's own answers (400, 431, 502)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from collector.metrics import CollectorStats
from collector.proxy import Proxy, ProxySettings
from tests.kits.collector import LoopThread, ModelServer, proxy_to


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


def raw_exchange(port: int, data: bytes, *, expect_close: bool = True, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not expect_close:
                break
        return b"".join(chunks)


def test_request_reaches_the_model_unchanged(model: ModelServer) -> None:
    with proxy_to(model.port) as (port, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        headers = {"X-Custom-Case": "MiXeD", "X-Request-ID": "r-1", "Content-Type": "text/plain"}
        conn.request("POST", "/echo?a=1&b=%20x", body=b"hello body", headers=headers)
        resp = conn.getresponse()
        echoed = json.loads(resp.read())
        conn.close()
    assert resp.status == 200
    assert echoed["method"] == "POST" and echoed["url"] == "/echo?a=1&b=%20x"
    assert echoed["body"] == "hello body"
    sent = [tuple(h) for h in echoed["headers"] if h[0].lower() != "host"]
    assert ("X-Custom-Case", "MiXeD") in sent and ("X-Request-ID", "r-1") in sent
    names = [k for k, _ in echoed["headers"]]
    assert names.index("X-Custom-Case") < names.index("X-Request-ID")  # order kept


def test_response_bytes_are_identical_to_the_models(model: ModelServer) -> None:
    req = (
        b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\n"
        b'Connection: close\r\n\r\n{"instances": [[1, 2, 3]]}\n'
    )
    direct = raw_exchange(model.port, req)
    with proxy_to(model.port) as (port, _):
        proxied = raw_exchange(port, req)
    assert proxied == direct and proxied.startswith(b"HTTP/1.1 200")


def test_chunked_request_and_streamed_response(model: ModelServer) -> None:
    req = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    with proxy_to(model.port) as (port, _):
        body = raw_exchange(port, req)
        assert b'"body":"hello world"' in body
        stream = raw_exchange(port, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    direct = raw_exchange(
        model.port, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert stream == direct and b"transfer-encoding: chunked" in stream


def test_keep_alive_head_statuses_and_close(model: ModelServer) -> None:
    with proxy_to(model.port) as (port, proxy):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for method, path, status in [
            ("GET", "/health", 200),
            ("HEAD", "/anything", 200),
            ("GET", "/status/503", 503),
            ("GET", "/status/404", 404),
            ("POST", "/v1/models/m:predict", 400),  # the model's own 400 for a bad body
            ("GET", "/health", 200),
        ]:
            conn.request(method, path, body=b"x" if method == "POST" else None)
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == status, (method, path)
            if method == "HEAD":
                assert data == b"" and resp.getheader("content-length") == "5"
        conn.request("GET", "/close")
        resp = conn.getresponse()
        assert resp.read() == b"ok" and resp.getheader("connection") == "close"
        conn.close()
        # the proxy counts a request right after forwarding its last byte: poll briefly
        deadline = time.monotonic() + 5
        while proxy.stats.duration.count < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.stats.requests[200] == 4 and proxy.stats.requests[503] == 1
        assert proxy.stats.duration.count == 7 and proxy.stats.overhead.count == 7


def test_expect_100_continue(model: ModelServer) -> None:
    # the trivial model does not send 100 itself; an interim response from a model that
    # does is forwarded and the final response still completes the exchange
    async def model_with_continue(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await reader.readexactly(4)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
        await writer.drain()
        writer.close()

    lt = LoopThread()
    server = lt.run(asyncio.start_server(model_with_continue, "127.0.0.1", 0))
    try:
        with proxy_to(server.sockets[0].getsockname()[1]) as (port, _):
            out = raw_exchange(
                port,
                b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody",
            )
        assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
        assert out.endswith(b"done")
    finally:
        server.close()
        lt.run(server.wait_closed())
        lt.close()


def test_a_reused_connection_closed_by_the_model_is_retried() -> None:
    """The model answers one request per connection and then closes the connection when
    the next request arrives, without answering (an idle keep-alive timeout race)."""
    served = {"connections": 0}

    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        served["connections"] += 1
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"GET")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read(1)  # the next request: drop it on the floor
        writer.close()

    lt = LoopThread()
    server = lt.run(asyncio.start_server(one_per_connection, "127.0.0.1", 0))
    try:
        with proxy_to(server.sockets[0].getsockname()[1]) as (port, proxy):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for _ in range(3):
                conn.request("GET", "/")
                resp = conn.getresponse()
                assert (resp.status, resp.read()) == (200, b"ok")
            conn.close()
            assert proxy.stats.requests.get(502, 0) == 0
        assert served["connections"] >= 3
    finally:
        server.close()
        lt.run(server.wait_closed())
        lt.close()


def test_upgrade_becomes_a_tunnel() -> None:
    async def ws_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n"
        )
        data = await reader.read(100)
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()

    lt = LoopThread()
    server = lt.run(asyncio.start_server(ws_echo, "127.0.0.1", 0))
    try:
        with (
            proxy_to(server.sockets[0].getsockname()[1]) as (port, _),
            socket.create_connection(("127.0.0.1", port), timeout=5) as s,
        ):
            s.sendall(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n"
            )
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1000)
            assert head.startswith(b"HTTP/1.1 101")
            s.sendall(b"raw bytes")
            got = head.split(b"\r\n\r\n", 1)[1]
            while b"raw bytes" not in got:
                got += s.recv(100)
            assert got == b"echo:raw bytes"
    finally:
        server.close()
        lt.run(server.wait_closed())
        lt.close()


def test_unreachable_model_is_a_502(model: ModelServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    with proxy_to(dead_port) as (port, proxy):
        out = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 502 Bad Gateway") and b"cannot connect" in out
        assert proxy.stats.requests[502] == 1


def test_garbage_and_huge_heads_get_the_proxys_own_4xx(model: ModelServer) -> None:
    with proxy_to(model.port, max_header_bytes=2048) as (port, proxy):
        assert raw_exchange(port, b"\x00\x01garbage\r\n\r\n").startswith(
            b"HTTP/1.1 400 Bad Request"
        )
        huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
        assert raw_exchange(port, huge).startswith(b"HTTP/1.1 431")
        # a valid request followed by garbage on the same connection: answered, then 400
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            first = s.recv(1000)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n\x00garbage\r\n\r\n")
            rest = b""
            while chunk := s.recv(1000):
                rest += chunk
        assert first.startswith(b"HTTP/1.1 200")
        assert rest.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 400 Bad Request" in rest
        assert proxy.stats.requests[400] == 2 and proxy.stats.requests[431] == 1


def test_pipelined_requests_are_answered_in_order(model: ModelServer) -> None:
    reqs = b"".join(
        b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n%b\r\n"
        % (i, b"Connection: close\r\n" if i == 4 else b"")
        for i in range(5)
    )
    with proxy_to(model.port) as (port, _):
        out = raw_exchange(port, reqs)
    positions = [out.index(b'"url":"/echo?n=%d"' % i) for i in range(5)]
    assert positions == sorted(positions)


def test_close_waits_for_in_flight_requests(model: ModelServer) -> None:
    lt = LoopThread()
    proxy = Proxy(
        ProxySettings(upstream_port=model.port, shutdown_timeout_s=5), stats=CollectorStats()
    )
    port = lt.run(proxy.start("127.0.0.1", 0))
    result: dict[str, Any] = {}

    def slow_request() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/slow/300")
        resp = conn.getresponse()
        result["status"], result["body"] = resp.status, resp.read()
        conn.close()

    t = threading.Thread(target=slow_request)
    t.start()
    deadline = time.monotonic() + 5
    while not proxy._connections and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    lt.run(proxy.close())
    t.join(5)
    lt.close()
    assert result == {"status": 200, "body": b"slow"}


def test_a_half_closed_client_still_gets_its_answer(model: ModelServer) -> None:
    with (
        proxy_to(model.port) as (port, _),
        socket.create_connection(("127.0.0.1", port), timeout=5) as s,
    ):
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)  # the client sends FIN right after its request
        out = b""
        while chunk := s.recv(1000):
            out += chunk
    assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(b"ok")
