"""Fuzzed bodies and headers through the proxy, with capture and Kafka delivery on: the
proxy never answers 5xx itself, answers exactly what the model answers whenever the
request is valid HTTP, and the collector keeps working afterwards. Then random model
behaviours (slow, hanging, cut off, 500, bytes after the answer, Upgrade headers on a 200)
meet random clients (reading, walking away) and random byte streams, and the invariants
hold: each response reaches only the client that asked, the proxy keeps serving, every
captured request ends as one event or one counted rejection, and nothing grows unbounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import struct
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.settings import CollectorSettings, parse_config
from driftwarden.services import KafkaBroker
from tests.kits.collector import CollectorThread, LoopThread, ModelServer

pytestmark = pytest.mark.integration

_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")


@pytest.fixture(scope="module")
def stack(
    kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModelServer, CollectorThread]]:
    with ModelServer() as model:
        s = CollectorSettings(
            model="fuzz",
            model_port=model.port,
            port=0,
            admin_port=0,
            host="127.0.0.1",
            bootstrap=kafka.bootstrap,
            spool_dir=tmp_path_factory.mktemp("spool"),
            config=parse_config(
                {"topic_prefix": f"fz{uuid.uuid4().hex[:8]}", "proxy": {"max_header_bytes": 8192}}
            ),
        )
        with CollectorThread(s) as collector:
            yield model, collector


def exchange(port: int, data: bytes) -> int | None:
    """Status of the first response to `data`, None when the connection just closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while len(buf) < 12:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    m = _STATUS.match(buf)
    return int(m.group(1)) if m else None


token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    min_size=1,
    max_size=20,
)
header_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
json_like = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["instances", "inputs", "predictions", "a", "name", "shape", "data"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)
body = st.one_of(
    st.binary(max_size=300),
    json_like.map(lambda v: __import__("json").dumps(v).encode()),
    st.lists(st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=4), max_size=4).map(
        lambda rows: __import__("json").dumps({"instances": rows}).encode()
    ),
)
path = st.sampled_from(
    ["/v1/models/fuzz:predict", "/v2/models/fuzz/infer", "/predict", "/echo", "/health", "/nope"]
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["POST", "PUT", "GET", "DELETE", "PATCH"]),
    path=path,
    headers=st.lists(st.tuples(token, header_value), max_size=6),
    body=body,
    chunked=st.booleans(),
)
def test_valid_http_is_answered_as_the_model_answers(
    stack, method, path, headers, body, chunked
) -> None:
    model, collector = stack
    lines = [f"{method} {path} HTTP/1.1", "Host: fuzz"]
    lines += [
        f"{k}: {v}"
        for k, v in headers
        if k.lower()
        not in ("content-length", "transfer-encoding", "connection", "host", "expect", "upgrade")
    ]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
    direct = exchange(model.port, request)
    proxied = exchange(collector.port, request)
    assert proxied is not None and proxied < 500
    assert proxied == direct


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.one_of(
        st.binary(max_size=400),
        st.builds(
            lambda head, junk: head + junk,
            st.sampled_from(
                [
                    b"POST /v1/models/fuzz:predict HTTP/1.1\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\n",
                    b"POST /predict HTTP/1.1\r\nContent-Length: 5\r\n",
                ]
            ),
            st.binary(max_size=200),
        ),
        st.builds(
            lambda name, value: b"GET / HTTP/1.1\r\n" + name + b": " + value + b"\r\n\r\n",
            st.binary(min_size=1, max_size=30),
            st.binary(max_size=60),
        ),
    )
)
def test_garbage_never_gets_a_5xx_from_the_proxy(stack, raw: bytes) -> None:
    _, collector = stack
    status = exchange(collector.port, raw)
    assert status is None or status < 500


def test_collector_still_healthy_after_fuzzing(stack) -> None:
    _, collector = stack
    assert collector.service.delivery.alive and collector.service.proxy.serving
    assert collector.service.delivery.wait_idle(30)
    assert collector.service.stats.requests.get(502, 0) == 0
    assert not any(reason == "internal_error" for _, reason in collector.service.stats.dropped())


# --- random model behaviours and client behaviours (issue 18) -----------------------------

BEHAVIOURS = ("ok", "slow", "chunked", "status500", "close_mid", "hang", "extra", "upgrade200")


