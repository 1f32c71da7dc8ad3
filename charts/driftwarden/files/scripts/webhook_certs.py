"""The chart's certificate hook for the injector (injector.certs.mode=hook).

    webhook_certs.py secret   --namespace NS --secret NAME --certs DIR [--min-days 30]
    webhook_certs.py cabundle --namespace NS --secret NAME --webhook NAME

`secret` (pre-install/pre-upgrade) stores the files `driftwarden injector certs --out DIR`
wrote as a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) unless the Secret already
holds a certificate valid for at least `--min-days` more days for the same DNS names: an
upgrade keeps the certificate the running injector and the caBundle agree on.
`cabundle` (post-install/post-upgrade) writes the Secret's ca.crt into every webhook of the
MutatingWebhookConfiguration. Runs in the driftwarden image (kubernetes client, cryptography)
with the hook's ServiceAccount, or anywhere with KUBECONFIG set (the chart's tests do that).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import sys
from pathlib import Path

from cryptography import x509
from kubernetes import client, config


def _api() -> client.ApiClient:
    if os.environ.get("KUBECONFIG"):
        return config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    config.load_incluster_config()
    return client.ApiClient()


def _dns_names(cert_pem: bytes) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))


def _days_left(cert_pem: bytes, now: dt.datetime) -> float:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return (cert.not_valid_after_utc - now).total_seconds() / 86400


def store_secret(
    api: client.ApiClient, namespace: str, name: str, certs: Path, min_days: float
) -> str:
    core = client.CoreV1Api(api)
    new = {key: (certs / key).read_bytes() for key in ("tls.crt", "tls.key", "ca.crt")}
    try:
        current = core.read_namespaced_secret(name, namespace)
    except client.ApiException as e:
        if e.status != 404:
            raise
        current = None
    if (
        current is not None
        and current.data
        and {"tls.crt", "tls.key", "ca.crt"} <= set(current.data)
    ):
        old_cert = base64.b64decode(current.data["tls.crt"])
        if _days_left(old_cert, dt.datetime.now(dt.UTC)) >= min_days and _dns_names(
            old_cert
        ) == _dns_names(new["tls.crt"]):
            return f"secret {namespace}/{name}: kept (valid, same names)"
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels={
                "app.kubernetes.io/part-of": "driftwarden",
                "app.kubernetes.io/component": "injector",
            },
        ),
        type="kubernetes.io/tls",
        data={key: base64.b64encode(value).decode() for key, value in new.items()},
    )
    if current is None:
        core.create_namespaced_secret(namespace, body)
        return f"secret {namespace}/{name}: created"
    core.replace_namespaced_secret(name, namespace, body)
    return f"secret {namespace}/{name}: replaced"


def patch_ca_bundle(api: client.ApiClient, namespace: str, secret: str, webhook: str) -> str:
    core = client.CoreV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    ca = core.read_namespaced_secret(secret, namespace).data["ca.crt"]  # base64 already
    current = admission.read_mutating_webhook_configuration(webhook)
    patch = [
        {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca}
        for i in range(len(current.webhooks or []))
    ]
    admission.patch_mutating_webhook_configuration(webhook, patch)
    return f"mutatingwebhookconfiguration {webhook}: caBundle set on {len(patch)} webhooks"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="webhook_certs.py")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("secret")
    s.add_argument("--namespace", required=True)
    s.add_argument("--secret", required=True)
    s.add_argument("--certs", type=Path, required=True)
    s.add_argument("--min-days", type=float, default=30.0)
    c = sub.add_parser("cabundle")
    c.add_argument("--namespace", required=True)
    c.add_argument("--secret", required=True)
    c.add_argument("--webhook", required=True)
    args = parser.parse_args(argv)
    with _api() as api:
        try:
            if args.command == "secret":
                line = store_secret(api, args.namespace, args.secret, args.certs, args.min_days)
            else:
                line = patch_ca_bundle(api, args.namespace, args.secret, args.webhook)
        except client.ApiException as e:
            print(f"error: {args.command}: Kubernetes API {e.status} {e.reason}", file=sys.stderr)
            return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
