"""Every component over SASL_SSL with its least ACLs (driftwarden.kafka.component_acls),
against a real broker with TLS, SCRAM and StandardAuthorizer (the `secure_kafka` fixture);
wrong credentials and missing ACLs are one clear line, and the collector keeps its events
in the spool until the operator fixes them (issue 15, docs/security.md)."""

from __future__ import annotations

import http.client
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from collector.settings import CollectorSettings, parse_config
from driftwarden.kafka import KafkaAccessError, Topics, component_acls
from driftwarden.schema import decode_feedback, decode_prediction
from retrain_trigger.lineage import LineageLog, step
from tests.kits.collector import CollectorThread, ModelServer, read_topic
from tests.kits.secure_kafka import SecureKafka
from tests.kits.waiting import wait_until

pytestmark = pytest.mark.integration


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
        wait_until(lambda: delivery.spool.pending_bytes > 0, 60, "events in the spool")
        wait_until(lambda: bool(delivery.access_errors), 30, "the access error")
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        auth = [r for r in errors if "authentication failed" in r.getMessage()]
        assert len(auth) == 1, [r.getMessage() for r in errors]
        assert auth[0].exc_info is None and "\n" not in auth[0].getMessage()
        assert "--kafka-password-file" in auth[0].getMessage()
        assert delivery.stats.dropped() == {}, "nothing lost meanwhile"
        secret.write_text(who.password + "\n")  # the Secret is fixed: no restart
        wait_until(delivery.idle, 90, "the spool replayed with the rotated password")
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
        wait_until(lambda: delivery.spool.pending_bytes > 0, 60, "events in the spool")
        wait_until(lambda: bool(delivery.access_errors), 30, "the access error")
        lines = [r.getMessage() for r in caplog.records if "lacks an ACL" in r.getMessage()]
        assert len(lines) == 1 and f"User:{who.name}" in lines[0], lines
        kit.grant(who.name, component_acls(prefix)["collector"])  # the operator fixes it
        wait_until(delivery.idle, 120, "the spool replayed after the ACL was added")
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


# --- detectors ---------------------------------------------------------------------------


def _detector_settings(kit: SecureKafka, prefix: str, specs: Path, security: Any) -> Any:
    from detectors.service import ServiceSettings

    return ServiceSettings(
        specs=specs,
        bootstrap=kit.bootstrap,
        topic_prefix=prefix,
        group_id=f"{prefix}-det",
        instance_id="sec",
        metrics_port=0,
        metrics_host="127.0.0.1",
        checkpoint_interval_s=0.5,
        transaction_timeout_s=10.0,
        kafka_security=security,
    )


