"""The pure parts of driftwarden.services.kubernetes: certificates, token file, kubeconfig."""

from __future__ import annotations

import base64
import ipaddress
import json

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from driftwarden.errors import ServiceError
from driftwarden.services.kubernetes import (
    KWOK_STAGES,
    fake_node_manifest,
    issue_client_cert,
    issue_serving_cert,
    k8s_bin_dir,
    new_ca,
    render_kubeconfig,
    render_token_file,
)


def test_serving_cert_is_issued_by_the_ca_for_loopback() -> None:
    ca = new_ca()
    serving = issue_serving_cert(ca, "apiserver", dns_names=["localhost"])
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    cert = x509.load_pem_x509_certificate(serving.cert_pem)
    cert.verify_directly_issued_by(ca_cert)  # raises when the signature does not match
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_client_cert_carries_user_and_groups_as_kubernetes_reads_them() -> None:
    ca = new_ca()
    cert = x509.load_pem_x509_certificate(issue_client_cert(ca, "alice", ["dev", "ops"]).cert_pem)
    subject = cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["alice"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "dev",
        "ops",
    ]


def test_token_file_quotes_groups() -> None:
    text = render_token_file({"t1": ("admin", ("system:masters",)), "t2": ("bob", ())})
    assert text == 't1,admin,admin,"system:masters"\nt2,bob,bob\n'
    two = render_token_file({"t3": ("carol", ("a", "b"))})
    assert two == 't3,carol,carol,"a,b"\n'


def test_kubeconfig_embeds_server_ca_and_token() -> None:
    config = json.loads(render_kubeconfig("https://127.0.0.1:6443", b"PEM", "tok"))
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"PEM"
    assert config["users"][0]["user"] == {"token": "tok"}
    assert config["current-context"] == config["contexts"][0]["name"]


def test_fake_node_is_selected_by_kwok_and_untainted() -> None:
    node = fake_node_manifest("n1")
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert "taints" not in node.get("spec", {})


def test_kwok_stages_ship_with_the_package() -> None:
    text = KWOK_STAGES.read_text()
    for name in (
        "node-initialize",
        "node-heartbeat-with-lease",
        "pod-ready",
        "pod-complete",
        "pod-delete",
    ):
        assert f"name: {name}\n" in text


def test_missing_binaries_are_named_with_the_install_hint(tmp_path) -> None:
    (tmp_path / "etcd").write_text("")
    with pytest.raises(ServiceError, match=r"kube-apiserver.*make k8s-install"):
        k8s_bin_dir(tmp_path)
