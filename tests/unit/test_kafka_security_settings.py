"""The Kafka security settings group (driftwarden.kafka.KafkaSecurity): validation is one line
naming the flag, rendering into librdkafka settings, the flag/variable parsing, the
access-error explanations, the password watch, and the ACL table of docs/security.md
against `component_acls()` (issue 15). Pure logic and temporary files: no broker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from driftwarden.kafka import (
    AUTH_ERRORS,
    SECRET_KEYS,
    KafkaSecurity,
    KafkaSecurityError,
    admin_config,
    component_acls,
    consumer_config,
    explain_access,
    producer_config,
    redacted,
    security_environment,
    security_from_args,
    split_security_args,
)
from driftwarden.kafka_access import PasswordWatch

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (
        ("ca", "-----BEGIN CERTIFICATE-----\nca\n"),
        ("cert", "-----BEGIN CERTIFICATE-----\nclient\n"),
        ("key", "-----BEGIN PRIVATE KEY-----\nkey\n"),
        ("password", "s3cret-pass\n"),
    ):
        out[name] = tmp_path / name
        out[name].write_text(text)
    return out


def _sasl(files: dict[str, Path], **kw: Any) -> KafkaSecurity:
    values: dict[str, Any] = {
        "protocol": "SASL_SSL",
        "ca_file": files["ca"],
        "username": "collector",
        "password_file": files["password"],
    }
    values.update(kw)
    return KafkaSecurity(**values)


# --- validation: each bad combination is one line naming the flag ---------------------------

BAD = [
    ({"protocol": "TLS"}, "--kafka-security-protocol"),
    (
        {"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "username": "u"},
        "--kafka-sasl-mechanism",
    ),
    ({"protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}, "OAUTHBEARER is not supported"),
    ({"protocol": "SASL_SSL", "password_file": Path("p")}, "--kafka-username is required"),
    ({"protocol": "SASL_SSL", "username": "u"}, "--kafka-password-file is required"),
    ({"protocol": "SASL_PLAINTEXT", "username": "u"}, "--kafka-password-file is required"),
    ({"protocol": "SSL", "username": "u"}, "--kafka-username/--kafka-password-file need"),
    ({"password_file": Path("p")}, "--kafka-username/--kafka-password-file need"),
    ({"protocol": "SSL", "cert_file": Path("c")}, "--kafka-cert-file and --kafka-key-file"),
    ({"protocol": "SSL", "key_file": Path("k")}, "--kafka-cert-file and --kafka-key-file"),
    ({"ca_file": Path("ca")}, "--kafka-ca-file/--kafka-cert-file/--kafka-key-file need"),
    (
        {
            "protocol": "SASL_PLAINTEXT",
            "username": "u",
            "password_file": Path("p"),
            "cert_file": Path("c"),
            "key_file": Path("k"),
        },
        "need --kafka-security-protocol SSL or SASL_SSL",
    ),
    (
        {
            "protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "username": "u",
            "password_file": Path("p"),
        },
        "--kafka-sasl-mechanism PLAIN sends the password in clear text",
    ),
]


@pytest.mark.parametrize(("values", "flag"), BAD, ids=[b[1][:40] for b in BAD])
def test_a_bad_combination_is_one_line_naming_the_flag(values: dict[str, Any], flag: str) -> None:
    with pytest.raises(KafkaSecurityError) as info:
        KafkaSecurity(**values)
    message = str(info.value)
    assert flag in message
    assert "\n" not in message
    assert message.startswith("--kafka-")


def test_good_combinations_are_accepted_and_normalised(files: dict[str, Path]) -> None:
    assert KafkaSecurity().protocol == "PLAINTEXT"
    s = _sasl(files, protocol=" sasl_ssl ", sasl_mechanism="scram-sha-256")
    assert (s.protocol, s.sasl_mechanism, s.tls, s.sasl) == (
        "SASL_SSL",
        "SCRAM-SHA-256",
        True,
        True,
    )
    tls = KafkaSecurity(protocol="SSL", ca_file=files["ca"], cert_file=files["cert"],
                        key_file=files["key"])  # fmt: skip
    assert (tls.tls, tls.sasl) == (True, False)
    plain_over_tls = _sasl(files, sasl_mechanism="PLAIN")
    assert plain_over_tls.sasl_mechanism == "PLAIN"


def test_an_unreadable_or_empty_secret_file_is_one_line_without_its_content(
    files: dict[str, Path], tmp_path: Path
) -> None:
    missing = _sasl(files, password_file=tmp_path / "nope")
    with pytest.raises(KafkaSecurityError, match=r"^--kafka-password-file .*nope: cannot read it"):
        missing.check()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(KafkaSecurityError, match=r"--kafka-password-file .*the file is empty"):
        _sasl(files, password_file=empty).client_config()
    no_ca = _sasl(files, ca_file=tmp_path / "no-ca.pem")
    with pytest.raises(KafkaSecurityError, match=r"^--kafka-ca-file "):
        no_ca.check()
    good = _sasl(files)
    assert good.check() is good
    assert "s3cret-pass" not in repr(good)


# --- rendering into librdkafka settings ------------------------------------------------------


def test_sasl_ssl_renders_tls_and_sasl_settings_and_reads_the_password_now(
    files: dict[str, Path],
) -> None:
    s = _sasl(files)
    assert s.client_config() == {
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": str(files["ca"]),
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "collector",
        "sasl.password": "s3cret-pass",
    }
    files["password"].write_text("rotated\n")  # a rotated Secret: the next client sees it
    assert s.client_config()["sasl.password"] == "rotated"


def test_mutual_tls_without_hostname_check_renders_the_client_certificate(
    files: dict[str, Path],
) -> None:
    s = KafkaSecurity(
        protocol="SSL",
        ca_file=files["ca"],
        cert_file=files["cert"],
        key_file=files["key"],
        verify_hostname=False,
    )
    assert s.client_config() == {
        "security.protocol": "ssl",
        "ssl.ca.location": str(files["ca"]),
        "ssl.certificate.location": str(files["cert"]),
        "ssl.key.location": str(files["key"]),
        "ssl.endpoint.identification.algorithm": "none",
    }
    assert not any(k.startswith("sasl.") for k in s.client_config())
    assert s.describe() == "SSL"


def test_every_client_config_carries_the_security_settings(files: dict[str, Path]) -> None:
    s = _sasl(files)
    for config in (
        producer_config("b:9093", security=s),
        consumer_config("b:9093", "g", security=s),
        admin_config("b:9093", security=s),
    ):
        assert config["bootstrap.servers"] == "b:9093"
        assert config["security.protocol"] == "sasl_ssl"
        assert config["sasl.password"] == "s3cret-pass"
    # the component's own settings stay, and an explicit override still wins
    p = producer_config("b:9093", security=s, acks=1)
    assert (p["enable.idempotence"], p["acks"]) == (True, 1)
    assert "security.protocol" not in producer_config("b:9092")
    assert producer_config("b:9092", security=KafkaSecurity())["security.protocol"] == "plaintext"


def test_redacted_and_describe_never_show_a_secret(files: dict[str, Path]) -> None:
    s = _sasl(files)
    config = producer_config("b:9093", security=s, **{"ssl.key.password": "kp"})
    shown = redacted(config)
    assert {k for k, v in shown.items() if v == "***"} == SECRET_KEYS & config.keys()
    assert "s3cret-pass" not in repr(shown) and "kp" not in shown.values()
    assert s.describe() == "SASL_SSL SCRAM-SHA-512 as collector"


# --- flags and DRIFTWARDEN_KAFKA_* variables -------------------------------------------------


def test_split_security_args_takes_the_kafka_flags_with_their_values() -> None:
    argv = [
        "--model",
        "m",
        "--kafka-security-protocol",
        "SASL_SSL",
        "--kafka-username=detectors",
        "--bootstrap",
        "k:9093",
        "--no-kafka-verify-hostname",
        "--kafka-ca-file",
        "/ca.pem",
        "--kafka-verify-hostname",
        "--kafka-other",
        "x",
    ]
    ours, rest = split_security_args(argv)
    assert ours == [
        "--kafka-security-protocol",
        "SASL_SSL",
        "--kafka-username=detectors",
        "--no-kafka-verify-hostname",
        "--kafka-ca-file",
        "/ca.pem",
        "--kafka-verify-hostname",
    ]
    assert rest == ["--model", "m", "--bootstrap", "k:9093", "--kafka-other", "x"]
    assert split_security_args([]) == ([], [])


def test_security_from_args_reads_variables_and_flags_win(files: dict[str, Path]) -> None:
    environ = {
        "DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "DRIFTWARDEN_KAFKA_USERNAME": "from-env",
        "DRIFTWARDEN_KAFKA_PASSWORD_FILE": str(files["password"]),
        "DRIFTWARDEN_KAFKA_CA_FILE": str(files["ca"]),
        "DRIFTWARDEN_KAFKA_VERIFY_HOSTNAME": "false",
    }
    s, rest = security_from_args(["--kafka-username", "from-flag", "--port", "1"], environ)
    assert rest == ["--port", "1"]
    assert (s.protocol, s.username, s.password_file, s.ca_file) == (
        "SASL_SSL",
        "from-flag",
        files["password"],
        files["ca"],
    )
    assert s.verify_hostname is False
    plain, rest = security_from_args(["--x"], {})
    assert plain == KafkaSecurity() and rest == ["--x"]


def test_security_from_args_errors_are_one_line() -> None:
    with pytest.raises(KafkaSecurityError, match="--kafka-security-protocol"):
        security_from_args(["--kafka-security-protocol", "bogus"], {})
    with pytest.raises(KafkaSecurityError, match="DRIFTWARDEN_KAFKA_VERIFY_HOSTNAME"):
        security_from_args([], {"DRIFTWARDEN_KAFKA_VERIFY_HOSTNAME": "maybe"})
    with pytest.raises(KafkaSecurityError, match="--kafka-password-file is required"):
        security_from_args(["--kafka-security-protocol=SASL_SSL", "--kafka-username=u"], {})


# --- access errors ---------------------------------------------------------------------------


def test_explain_access_says_what_to_check_in_one_line(files: dict[str, Path]) -> None:
    s = _sasl(files)
    lines = {name: explain_access(name, s, "t.predictions") for name in AUTH_ERRORS}
    assert all("\n" not in line and "s3cret" not in line for line in lines.values())
    assert lines["SASL_AUTHENTICATION_FAILED"] == (
        "authentication failed (SASL_SSL SCRAM-SHA-512 as collector): check --kafka-username "
        "and the password in --kafka-password-file"
    )
    assert lines["_AUTHENTICATION"] == lines["SASL_AUTHENTICATION_FAILED"]
    assert "--kafka-ca-file" in lines["_SSL"]
    assert lines["TOPIC_AUTHORIZATION_FAILED"] == (
        "User:collector lacks an ACL on topic t.predictions (see docs/security.md)"
    )
    assert "READ ACL on consumer group" in lines["GROUP_AUTHORIZATION_FAILED"]
    assert "WRITE ACL on transactional id" in lines["TRANSACTIONAL_ID_AUTHORIZATION_FAILED"]
    assert "cluster ACL" in lines["CLUSTER_AUTHORIZATION_FAILED"]
    assert explain_access("TOPIC_AUTHORIZATION_FAILED", None) == (
        "this client lacks an ACL on topic (see docs/security.md)"
    )
    assert explain_access("_AUTHENTICATION", None).startswith("authentication failed (PLAINTEXT)")
    assert explain_access("UNKNOWN_X", s) == "Kafka refused User:collector: UNKNOWN_X"


def test_password_watch_reports_a_rotated_password_once_at_its_interval(
    files: dict[str, Path],
) -> None:
    s = _sasl(files)
    watch = PasswordWatch(s, interval_s=5.0)
    assert watch.changed(now=100.0) is None  # unchanged
    files["password"].write_text("the-new-one-which-is-longer\n")
    assert watch.changed(now=101.0) is None  # not yet: checked at most every 5 s
    assert watch.changed(now=105.0) == ("collector", "the-new-one-which-is-longer")
    assert watch.changed(now=111.0) is None  # reported once
    files["password"].write_text("")  # mid-rotation: keep the current credentials
    assert watch.changed(now=120.0) is None
    assert PasswordWatch(KafkaSecurity()).changed(now=1.0) is None


# --- the ACL table of docs/security.md is component_acls() ------------------------------------

_ROW = re.compile(
    r"^\| (?P<who>\w+) \| (?P<resource>\w+) \| `(?P<name>[^`]+)`[^|]* \| (?P<pattern>literal|prefixed)"
    r" \| (?P<ops>[\w, ]+) \|$"
)


def _doc_acls() -> set[tuple[str, str, str, bool, frozenset[str]]]:
    text = DOCS.read_text()
    section = text.split("## ACLs", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        m = _ROW.match(line.strip())
        if m:
            ops = frozenset(o.strip().lower() for o in m["ops"].split(","))
            rows.add((m["who"], m["resource"], m["name"], m["pattern"] == "prefixed", ops))
    return rows


def test_the_acl_table_in_docs_is_component_acls() -> None:
    expected = {
        (who, a.resource, a.name, a.prefixed, frozenset(a.operations))
        for who, acls in component_acls().items()
        for a in acls
    }
    documented = _doc_acls()
    assert documented == expected, (
        f"docs/security.md lacks {sorted(expected - documented)}; "
        f"has extra {sorted(documented - expected)}"
    )


# --- the in-process SDK takes the same settings ----------------------------------------------


def test_sdk_configure_reads_the_kafka_variables(files: dict[str, Path]) -> None:
    from collector.sdk import _from_env

    env = {
        "DRIFTWARDEN_MODEL": "m",
        "DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "DRIFTWARDEN_KAFKA_USERNAME": "collector",
        "DRIFTWARDEN_KAFKA_PASSWORD_FILE": str(files["password"]),
        "DRIFTWARDEN_KAFKA_CA_FILE": str(files["ca"]),
    }
    got = _from_env(env)
    assert got["kafka_security"] == _sasl(files)
    assert "kafka_security" not in _from_env({"DRIFTWARDEN_MODEL": "m"})
    with pytest.raises(KafkaSecurityError, match="--kafka-password-file is required"):
        _from_env({"DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                   "DRIFTWARDEN_KAFKA_USERNAME": "u"})  # fmt: skip


def test_sdk_client_with_an_unreadable_password_file_fails_at_once(
    files: dict[str, Path], tmp_path: Path
) -> None:
    from collector.sdk import CollectorClient

    with pytest.raises(KafkaSecurityError, match=r"^--kafka-password-file .*: cannot read it"):
        CollectorClient(
            model="m",
            bootstrap="127.0.0.1:1",
            kafka_security=_sasl(files, password_file=tmp_path / "missing"),
        )


def test_security_environment_reads_back_into_the_same_settings(
    files: dict[str, Path],
) -> None:
    cases = [
        KafkaSecurity(),
        _sasl(files),
        _sasl(files, sasl_mechanism="SCRAM-SHA-256", verify_hostname=False),
        _sasl(files, cert_file=files["cert"], key_file=files["key"]),
        KafkaSecurity(protocol="SSL", ca_file=files["ca"]),
    ]
    for security in cases:
        env = security_environment(security)
        assert all(k.startswith("DRIFTWARDEN_KAFKA_") for k in env)
        assert security_from_args([], env)[0] == security
        assert "s3cret-pass" not in "".join(env.values())  # paths, never the password
    assert security_environment(KafkaSecurity()) == {}
    assert security_environment(cases[2])["DRIFTWARDEN_KAFKA_VERIFY_HOSTNAME"] == "false"


def test_password_watch_hands_a_rotated_password_to_every_client(
    files: dict[str, Path],
) -> None:
    class Client:
        def __init__(self) -> None:
            self.credentials: list[tuple[str, str]] = []

        def set_sasl_credentials(self, username: str, password: str) -> None:
            self.credentials.append((username, password))

    assert PasswordWatch.of(None) is None and PasswordWatch.of(KafkaSecurity()) is None
    watch = PasswordWatch.of(_sasl(files))
    assert watch is not None and watch.interval_s == 1.0
    a, b = Client(), Client()
    assert watch.rotate(10.0, (a, None, b)) is False  # unchanged
    files["password"].write_text("rotated-and-longer\n")
    assert watch.rotate(10.5, (a, None, b)) is False  # checked at most once a second
    assert watch.rotate(11.0, (a, None, b)) is True
    assert a.credentials == b.credentials == [("collector", "rotated-and-longer")]
    assert watch.rotate(12.0, (a, b)) is False  # once
