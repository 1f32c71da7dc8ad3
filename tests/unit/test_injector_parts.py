"""The injector's other pure parts: the webhook configuration, certificates, the metrics,
the reconciler's decision, the request handling without sockets, and the CLI."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from collector.injector import (
    InjectorConfig,
    InjectorConfigError,
    InjectorMetrics,
    InjectorStats,
    decide,
    load_config,
    make_certs,
    missing_sidecar,
    service_dns_names,
    webhook_configuration,
)
from collector.injector.certs import not_after
from collector.injector.reconciler import event_body
from collector.injector.server import Webhook
from driftwarden.cli import app
from driftwarden.metrics_catalogue import CATALOGUE
from tests.kits.injector import apply, model_pod, review

CFG = InjectorConfig()


def test_webhook_configuration_is_safe_by_construction() -> None:
    doc = webhook_configuration(ca_bundle=b"PEM", namespace="driftwarden")
    assert doc["kind"] == "MutatingWebhookConfiguration"
    assert doc["apiVersion"] == "admissionregistration.k8s.io/v1"
    hooks = doc["webhooks"]
    assert [h["clientConfig"]["service"]["path"] for h in hooks] == [
        "/mutate",
        "/mutate/namespace",
    ]
    for h in hooks:
        assert h["failurePolicy"] == "Ignore"
        assert h["sideEffects"] == "None"
        assert h["reinvocationPolicy"] == "IfNeeded"
        assert h["admissionReviewVersions"] == ["v1"]
        assert 1 <= h["timeoutSeconds"] <= 5
        assert h["rules"][0]["operations"] == ["CREATE"]
        assert h["rules"][0]["resources"] == ["pods"]
        assert base64.b64decode(h["clientConfig"]["caBundle"]) == b"PEM"
        own = h["namespaceSelector"]["matchExpressions"][0]
        assert own["key"] == "kubernetes.io/metadata.name" and own["operator"] == "NotIn"
        assert {"driftwarden", "kube-system"} <= set(own["values"])
        assert h["objectSelector"]["matchExpressions"][0]["values"] == ["false"]
    # The two namespace selectors are complementary: a pod is reviewed once.
    ops = [h["namespaceSelector"]["matchExpressions"][1]["operator"] for h in hooks]
    assert ops == ["NotIn", "In"]
    by_url = webhook_configuration(
        ca_bundle=b"x", namespace="dw", url="https://127.0.0.1:9443/", timeout_s=2
    )
    assert [h["clientConfig"]["url"] for h in by_url["webhooks"]] == [
        "https://127.0.0.1:9443/mutate",
        "https://127.0.0.1:9443/mutate/namespace",
    ]
    assert "service" not in by_url["webhooks"][0]["clientConfig"]
    with pytest.raises(ValueError, match="timeout"):
        webhook_configuration(ca_bundle=b"x", namespace="dw", timeout_s=60)


def test_certificates_name_the_service_and_chain_to_the_ca() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    names = service_dns_names("inj", "dw")
    bundle = make_certs(names, ["127.0.0.1"], days=30, now=now)
    ca = x509.load_pem_x509_certificate(bundle.ca_cert_pem)
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "inj",
        "inj.dw",
        "inj.dw.svc",
        "inj.dw.svc.cluster.local",
    ]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert not_after(bundle.cert_pem) == (now + dt.timedelta(days=30)).timestamp()
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_metrics_export_every_reason_from_zero() -> None:
    stats = InjectorStats()
    registry = CollectorRegistry()
    registry.register(InjectorMetrics(stats))
    name = "driftwarden_injector_reviews_total"
    assert registry.get_sample_value(name, {"outcome": "injected", "reason": "named_port"}) == 0
    stats.count("skipped", "not_opted_in")
    stats.count("skipped", "not_opted_in")
    assert registry.get_sample_value(name, {"outcome": "skipped", "reason": "not_opted_in"}) == 2
    stats.cert_expiry = 1.9e9
    stats.set_missing({"models": 3})
    # Every family exported is catalogued, with the catalogue's labels.
    for family in registry.collect():
        definition = CATALOGUE.get(family.name) or CATALOGUE[family.name + "_total"]
        for sample in family.samples:
            assert tuple(sample.labels) == definition.labels, sample
    stats.set_missing({})
    assert (
        registry.get_sample_value(
            "driftwarden_injector_pods_missing_sidecar", {"namespace": "models"}
        )
        == 0
    )


def test_webhook_handle_without_sockets() -> None:
    stats = InjectorStats()
    registry = CollectorRegistry()
    registry.register(InjectorMetrics(stats))
    hook = Webhook(CFG, stats, registry)
    body = json.dumps(review(model_pod({"driftwarden.io/inject": "true"}), uid="u1")).encode()
    status, ctype, out = hook.handle("POST", "/mutate?timeout=3s", body)
    answer = json.loads(out)
    assert (status, ctype) == (200, b"application/json")
    assert answer["response"]["uid"] == "u1" and answer["response"]["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(answer["response"]["patch"]))
    assert apply(model_pod({"driftwarden.io/inject": "true"}), patch)["spec"]["initContainers"]
    # Namespace opt-in comes from the path the API server called.
    plain = json.dumps(review(model_pod())).encode()
    assert "patch" not in json.loads(hook.handle("POST", "/mutate", plain)[2])["response"]
    assert "patch" in json.loads(hook.handle("POST", "/mutate/namespace", plain)[2])["response"]
    assert hook.handle("POST", "/mutate", b"{nope")[0] == 400
    assert hook.handle("POST", "/mutate", b"[" * 100_000)[0] == 400
    assert hook.handle("POST", "/mutate", b'{"apiVersion": 1}')[0] == 400
    assert hook.handle("GET", "/mutate", b"")[0] == 405
    assert hook.handle("GET", "/nowhere", b"")[0] == 404
    assert hook.handle("GET", "/healthz", b"")[0] == 200
    # /mutate is not served on the plain metrics port.
    assert hook.handle("POST", "/mutate", body, admission=False)[0] == 404
    status, _, metrics = hook.handle("GET", "/metrics", b"")
    assert status == 200
    assert b'driftwarden_injector_reviews_total{outcome="injected",reason="named_port"} 2.0' in (
        metrics
    )
    assert b'driftwarden_injector_reviews_total{outcome="invalid",reason="bad_json"} 2.0' in (
        metrics
    )


def test_reconciler_finds_opted_in_pods_without_the_sidecar() -> None:
    def pod(name: str, ns: str, annotations: dict[str, str], phase: str = "Running") -> dict:
        p = model_pod(annotations, name=name)
        p["metadata"].update(namespace=ns, uid=f"uid-{name}")
        p["status"]["phase"] = phase
        return p

    opt = {"driftwarden.io/inject": "true"}
    injected = apply(pod("ok", "a", opt), [])  # copy
    injected = apply(injected, decide(review(injected)["request"], CFG).patch)
    pods = [
        pod("missing", "a", opt),
        injected,
        pod("plain", "a", {}),
        pod("done", "a", opt, phase="Succeeded"),
        pod("ns-opted", "b", {}),
        pod("ns-opted-out", "b", {"driftwarden.io/inject": "false"}),
        pod("own", "driftwarden", opt),
        pod("bad", "a", {**opt, "driftwarden.io/sample-rate": "7"}),
    ]
    missing = missing_sidecar(pods, {"b"}, CFG, {"driftwarden"})
    assert [(m.namespace, m.name) for m in missing] == [("a", "missing"), ("b", "ns-opted")]
    ev = event_body(missing[0], 1.9e9, "injector-0")
    assert ev["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "missing",
        "namespace": "a",
        "uid": "uid-missing",
    }
    assert ev["type"] == "Warning" and "rollout restart" in ev["message"]
    assert ev["metadata"]["name"] == "missing.driftwarden-sidecar-missing"


def test_cli_certs_and_manifest(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "tls"
    r = runner.invoke(
        app,
        [
            *("injector", "certs", "--out", str(out)),
            *("--service", "inj", "--namespace", "dw", "--ip", "127.0.0.1"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert {p.name for p in out.iterdir()} == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    assert (out / "tls.key").stat().st_mode & 0o077 == 0
    r = runner.invoke(
        app, ["injector", "manifest", "--ca-file", str(out / "ca.crt"), "--namespace", "dw"]
    )
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(r.output)
    hook = doc["webhooks"][0]
    assert hook["clientConfig"]["service"]["namespace"] == "dw"
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == (out / "ca.crt").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["injector", "certs", "--out", "X", "--ip", "nope"], "--ip: 'nope' is not an IP"),
        (["injector", "certs", "--out", "X", "--days", "0"], "--days: 0"),
        (["injector", "manifest", "--ca-file", "/nonexistent/ca.crt"], "--ca-file"),
        (["injector", "run", "--sidecar-mode", "sideways"], "--sidecar-mode: 'sideways'"),
        (["injector", "run", "--memory-limit", "lots"], "memory_limit"),
        (["injector", "run", "--port", "70000"], "--port: 70000"),
        (
            ["injector", "run", "--port", "0", "--cert-file", "/nonexistent.crt"],
            "--cert-file /nonexistent.crt",
        ),
    ],
)
def test_cli_errors_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftwarden.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_config_file_with_flags_on_top(tmp_path: Path) -> None:
    path = tmp_path / "injector.yaml"
    path.write_text(
        "image: registry.local/dw:1\nmemory_limit: 512Mi\n"
        "extra_env: {OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318'}\n"
    )
    cfg = load_config(path, {"memory_limit": "1Gi", "native_sidecar": False})
    assert (cfg.image, cfg.memory_limit, cfg.native_sidecar) == (
        "registry.local/dw:1",
        "1Gi",
        False,
    )
    assert cfg.extra_env == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}
    pod = model_pod({"driftwarden.io/inject": "true"})
    side = apply(pod, decide(review(pod)["request"], cfg).patch)["spec"]["containers"][-1]
    assert {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4318"} in side["env"]
    path.write_text("imgae: typo\n")
    with pytest.raises(InjectorConfigError, match=r"injector.yaml.*imgae"):
        load_config(path)
    with pytest.raises(InjectorConfigError, match="no such injector config file"):
        load_config(tmp_path / "missing.yaml")
    assert load_config(None).image == InjectorConfig().image
