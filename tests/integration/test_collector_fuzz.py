"""Fuzzed bodies and headers through the proxy, with capture and Kafka delivery on: the
proxy never answers 5xx itself, answers exactly what the model answers whenever the
request is valid HTTP, and the collector keeps working afterwards."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.settings import CollectorSettings, parse_config
from tests.kits.collector import CollectorThread, ModelServer
from driftwarden.services import KafkaBroker

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