async def _misbehaving_model(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads requests on `/v1/models/fuzz:predict?b=<behaviour>&id=<id>` and answers as told;
    every byte of an answer that carries a body names the id it answers."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            target = head.split(b" ")[1]
            query = dict(
                part.split(b"=", 1)
                for part in target.partition(b"?")[2].split(b"&")
                if b"=" in part
            )
            b, rid = query.get(b"b", b"ok"), query.get(b"id", b"-")
            body = b'{"predictions": [0.5], "id": "%b"}' % rid
            ok = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
            if b == b"slow":
                await asyncio.sleep(0.1)
            elif b == b"hang":
                await asyncio.sleep(60)
            elif b == b"status500":
                ok = b"HTTP/1.1 500 X\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
            elif b == b"close_mid":
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n" + body[:40])
                await writer.drain()
                return
            elif b == b"chunked":
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                for part in (body[:10], body[10:]):
                    writer.write(b"%x\r\n%b\r\n" % (len(part), part))
                    await writer.drain()
                ok = b"0\r\n\r\n"
            elif b == b"extra":
                ok += b"HTTP/1.1 200 OK\r\ncontent-length: 90\r\n\r\nleftover"
            elif b == b"upgrade200":
                ok = ok.replace(b"200 OK\r\n", b"200 OK\r\nconnection: upgrade\r\nupgrade: x\r\n")
            writer.write(ok)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture(scope="module")
def misbehaving(
    kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorThread]:
    lt = LoopThread()
    server = lt.run(asyncio.start_server(_misbehaving_model, "127.0.0.1", 0))

    async def stop() -> None:
        server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        s = CollectorSettings(
            model="fuzz",
            model_port=server.sockets[0].getsockname()[1],
            port=0,
            admin_port=0,
            host="127.0.0.1",
            bootstrap=kafka.bootstrap,
            spool_dir=tmp_path_factory.mktemp("spool-mis"),
            config=parse_config(
                {
                    "topic_prefix": f"fm{uuid.uuid4().hex[:8]}",
                    "proxy": {"upstream_timeout_s": 0.5, "header_timeout_s": 2.0},
                }
            ),
        )
        with CollectorThread(s) as collector:
            yield collector
    finally:
        lt.run(stop())
        lt.close()


def _read_all(s: socket.socket, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    buf = b""
    with contextlib.suppress(OSError):
        while chunk := s.recv(65536):
            buf += chunk
    return buf


_ID = re.compile(rb"c\d+-\d+")
_COUNTED = (200, 500, 502, 504, 499, "aborted")
_rss_first: list[int] = []


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    clients=st.lists(
        st.tuples(st.sampled_from(BEHAVIOURS), st.sampled_from(["read", "read", "abandon"])),
        min_size=1,
        max_size=6,
    ),
    garbage=st.lists(st.binary(min_size=1, max_size=200), max_size=2),
)
def test_random_model_and_client_behaviours_keep_the_invariants(
    misbehaving: CollectorThread, clients: list[tuple[str, str]], garbage: list[bytes]
) -> None:
    c = misbehaving
    stats = c.service.stats
    if not _rss_first:
        _rss_first.append(_rss())
    n = len(_rss_first)
    _rss_first.append(0)
    before_requests = {k: stats.requests.get(k, 0) for k in _COUNTED}
    before_sent = stats.sent().get("fuzz", 0)
    before_upstream = stats.dropped().get(("fuzz", "upstream_status"), 0)
    socks = []
    for i, (behaviour, _) in enumerate(clients):
        rid = f"c{n}-{i}"
        body = b'{"instances": [{"a": %d}]}' % i
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        s.sendall(
            b"POST /v1/models/fuzz:predict?b=%b&id=%b HTTP/1.1\r\nHost: f\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%b"
            % (behaviour.encode(), rid.encode(), len(body), body)
        )
        socks.append(s)
    for junk in garbage:
        with socket.create_connection(("127.0.0.1", c.port), timeout=10) as g:
            g.sendall(junk)
            g.shutdown(socket.SHUT_WR)
            _read_all(g)
    time.sleep(0.05)
    for i, ((_, mode), s) in enumerate(zip(clients, socks, strict=True)):
        if mode == "abandon":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            continue
        got = _read_all(s)
        s.close()
        # every response reaches the client that asked for it, and no other
        assert set(_ID.findall(got)) <= {f"c{n}-{i}".encode()}, got
        assert got.startswith(b"HTTP/1.1 "), got
    # the proxy keeps serving
    with socket.create_connection(("127.0.0.1", c.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/models/fuzz:predict?b=ok&id=c%d-h HTTP/1.1\r\nHost: f\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}" % n
        )
        assert _read_all(s).endswith(b'"id": "c%d-h"}' % n)
    # every captured request yields exactly one event or one counted rejection
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and stats.connections:
        time.sleep(0.01)
    assert c.service.delivery.wait_idle(30)
    captured = sum(stats.requests.get(k, 0) - before_requests[k] for k in _COUNTED)
    events = stats.sent().get("fuzz", 0) - before_sent
    upstream = stats.dropped().get(("fuzz", "upstream_status"), 0) - before_upstream
    assert captured == events + upstream
    # nothing grows without bound: connections, idle set, pool, series
    assert stats.connections == 0 and not c.service.proxy._idle
    assert len(c.service.proxy._pool) <= 256
    assert len(stats.dropped()) <= 8 and set(stats.sent()) == {"fuzz"}
    assert _rss() - _rss_first[0] < 200 * 1024 * 1024


def test_after_the_random_behaviours_the_collector_is_healthy(misbehaving: CollectorThread) -> None:
    c = misbehaving
    assert c.service.delivery.alive and c.service.delivery.healthy
    assert c.service.stats.restarts == 0
    assert not any(reason == "internal_error" for _, reason in c.service.stats.dropped())
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{c.admin_port}/metrics", timeout=10).read()
    assert len(metrics) < 64 * 1024  # a bounded number of series
