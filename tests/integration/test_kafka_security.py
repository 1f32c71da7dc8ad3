"""Every component over SASL_SSL with its least ACLs (driftwarden.kafka.component_acls),
against a real broker with TLS, SCRAM and StandardAuthorizer (the `secure_kafka` fixture);
wrong credentials and missing ACLs are one clear line, and the collector keeps its events
in the spool until the operator fixes them (issue 15, docs/security.md)."""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collector.settings import CollectorSettings, parse_config
from driftwarden.kafka import KafkaAccessError, Topics, component_acls
from driftwarden.schema import decode_feedback, decode_prediction
from retrain_trigger.lineage import LineageLog, step
from tests.kits.collector import CollectorThread, ModelServer, read_topic
from tests.kits.secure_kafka import SecureKafka

pytestmark = pytest.mark.integration


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _post(port: int, path: str, body: Any, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=json.dumps(body), headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _collector(
    kit: SecureKafka, prefix: str, model: ModelServer, tmp_path: Path, security: Any, **kw: Any
) -> CollectorSettings:
    config = kw.pop("config", {})
    return CollectorSettings(
        model="credit",
        model_port=model.port,
        port=0,
        admin_port=0,
        host="127.0.0.1",
        bootstrap=kit.bootstrap,
        spool_dir=tmp_path / "spool",
        config=parse_config({"topic_prefix": prefix, **config}),
        kafka_security=security,
        **kw,
    )


def _predict(port: int, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        status = _post(
            port,
            "/v1/models/credit:predict",
            {"instances": [{"age": i, "country": "DE", "email": f"user{i}@example.com"}]},
            {"X-Request-ID": f"r-{i}"},
        )
        assert status == 200


@pytest.fixture(scope="module")
def model() -> Any:
    with ModelServer() as server:
        yield server


def test_collector_over_sasl_ssl_with_least_acls(
    secure_kafka: SecureKafka, model: ModelServer, tmp_path: Path
) -> None:
    kit = secure_kafka
    prefix = kit.new_prefix()
    who = kit.principal("collector", prefix)
    token = tmp_path / "feedback.token"
    token.write_text("tok-one\n")
    s = _collector(kit, prefix, model, tmp_path, kit.security(who), feedback_token_file=token)
    with CollectorThread(s) as c:
        _predict(c.port, 20)
        auth = {"Authorization": "Bearer tok-one"}
        assert _post(c.admin_port, "/v1/feedback", {"id": "r-1", "label": 1}, auth) == 202
        assert c.service.delivery.wait_idle(60)
        assert c.service.delivery.access_errors == {}
    t = Topics.with_prefix(prefix)
    preds = read_topic(kit.admin_bootstrap, t.predictions, at_least=20)
    assert sorted(decode_prediction(v).id for _, v, _ in preds) == sorted(
        f"r-{i}" for i in range(20)
    )
    (fb,) = [decode_feedback(v) for _, v, _ in read_topic(kit.admin_bootstrap, t.feedback)]
    assert (fb.id, fb.label) == ("r-1", 1)


def test_collector_with_a_wrong_password_spools_and_recovers_when_the_secret_rotates(
    secure_kafka: SecureKafka, model: ModelServer, tmp_path: Path, caplog: Any
) -> None:
    kit = secure_kafka
    prefix = kit.new_prefix()
    who = kit.principal("collector", prefix)
    secret = tmp_path / "password"
    secret.write_text("not-the-password\n")
    s = _collector(kit, prefix, model, tmp_path, kit.security(who, password_file=secret))
    caplog.set_level(logging.INFO)
    with CollectorThread(s) as c:
        _predict(c.port, 10)
        delivery = c.service.delivery
        _wait(lambda: delivery.spool.pending_bytes > 0, 60, "events in the spool")
        _wait(lambda: bool(delivery.access_errors), 30, "the access error")
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        auth = [r for r in errors if "authentication failed" in r.getMessage()]
        assert len(auth) == 1, [r.getMessage() for r in errors]
        assert auth[0].exc_info is None and "\n" not in auth[0].getMessage()
        assert "--kafka-password-file" in auth[0].getMessage()
        assert delivery.stats.dropped() == {}, "nothing lost meanwhile"
        secret.write_text(who.password + "\n")  # the Secret is fixed: no restart
        _wait(delivery.idle, 90, "the spool replayed with the rotated password")
    got = read_topic(kit.admin_bootstrap, Topics.with_prefix(prefix).predictions, at_least=10)
    assert sorted(decode_prediction(v).id for _, v, _ in got) == sorted(f"r-{i}" for i in range(10))


def test_collector_without_an_acl_keeps_events_in_the_spool_and_says_so_once(
    secure_kafka: SecureKafka, model: ModelServer, tmp_path: Path, caplog: Any
) -> None:
    kit = secure_kafka
    prefix = kit.new_prefix()
    who = kit.user(f"no-acl-{prefix}")
    s = _collector(kit, prefix, model, tmp_path, kit.security(who))
    caplog.set_level(logging.INFO)
    with CollectorThread(s) as c:
        _predict(c.port, 5)
        delivery = c.service.delivery
        _wait(lambda: delivery.spool.pending_bytes > 0, 60, "events in the spool")
        _wait(lambda: bool(delivery.access_errors), 30, "the access error")
        lines = [r.getMessage() for r in caplog.records if "lacks an ACL" in r.getMessage()]
        assert len(lines) == 1 and f"User:{who.name}" in lines[0], lines
        kit.grant(who.name, component_acls(prefix)["collector"])  # the operator fixes it
        _wait(delivery.idle, 120, "the spool replayed after the ACL was added")
    t = Topics.with_prefix(prefix)
    got = read_topic(kit.admin_bootstrap, t.predictions, at_least=5)
    assert len({decode_prediction(v).id for _, v, _ in got}) == 5
    assert read_topic(kit.admin_bootstrap, t.deadletter, at_least=0, timeout=3) == []


def test_lineage_over_sasl_ssl_and_a_missing_acl_is_one_line(
    secure_kafka: SecureKafka,
) -> None:
    kit = secure_kafka
    prefix = kit.new_prefix()
    topic = Topics.with_prefix(prefix).lineage
    log = LineageLog(kit.bootstrap, topic, security=kit.security(kit.principal("trigger", prefix)))
    log.ensure_topic()  # exists: no CREATE ACL needed
    log.append(step("fraud", "alert", "fp-1", ts=1.0))
    log.append(step("fraud", "decision", "fp-1", ts=2.0, decision="launched"))
    assert log.flush(30) == 0 and log.failed == 0
    assert [e.step for e in log.history("fraud", timeout=20)] == ["alert", "decision"]
    log.close()
    stranger = kit.user(f"stranger-{prefix}")
    denied = LineageLog(kit.bootstrap, topic, security=kit.security(stranger))
    with pytest.raises(KafkaAccessError) as info:
        denied.history("fraud", timeout=20)
    assert f"User:{stranger.name} lacks an ACL on topic {topic}" in str(info.value)
    assert "\n" not in str(info.value)


def test_wrong_password_is_one_line_for_the_trigger(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    kit = secure_kafka
    prefix = kit.new_prefix()
    who = kit.principal("trigger", prefix)
    bad = tmp_path / "bad"
    bad.write_text("wrong")
    log = LineageLog(
        kit.bootstrap,
        Topics.with_prefix(prefix).lineage,
        security=kit.security(who, password_file=bad),
    )
    t0 = time.monotonic()
    with pytest.raises(KafkaAccessError, match=r"authentication failed .*SCRAM-SHA-512") as info:
        log.ensure_topic()
    assert time.monotonic() - t0 < 15, "failed fast, not after a retry loop"
    assert who.password not in str(info.value) and "wrong" not in str(info.value)