def test_detectors_over_sasl_ssl_with_least_acls(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """Reads predictions and feedback, writes window results, checkpoints and a dead letter
    in its transactions, with exactly the ACLs of docs/security.md."""
    import threading

    from detectors.service import start_service
    from tests.kits.detectors import SyntheticModel, consume_all, produce, read_results

    kit = secure_kafka
    prefix = kit.new_prefix()
    group = f"{prefix}-det"
    who = kit.principal("detectors", prefix, detectors_group=group)
    model = SyntheticModel("churn", n_numerical=2, n_categorical=1, seed=3)
    model.write(tmp_path / "specs", reference_rows=2000, window_rows=500)
    stream = model.stream(1000, seed=4)
    t = Topics.with_prefix(prefix)
    produce(kit.admin_bootstrap, t.predictions, [*stream.records(), (b"churn", b"{broken")])
    produce(kit.admin_bootstrap, t.feedback, stream.feedback_records())
    settings = _detector_settings(kit, prefix, tmp_path / "specs", kit.security(who))
    stop = threading.Event()
    service, thread = start_service(settings, stop)
    try:
        wait_until(
            lambda: {r.seq for r in service.history if r.kind == "drift"} >= {1, 2},
            90,
            "two committed drift windows",
        )
    finally:
        stop.set()
        thread.join(60)
    assert not thread.error, thread.error  # type: ignore[attr-defined]
    results = read_results(kit.admin_bootstrap, f"{prefix}.windows", min_count=2)
    assert {(r.kind, r.seq) for r in results} >= {("drift", 1), ("drift", 2)}
    assert consume_all(kit.admin_bootstrap, f"{prefix}.checkpoints", min_count=1)
    letters = consume_all(kit.admin_bootstrap, t.deadletter, min_count=1)
    assert [dict(m.headers())["driftwarden.reason"] for m in letters] == [b"malformed_json"]


def test_detectors_with_a_wrong_password_exit_with_one_error_line(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from tests.kits.detectors import SyntheticModel

    kit = secure_kafka
    prefix = kit.new_prefix()
    who = kit.principal("detectors", prefix, detectors_group=f"{prefix}-det")
    SyntheticModel("churn", n_numerical=1, n_categorical=0).write(
        tmp_path / "specs", reference_rows=200, window_rows=100
    )
    bad = tmp_path / "wrong-password"
    bad.write_text("definitely-not-it\n")
    args = [
        sys.executable,
        "-m",
        "detectors.service",
        "--specs",
        str(tmp_path / "specs"),
        "--bootstrap",
        kit.bootstrap,
        "--topic-prefix",
        prefix,
        "--group-id",
        f"{prefix}-det",
        "--metrics-port",
        "0",
        "--metrics-host",
        "127.0.0.1",
        "--kafka-security-protocol",
        "SASL_SSL",
        "--kafka-ca-file",
        str(kit.ca_file),
        "--kafka-username",
        who.name,
        "--kafka-password-file",
        str(bad),
    ]
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=90)
    took = time.monotonic() - t0
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "authentication failed (SASL_SSL SCRAM-SHA-512 as" in errors[0], errors[0]
    assert "Traceback" not in proc.stderr and "definitely-not-it" not in proc.stderr
    assert who.password not in proc.stderr + proc.stdout
    assert took < 60, f"failed after {took:.0f}s: a retry loop?"


# --- dataset export ----------------------------------------------------------------------


def test_dataset_export_over_sasl_ssl_with_least_acls(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    import subprocess
    import sys

    import pandas as pd
    from confluent_kafka import Producer

    from driftwarden.kafka import producer_config
    from driftwarden.schema import FeedbackEvent, PredictionEvent, encode_event

    kit = secure_kafka
    prefix = kit.new_prefix()
    t = Topics.with_prefix(prefix)
    producer = Producer(producer_config(kit.admin_bootstrap))
    now = time.time()
    for i in range(6):
        ev = PredictionEvent(
            id=f"p{i}", model="credit", version="v1", ts=now - 60 + i,
            features={"age": 30 + i}, prediction=0.5,
        )  # fmt: skip
        producer.produce(t.predictions, encode_event(ev), key=b"credit")
    for i in range(4):
        fb = FeedbackEvent(id=f"p{i}", model="credit", ts=now - 50 + i, label=i % 2)
        producer.produce(t.feedback, encode_event(fb), key=b"credit")
    assert producer.flush(30) == 0
    who = kit.principal("dataset", prefix)
    out = tmp_path / "data.csv"
    run = subprocess.run(
        [
            sys.executable, "-m", "driftwarden", "dataset", "export",
            "--model", "credit", "--since", "1h", "-o", str(out),
            "--bootstrap", kit.bootstrap, "--topic-prefix", prefix,
            "--kafka-security-protocol", "SASL_SSL", "--kafka-ca-file", str(kit.ca_file),
            "--kafka-username", who.name, "--kafka-password-file", str(who.password_file),
        ],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "4 rows (4 labelled) from 6 predictions" in run.stderr, run.stderr
    frame = pd.read_csv(out)
    assert frame["id"].tolist() == ["p0", "p1", "p2", "p3"]
    assert frame["label"].tolist() == [0, 1, 0, 1]
    assert who.password not in run.stderr + run.stdout


# --- no leaks ----------------------------------------------------------------------------


def test_nothing_secret_leaks(
    secure_kafka: SecureKafka, model: ModelServer, tmp_path: Path, caplog: Any, capfd: Any
) -> None:
    """The capture flow over SASL_SSL with redaction on, a feedback token, a wrong token, a
    malformed pair and an oversize feedback: no redacted value, salt, password or token
    in any topic (values, keys, headers), log line, stderr, HTTP answer or /metrics; error
    details are truncated."""
    import secrets as _secrets

    from collector.sdk import CollectorClient
    from tests.kits.detectors import consume_all

    kit = secure_kafka
    prefix = kit.new_prefix()
    who = kit.principal("collector", prefix)
    mark = _secrets.token_hex(6)
    email, ssn, salt = f"leak-email-{mark}@example.com", f"leak-ssn-{mark}", f"leak-salt-{mark}"
    sdk_email = f"leak-sdk-{mark}@example.com"
    token, wrong_token = f"fb-token-{mark}", f"fb-wrong-{mark}"
    deep_secret = f"leak-deep-{mark}"
    tokens = tmp_path / "feedback.token"
    tokens.write_text(token + "\n")
    config = {"redact": {"features": ["email", "ssn"], "mode": "hash", "salt": salt}}
    s = _collector(
        kit, prefix, model, tmp_path, kit.security(who), feedback_token_file=tokens, config=config
    )
    caplog.set_level(logging.DEBUG)
    answers: list[bytes] = []

    def call(path: str, body: bytes, headers: dict[str, str]) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            answers.append(resp.read())
            return resp.status
        finally:
            conn.close()

    with CollectorThread(s) as c:
        port = c.port
        for i in range(5):
            row = {"age": 30 + i, "country": "DE", "email": email, "ssn": ssn}
            body = json.dumps({"instances": [row]}).encode()
            assert call("/v1/models/credit:predict", body, {"X-Request-ID": f"r-{i}"}) == 200
        # a pair that cannot be captured: its detail (a 100 KB feature name) is cut short
        bad_row = {"email": email, "k" * 100_000 + deep_secret: {"nested": ssn}}
        body = json.dumps({"instances": [bad_row]}).encode()
        assert call("/v1/models/credit:predict", body, {"X-Request-ID": "r-bad"}) == 200
        port = c.admin_port
        fb = json.dumps({"id": "r-1", "label": 1}).encode()
        assert call("/v1/feedback", fb, {"Authorization": f"Bearer {wrong_token}"}) == 401
        assert call("/v1/feedback", fb, {"Authorization": f"Bearer {token}"}) == 202
        # a label for another model named by a long secret: refused, the name cut short
        other = json.dumps({"id": "r-2", "label": 0, "model": "m" * 100 + email}).encode()
        assert call("/v1/feedback", other, {"Authorization": f"Bearer {token}"}) == 422
        huge = json.dumps({"id": "r-3", "label": ssn * 200_000}).encode()
        assert call("/v1/feedback", huge, {"Authorization": f"Bearer {token}"}) == 413
        assert c.service.delivery.wait_idle(60)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read()
        conn.close()
    with CollectorClient(
        model="credit",
        bootstrap=kit.bootstrap,
        topic_prefix=prefix,
        redact=["email"],
        kafka_security=kit.security(who),
    ) as sdk:
        sdk.log_prediction({"age": 50, "email": sdk_email}, 0.7, id="sdk-1")
        assert sdk.flush(60)

    t = Topics.with_prefix(prefix)
    records = {
        topic: consume_all(kit.admin_bootstrap, topic, min_count=n, read_committed=False)
        for topic, n in ((t.predictions, 6), (t.feedback, 1), (t.deadletter, 1))
    }
    preds = [json.loads(m.value()) for m in records[t.predictions]]
    assert sorted(p["id"] for p in preds) == ["r-0", "r-1", "r-2", "r-3", "r-4", "sdk-1"]
    hashed = {p["features"].get("email") for p in preds if p["id"] != "sdk-1"}
    assert len(hashed) == 1 and hashed.pop().startswith("h:"), "redacted by hash, not dropped"
    assert "email" not in next(p for p in preds if p["id"] == "sdk-1")["features"]
    (letter,) = [json.loads(m.value()) for m in records[t.deadletter]]
    assert letter["reason"] == "unsupported_value" and letter["request_id"] == "r-bad"
    assert len(letter["detail"]) <= 500, "a dead letter's detail is truncated"

    secrets_used = {email, ssn, salt, sdk_email, token, wrong_token, deep_secret, who.password}
    secrets_used |= set(kit.passwords)
    haystacks: dict[str, bytes] = {"/metrics": metrics}
    for topic, msgs in records.items():
        for m in msgs:
            parts = [m.key() or b"", m.value() or b""]
            parts += [k.encode() + (v or b"") for k, v in m.headers() or []]
            haystacks[f"{topic}@{m.offset()}"] = b"\n".join(parts)
    for i, answer in enumerate(answers):
        haystacks[f"http answer {i}"] = answer
        assert len(answer) < 1000, f"http answer {i} is not truncated: {len(answer)} bytes"
    out, err = capfd.readouterr()
    haystacks["stdout"], haystacks["stderr"] = out.encode(), err.encode()
    for r in caplog.records:
        line = r.getMessage()
        assert len(line) < 2000, f"log line not truncated: {line[:200]}..."
        haystacks[f"log {r.name}:{r.lineno}"] = (
            line + (caplog.text if r.exc_info else "")
        ).encode()
    leaks = [
        (where, secret)
        for where, text in haystacks.items()
        for secret in secrets_used
        if secret.encode() in text
    ]
    assert not leaks, leaks
    assert any("SASL_SSL SCRAM-SHA-512 as" in r.getMessage() for r in caplog.records), (
        "the collector's logs were captured"
    )


def test_detectors_without_the_transactional_id_acl_stop_with_one_line(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    import threading

    from detectors.service import start_service
    from driftwarden.errors import DriftwardenError
    from tests.kits.detectors import SyntheticModel

    kit = secure_kafka
    prefix = kit.new_prefix()
    group = f"{prefix}-det"
    acls = [
        a
        for a in component_acls(prefix, detectors_group=group)["detectors"]
        if a.resource != "transactional_id"
    ]
    who = kit.user(f"detectors-no-txn-{prefix}", acls)
    SyntheticModel("churn", n_numerical=1, n_categorical=0).write(
        tmp_path / "specs", reference_rows=200, window_rows=100
    )
    settings = _detector_settings(kit, prefix, tmp_path / "specs", kit.security(who))
    stop = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(DriftwardenError) as info:
        _, thread = start_service(settings, stop, timeout=90)
        stop.set()
        thread.join(30)
    assert str(info.value) == (
        f"kafka {kit.bootstrap}: User:{who.name} lacks a WRITE ACL on transactional id "
        f"{group}.sec (see docs/security.md)"
    )
    assert time.monotonic() - t0 < 60, "no retry loop"
