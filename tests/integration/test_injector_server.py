"""The webhook over real HTTPS on 127.0.0.1: reviews, fuzzed bodies and raw bytes (never a
5xx), limits, certificate reload, the metrics port, and the CLI process's clean stop."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.injector.certs import make_certs, write_certs
from driftwarden.services.ports import free_port
from tests.kits.injector import apply, model_pod, review, running_injector

pytestmark = pytest.mark.integration
OPT_IN = {"driftwarden.io/inject": "true"}


def _ctx(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def _post(conn: http.client.HTTPSConnection, path: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


@pytest.fixture(scope="module")
def injector(tmp_path_factory: pytest.TempPathFactory):
    with running_injector(tmp_path_factory.mktemp("inj"), reload_interval_s=0.2) as inj:
        yield inj


def test_review_round_trip_over_https_with_keep_alive(injector: Any) -> None:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", injector.port, context=_ctx(injector.ca_file), timeout=5
    )
    try:
        for i in range(3):
            pod = model_pod(OPT_IN)
            status, body = _post(
                conn, "/mutate?timeout=3s", json.dumps(review(pod, uid=f"u{i}")).encode()
            )
            assert status == 200
            answer = json.loads(body)
            assert answer["apiVersion"] == "admission.k8s.io/v1"
            assert answer["response"]["uid"] == f"u{i}" and answer["response"]["allowed"]
            patched = apply(pod, json.loads(base64.b64decode(answer["response"]["patch"])))
            assert patched["spec"]["initContainers"][-1]["name"] == "driftwarden-collector"
        status, body = _post(conn, "/mutate", json.dumps(review(model_pod())).encode())
        assert status == 200 and "patch" not in json.loads(body)["response"]
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        assert (
            'driftwarden_injector_reviews_total{outcome="injected",reason="named_port"}' in metrics
        )
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok\n"
    finally:
        conn.close()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=30,
)


def _mutated_review(draw_value: Any, where: str) -> bytes:
    r = review(model_pod(OPT_IN))
    node: Any = r
    path = where.split(".")
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = draw_value
    return json.dumps(r).encode()


_bodies = st.one_of(
    st.binary(max_size=2000),
    _json.map(lambda v: json.dumps(v).encode()),
    st.tuples(
        _json,
        st.sampled_from(
            [
                "request",
                "request.uid",
                "request.kind",
                "request.object",
                "request.object.metadata",
                "request.object.metadata.annotations",
                "request.object.spec",
                "request.object.spec.containers",
                "request.operation",
                "apiVersion",
            ]
        ),
    ).map(lambda t: _mutated_review(*t)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_bodies, path=st.sampled_from(["/mutate", "/mutate/namespace", "/metrics", "/x"]))
def test_fuzzed_bodies_never_get_a_5xx(injector: Any, body: bytes, path: str) -> None:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", injector.port, context=_ctx(injector.ca_file), timeout=5
    )
    try:
        status, out = _post(conn, path, body)
    finally:
        conn.close()
    assert status < 500
    if path.startswith("/mutate") and status == 200:
        answer = json.loads(out)["response"]
        assert answer["allowed"] is True and isinstance(answer["uid"], str)
    elif path.startswith("/mutate"):
        assert status == 400 and json.loads(out)["error"] in ("bad_json", "not_admission_review")


def _raw(injector: Any, data: bytes) -> bytes:
    """Send bytes over TLS and read until the server closes (or 2 s pass)."""
    with (
        socket.create_connection(("127.0.0.1", injector.port), timeout=2) as raw,
        _ctx(injector.ca_file).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(data)
        chunks = []
        try:
            while chunk := tls.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ssl.SSLError, ConnectionResetError):
            pass
        return b"".join(chunks)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(min_size=1, max_size=500).map(lambda b: b + b"\r\n\r\n"))
def test_raw_garbage_gets_a_4xx_or_a_close(injector: Any, data: bytes) -> None:
    out = _raw(injector, data)
    if out:
        status = int(out.split(b" ", 2)[1])
        assert 400 <= status < 500, out[:200]


def test_limits_and_expect_continue(injector: Any) -> None:
    big = b'{"x": "' + b"a" * (9 * 1024 * 1024) + b'"}'
    conn = http.client.HTTPSConnection(
        "127.0.0.1", injector.port, context=_ctx(injector.ca_file), timeout=10
    )
    try:
        status, body = _post(conn, "/mutate", big)
    finally:
        conn.close()
    assert status == 413 and json.loads(body)["error"] == "too_large"
    out = _raw(injector, b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ")
    body = json.dumps(review(model_pod(OPT_IN), uid="e1")).encode()
    head = (
        b"POST /mutate HTTP/1.1\r\nExpect: 100-continue\r\nHost: a\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    with (
        socket.create_connection(("127.0.0.1", injector.port), timeout=5) as raw,
        _ctx(injector.ca_file).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(head)
        assert tls.recv(100).startswith(b"HTTP/1.1 100 Continue")
        tls.sendall(body)
        rest = b""
        while chunk := tls.recv(65536):
            rest += chunk
    assert rest.startswith(b"HTTP/1.1 200 OK") and b'"uid":"e1"' in rest


def test_certificate_is_reloaded_when_the_files_change(tmp_path: Path) -> None:
    with running_injector(tmp_path, reload_interval_s=0.1) as inj:
        old_ca = tmp_path / "old-ca.crt"
        old_ca.write_bytes(inj.ca_file.read_bytes())
        fresh = tmp_path / "fresh"
        write_certs(make_certs(["localhost"], ["127.0.0.1"]), fresh)
        os.replace(fresh / "tls.key", inj.certs / "tls.key")
        os.replace(fresh / "tls.crt", inj.certs / "tls.crt")
        deadline = time.monotonic() + 10
        while inj.server.tls.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert inj.server.tls.reloads == 1
        conn = http.client.HTTPSConnection(
            "127.0.0.1", inj.port, context=_ctx(fresh / "ca.crt"), timeout=5
        )
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok\n"
        conn.close()
        stale = http.client.HTTPSConnection("127.0.0.1", inj.port, context=_ctx(old_ca), timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError):
            stale.request("GET", "/healthz")
        stale.close()
        # A broken pair (half-written Secret) keeps the last good one in service.
        (inj.certs / "tls.crt").write_bytes(b"not a certificate")
        time.sleep(0.5)
        conn = http.client.HTTPSConnection(
            "127.0.0.1", inj.port, context=_ctx(fresh / "ca.crt"), timeout=5
        )
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok\n"
        conn.close()


def test_plain_metrics_port(tmp_path: Path) -> None:
    with running_injector(tmp_path, metrics_port=free_port()) as inj:
        conn = http.client.HTTPConnection("127.0.0.1", inj.server.metrics_port, timeout=5)
        conn.request("GET", "/metrics")
        assert b"driftwarden_injector_reviews_total" in conn.getresponse().read()
        status, _ = _post(conn, "/mutate", json.dumps(review(model_pod(OPT_IN))).encode())
        assert status == 404
        conn.close()


def test_cli_process_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    write_certs(make_certs(["localhost"], ["127.0.0.1"]), tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "driftwarden", "injector", "run", "--host", "127.0.0.1"),
            *("--port", str(port), "--cert-file", str(tmp_path / "tls.crt")),
            *("--key-file", str(tmp_path / "tls.key"), "--log-format", "json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPSConnection(
                    "127.0.0.1", port, context=_ctx(tmp_path / "ca.crt"), timeout=2
                )
                conn.request("GET", "/healthz")
                answer = conn.getresponse()
                assert (answer.status, answer.read()) == (200, b"ok\n")
                conn.close()
                break
            except OSError:
                assert proc.poll() is None, "injector exited before listening"
                assert time.monotonic() < deadline, "injector did not listen within 30 s"
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
        logs = [json.loads(line) for line in out.splitlines()]
        assert any("listening" in entry["msg"] for entry in logs)
        assert logs[-1]["msg"] == "stopping"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_pipelined_requests_are_answered_in_order(injector: Any) -> None:
    """Thousands of pipelined reviews sent before reading any answer: the server pauses
    reading while its write buffer is full and resumes, answering every one, in order."""
    n = 1500
    bodies = [json.dumps(review(model_pod(OPT_IN), uid=f"p{i}")).encode() for i in range(n)]
    data = b"".join(
        b"POST /mutate HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%b" % (len(b), b)
        for b in bodies
    )
    data += b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", injector.port), timeout=30) as raw,
        _ctx(injector.ca_file).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(data)
        out = bytearray()
        while chunk := tls.recv(1 << 20):
            out += chunk
    uids = [m.decode() for m in re.findall(rb'"uid":"(p\d+)"', bytes(out))]
    assert uids == [f"p{i}" for i in range(n)]
    assert out.count(b"HTTP/1.1 200 OK") == n + 1
