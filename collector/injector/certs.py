"""A self-signed CA and the webhook's serving certificate, for clusters without cert-manager.

ECDSA P-256 keys (small, fast handshakes; the API server accepts them). The serving
certificate names the Service the API server calls (`<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`,
`<svc>.<ns>.svc.<cluster domain>`) plus any extra DNS names and IP addresses (`127.0.0.1`
for a webhook reached by URL in tests).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: File names, as in a `kubernetes.io/tls` Secret (plus the CA for the caBundle).
CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"


@dataclass(frozen=True, slots=True)
class CertBundle:
    ca_cert_pem: bytes
    ca_key_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def service_dns_names(
    service: str, namespace: str, cluster_domain: str = "cluster.local"
) -> list[str]:
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
    ]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_certs(
    dns_names: list[str],
    ip_addresses: list[str] = (),  # type: ignore[assignment]
    *,
    days: int = 365,
    now: dt.datetime | None = None,
    ca_name: str = "driftwarden-injector-ca",
) -> CertBundle:
    """A new CA (valid 10x `days`) and a serving certificate for the names (valid `days`)."""
    if not dns_names:
        raise ValueError("the serving certificate needs at least one DNS name")
    now = now or dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5)  # tolerate clocks a little behind
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=10 * days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return CertBundle(
        ca_cert_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        ca_key_pem=_key_pem(ca_key),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=_key_pem(key),
    )


def write_certs(bundle: CertBundle, out: Path) -> dict[str, Path]:
    """Write ca.crt, ca.key, tls.crt, tls.key into `out` (keys readable by the owner only)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data, mode in (
        (CA_CERT, bundle.ca_cert_pem, 0o644),
        (CA_KEY, bundle.ca_key_pem, 0o600),
        (TLS_CERT, bundle.cert_pem, 0o644),
        (TLS_KEY, bundle.key_pem, 0o600),
    ):
        path = out / name
        tmp = out / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        paths[name] = path
    return paths


def not_after(cert_pem: bytes) -> float:
    """Unix time at which the first certificate of a PEM chain expires."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.not_valid_after_utc.timestamp()
