"""`/v1/feedback` authentication over real sockets against a real collector (issue 15): no
token or a wrong one is 401 and writes nothing, the right one is 202 and reaches Kafka, a
rotated token file is followed without a restart, and `/metrics` and `/healthz` stay open.
(The loopback-only default refusing another peer is tested on the decision function in
tests/unit/test_feedback_auth_security.py: tests may only contact 127.0.0.1.)"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.settings import CollectorSettings, parse_config
from driftwarden.kafka import Topics
from driftwarden.schema import decode_feedback
from driftwarden.services import KafkaBroker
from tests.kits.collector import CollectorThread, ModelServer, read_topic

pytestmark = pytest.mark.integration


def _request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _feedback(port: int, id_: str, token: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return _request(port, "POST", "/v1/feedback", {"id": id_, "label": 1}, headers)


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def collector(
    kafka: KafkaBroker, model: ModelServer, tmp_path: Path
) -> Iterator[tuple[CollectorThread, Path, str]]:
    prefix = f"fa{uuid.uuid4().hex[:10]}"
    tokens = tmp_path / "feedback-tokens"
    tokens.write_text("first-token-5Yc\n")
    settings = CollectorSettings(
        model="credit",
        model_port=model.port,
        port=0,
        admin_port=0,
        host="127.0.0.1",
        bootstrap=kafka.bootstrap,
        spool_dir=tmp_path / "spool",
        config=parse_config({"topic_prefix": prefix}),
        feedback_token_file=tokens,
    )
    with CollectorThread(settings) as c:
        yield c, tokens, prefix


def test_feedback_needs_the_bearer_token_and_only_accepted_labels_reach_kafka(
    collector: tuple[CollectorThread, Path, str], kafka: KafkaBroker
) -> None:
    c, _, prefix = collector
    status, headers, body = _feedback(c.admin_port, "no-token", None)
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert json.loads(body) == {"error": "unauthorized", "detail": "a bearer token is required"}
    status, _, body = _feedback(c.admin_port, "wrong-token", "second-token")
    assert status == 401 and json.loads(body)["detail"] == "the bearer token is not valid"
    assert b"first-token" not in body
    status, _, body = _feedback(c.admin_port, "right-token", "first-token-5Yc")
    assert (status, json.loads(body)) == (202, {"accepted": 1})
    # probes and Prometheus need no token
    status, _, body = _request(c.admin_port, "GET", "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = _request(c.admin_port, "GET", "/metrics")
    assert status == 200 and b"# TYPE" in body
    assert c.service.delivery.wait_idle(30)
    got = read_topic(kafka.bootstrap, Topics.with_prefix(prefix).feedback, at_least=1)
    assert [decode_feedback(v).id for _, v, _ in got] == ["right-token"]


def test_a_rotated_token_file_is_followed_without_a_restart(
    collector: tuple[CollectorThread, Path, str],
) -> None:
    c, tokens, _ = collector
    assert _feedback(c.admin_port, "a", "first-token-5Yc")[0] == 202
    tokens.write_text("first-token-5Yc\nsecond-token-Qp9\n")  # add the new token
    deadline = time.monotonic() + 10
    while _feedback(c.admin_port, "b", "second-token-Qp9")[0] != 202:
        assert time.monotonic() < deadline, "the new token was not accepted within 10 s"
        time.sleep(0.2)
    assert _feedback(c.admin_port, "c", "first-token-5Yc")[0] == 202  # both, mid-rotation
    tokens.write_text("second-token-Qp9\n")  # remove the old one
    deadline = time.monotonic() + 10
    while _feedback(c.admin_port, "d", "first-token-5Yc")[0] != 401:
        assert time.monotonic() < deadline, "the old token was still accepted after 10 s"
        time.sleep(0.2)
    assert _feedback(c.admin_port, "e", "second-token-Qp9")[0] == 202
    assert _feedback(c.admin_port, "f", None)[0] == 401
