"""The injected sidecar reaches a TLS / SASL Kafka: Secrets mounted as files, named to the
collector by DRIFTWARDEN_KAFKA_* variables that it parses back into the same settings."""

from __future__ import annotations

from typing import Any

import pytest

from collector.injector import InjectorConfig, InjectorConfigError, decide, make_config
from driftwarden.kafka import security_from_args
from tests.kits.injector import apply, model_pod, review

OPT_IN = {"driftwarden.io/inject": "true"}
SASL_SSL = {
    "protocol": "SASL_SSL",
    "username": "collector",
    "password_secret": "dw-kafka-collector",
    "ca_secret": "kafka-cluster-ca-cert",
}


def _injected(cfg: InjectorConfig, pod: dict[str, Any] | None = None) -> dict[str, Any]:
    pod = pod or model_pod(OPT_IN)
    out = apply(pod, decide(review(pod)["request"], cfg).patch)
    (side,) = [
        c
        for c in out["spec"].get("initContainers", []) + out["spec"]["containers"]
        if c["name"] == "driftwarden-collector"
    ]
    return {"pod": out, "sidecar": side}


def test_sasl_ssl_mounts_the_secrets_and_the_collector_reads_the_same_settings() -> None:
    cfg = make_config(kafka_security=SASL_SSL)
    got = _injected(cfg)
    env = {e["name"]: e["value"] for e in got["sidecar"]["env"] if "value" in e}
    parsed, _ = security_from_args([], env)
    assert parsed == cfg.kafka_security.security()
    assert parsed.password_file is not None and parsed.ca_file is not None
    assert env["DRIFTWARDEN_KAFKA_PASSWORD_FILE"] == "/etc/driftwarden/kafka/sasl/password"
    volumes = {v["name"]: v for v in got["pod"]["spec"]["volumes"]}
    sasl = volumes["driftwarden-kafka-sasl"]["secret"]
    assert sasl["secretName"] == "dw-kafka-collector"
    assert sasl["items"] == [{"key": "password", "path": "password"}]
    assert volumes["driftwarden-kafka-ca"]["secret"]["secretName"] == "kafka-cluster-ca-cert"
    mounts = {m["name"]: m for m in got["sidecar"]["volumeMounts"]}
    for name in ("driftwarden-kafka-sasl", "driftwarden-kafka-ca"):
        assert mounts[name]["readOnly"] is True
        assert "subPath" not in mounts[name]  # the kubelet updates rotated Secrets in place
    # the model's own containers get none of it
    model = got["pod"]["spec"]["containers"][0]
    assert not any(m["name"].startswith("driftwarden-kafka") for m in model.get("volumeMounts", []))
    assert "DRIFTWARDEN_KAFKA_PASSWORD_FILE" not in {e["name"] for e in model.get("env", [])}


def test_mutual_tls_mounts_certificate_and_key() -> None:
    cfg = make_config(
        kafka_security={"protocol": "SSL", "cert_secret": "collector-tls", "ca_secret": "ca"}
    )
    env = {e["name"]: e["value"] for e in _injected(cfg)["sidecar"]["env"] if "value" in e}
    assert env["DRIFTWARDEN_KAFKA_CERT_FILE"] == "/etc/driftwarden/kafka/client/tls.crt"
    assert env["DRIFTWARDEN_KAFKA_KEY_FILE"] == "/etc/driftwarden/kafka/client/tls.key"
    assert "DRIFTWARDEN_KAFKA_USERNAME" not in env
    parsed, _ = security_from_args([], env)
    assert parsed == cfg.kafka_security.security()


def test_plaintext_adds_nothing() -> None:
    got = _injected(make_config())
    assert not any(e["name"].startswith("DRIFTWARDEN_KAFKA_") for e in got["sidecar"]["env"])
    assert not any(v["name"].startswith("driftwarden-kafka") for v in got["pod"]["spec"]["volumes"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"protocol": "SASL_SSL", "password_secret": "p"}, "kafka_security: username is required"),
        ({"protocol": "SASL_SSL", "username": "u"}, "password_secret is required"),
        ({"ca_secret": "ca"}, "ca_secret/cert_secret need protocol SSL or SASL_SSL"),
        ({"protocol": "SSL", "ca_secret": "Bad_Name"}, "kafka_security.ca_secret: 'Bad_Name'"),
        ({"protocol": "SSL", "ca_key": "../x"}, "is not a Secret key"),
        ({"protocol": "TLS"}, "kafka_security.protocol"),
        ({"protcol": "SSL"}, "kafka_security.protcol"),
        (
            {**SASL_SSL, "protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "ca_secret": ""},
            "PLAIN sends the password in clear text",
        ),
    ],
)
def test_bad_settings_are_one_line_naming_the_field(values: dict[str, Any], message: str) -> None:
    with pytest.raises(InjectorConfigError) as info:
        make_config(kafka_security=values)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "--kafka" not in str(info.value)


def test_a_pod_volume_with_the_same_name_is_not_injected() -> None:
    pod = model_pod(OPT_IN)
    pod["spec"]["volumes"] = [{"name": "driftwarden-kafka-sasl", "emptyDir": {}}]
    decision = decide(review(pod)["request"], make_config(kafka_security=SASL_SSL))
    assert decision.outcome == "skipped" and decision.reason == "name_conflict"
    assert not decision.patch
