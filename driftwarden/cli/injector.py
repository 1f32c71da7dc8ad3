"""`driftwarden injector run|certs|manifest`: the admission webhook that injects the collector.

Every flag of `run` can also be set as DRIFTWARDEN_<FLAG> (dashes become underscores:
`--cert-file` is DRIFTWARDEN_CERT_FILE), the form the Helm chart uses. See docs/injector.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from driftwarden.errors import DriftwardenError

if TYPE_CHECKING:
    from collector.injector.config import InjectorConfig
    from collector.injector.metrics import InjectorStats

app = typer.Typer(
    help="The mutating admission webhook that injects the collector sidecar.",
    no_args_is_help=True,
)


def _port(value: int, flag: str, allow_zero: bool = False) -> int:
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise DriftwardenError(f"--{flag}: {value} is not a TCP port")
    return value


@app.command("run")
def run(
    port: int = typer.Option(
        8443, "--port", envvar="DRIFTWARDEN_PORT", help="HTTPS port: /mutate, /metrics, /healthz."
    ),
    host: str = typer.Option(
        "0.0.0.0", "--host", envvar="DRIFTWARDEN_HOST", help="Listen address."
    ),
    cert_file: Path = typer.Option(
        Path("/etc/driftwarden/tls/tls.crt"),
        "--cert-file",
        envvar="DRIFTWARDEN_CERT_FILE",
        help="Serving certificate (PEM chain), reloaded when it changes.",
    ),
    key_file: Path = typer.Option(
        Path("/etc/driftwarden/tls/tls.key"),
        "--key-file",
        envvar="DRIFTWARDEN_KEY_FILE",
        help="Its private key (PEM).",
    ),
    metrics_port: int = typer.Option(
        0,
        "--metrics-port",
        envvar="DRIFTWARDEN_METRICS_PORT",
        help="Plain-HTTP port for /metrics and /healthz (0: only on the HTTPS port).",
    ),
    reload_interval: float = typer.Option(
        10.0,
        "--reload-interval",
        envvar="DRIFTWARDEN_RELOAD_INTERVAL",
        help="Seconds between checks of the certificate files.",
    ),
    config_file: Path = typer.Option(
        None,
        "--config",
        envvar="DRIFTWARDEN_CONFIG",
        help="YAML of the sidecar settings (InjectorConfig: image, resources, extra_env, ...); "
        "the flags below override it.",
    ),
    image: str = typer.Option(
        None, "--image", envvar="DRIFTWARDEN_IMAGE", help="Collector image for the sidecar."
    ),
    image_pull_policy: str = typer.Option(
        None, "--image-pull-policy", envvar="DRIFTWARDEN_IMAGE_PULL_POLICY", help="[IfNotPresent]"
    ),
    bootstrap: str = typer.Option(
        None,
        "--bootstrap",
        envvar="DRIFTWARDEN_BOOTSTRAP",
        help="Kafka bootstrap servers the sidecars produce to. [kafka:9092]",
    ),
    sidecar_mode: str = typer.Option(
        None,
        "--sidecar-mode",
        envvar="DRIFTWARDEN_SIDECAR_MODE",
        help="native (init container, restartPolicy Always; Kubernetes >= 1.29) or container. "
        "[native]",
    ),
    proxy_port: int = typer.Option(
        None,
        "--proxy-port",
        envvar="DRIFTWARDEN_PROXY_PORT",
        help="The sidecar's proxy port (the next free one when the pod uses it). [8480]",
    ),
    sidecar_admin_port: int = typer.Option(
        None,
        "--sidecar-admin-port",
        envvar="DRIFTWARDEN_SIDECAR_ADMIN_PORT",
        help="The sidecar's admin port (/metrics, /healthz, /readyz, /v1/feedback). [8481]",
    ),
    payload_format: str = typer.Option(
        None,
        "--payload-format",
        envvar="DRIFTWARDEN_PAYLOAD_FORMAT",
        help="Default when a pod has no driftwarden.io/payload-format. [kserve-v1]",
    ),
    sample_rate: float = typer.Option(
        None,
        "--sample-rate",
        envvar="DRIFTWARDEN_SAMPLE_RATE",
        help="Default when a pod has no driftwarden.io/sample-rate. [1.0]",
    ),
    cpu_request: str = typer.Option(
        None, "--cpu-request", envvar="DRIFTWARDEN_CPU_REQUEST", help="[50m]"
    ),
    memory_request: str = typer.Option(
        None, "--memory-request", envvar="DRIFTWARDEN_MEMORY_REQUEST", help="[96Mi]"
    ),
    memory_limit: str = typer.Option(
        None, "--memory-limit", envvar="DRIFTWARDEN_MEMORY_LIMIT", help="[384Mi]"
    ),
    spool_size_limit: str = typer.Option(
        None,
        "--spool-size-limit",
        envvar="DRIFTWARDEN_SPOOL_SIZE_LIMIT",
        help="sizeLimit of the sidecar's spool emptyDir. [1Gi]",
    ),
    reconcile_interval: float = typer.Option(
        0.0,
        "--reconcile-interval",
        envvar="DRIFTWARDEN_RECONCILE_INTERVAL",
        help="Seconds between checks for opted-in pods without the sidecar (0: off).",
    ),
    namespace: str = typer.Option(
        "",
        "--namespace",
        envvar="POD_NAMESPACE",
        help="The injector's own namespace (the reconciler skips it).",
    ),
    kubeconfig: Path = typer.Option(
        None,
        "--kubeconfig",
        envvar="KUBECONFIG",
        help="For the reconciler; default: the in-cluster service account.",
    ),
    log_level: str = typer.Option("info", "--log-level", envvar="DRIFTWARDEN_LOG_LEVEL"),
    log_format: str = typer.Option(
        "text", "--log-format", envvar="DRIFTWARDEN_LOG_FORMAT", help="json or text."
    ),
) -> None:
    """Serve the admission webhook (HTTPS) that injects the collector into opted-in pods."""
    from driftwarden.logs import configure_logging

    if log_format not in ("json", "text"):
        raise DriftwardenError(f"--log-format: {log_format!r} is not one of json, text")
    configure_logging(log_level, log_format)  # type: ignore[arg-type]
    _port(port, "port", allow_zero=True)
    _port(metrics_port, "metrics-port", allow_zero=True)
    if sidecar_mode not in (None, "native", "container"):
        raise DriftwardenError(f"--sidecar-mode: {sidecar_mode!r} is not one of native, container")
    if reload_interval <= 0:
        raise DriftwardenError(f"--reload-interval: {reload_interval} is not a positive number")
    if reconcile_interval < 0:
        raise DriftwardenError(f"--reconcile-interval: {reconcile_interval} is negative")

    from collector.injector.config import load_config
    from collector.injector.server import ServerSettings, run_injector

    flags = {
        "image": image,
        "image_pull_policy": image_pull_policy,
        "bootstrap": bootstrap,
        "native_sidecar": None if sidecar_mode is None else sidecar_mode == "native",
        "proxy_port": proxy_port,
        "admin_port": sidecar_admin_port,
        "payload_format": payload_format,
        "sample_rate": sample_rate,
        "cpu_request": cpu_request,
        "memory_request": memory_request,
        "memory_limit": memory_limit,
        "spool_size_limit": spool_size_limit,
    }
    config = load_config(config_file, {k: v for k, v in flags.items() if v is not None})
    settings = ServerSettings(
        host=host,
        port=port,
        cert_file=cert_file,
        key_file=key_file,
        metrics_port=metrics_port,
        reload_interval_s=reload_interval,
    )
    background = None
    if reconcile_interval > 0:
        background = _reconciler(config, kubeconfig, namespace, reconcile_interval)
    run_injector(settings, config, background=background)


def _reconciler(
    config: InjectorConfig, kubeconfig: Path | None, namespace: str, interval: float
) -> Callable[[InjectorStats, threading.Event], None]:
    from kubernetes import config as kube_config

    from collector.injector.reconciler import Reconciler

    try:
        if kubeconfig is not None:
            api = kube_config.new_client_from_config(config_file=str(kubeconfig))
        else:
            kube_config.load_incluster_config()
            from kubernetes import client

            api = client.ApiClient()
    except Exception as e:
        raise DriftwardenError(f"--reconcile-interval: no Kubernetes credentials ({e})") from e

    def background(stats: InjectorStats, stopping: threading.Event) -> None:
        exclude = {"kube-system", *([namespace] if namespace else [])}
        Reconciler(api, config, stats, interval_s=interval, exclude_namespaces=exclude).run(
            stats, stopping
        )

    return background


@app.command("certs")
def certs(
    out: Path = typer.Option(..., "--out", help="Folder for ca.crt, ca.key, tls.crt, tls.key."),
    service: str = typer.Option(
        "driftwarden-injector", "--service", help="The injector's Service name."
    ),
    namespace: str = typer.Option("driftwarden", "--namespace", help="Its namespace."),
    days: int = typer.Option(365, "--days", help="Validity of the serving certificate."),
    dns: list[str] = typer.Option([], "--dns", help="Extra DNS name (repeatable)."),
    ip: list[str] = typer.Option([], "--ip", help="Extra IP address, e.g. 127.0.0.1 (repeatable)."),
    cluster_domain: str = typer.Option("cluster.local", "--cluster-domain"),
) -> None:
    """Make a self-signed CA and a serving certificate for the webhook's Service."""
    import ipaddress

    from collector.injector.certs import make_certs, service_dns_names, write_certs

    if days < 1:
        raise DriftwardenError(f"--days: {days} is not a positive number of days")
    for a in ip:
        try:
            ipaddress.ip_address(a)
        except ValueError as e:
            raise DriftwardenError(f"--ip: {a!r} is not an IP address") from e
    names = service_dns_names(service, namespace, cluster_domain) + list(dns)
    paths = write_certs(make_certs(names, ip, days=days), out)
    typer.echo(
        f"wrote {', '.join(str(p) for p in paths.values())}\n"
        f"Secret: kubectl -n {namespace} create secret tls {service}-tls "
        f"--cert={paths['tls.crt']} --key={paths['tls.key']}\n"
        f"caBundle: driftwarden injector manifest --ca-file {paths['ca.crt']} "
        f"--namespace {namespace} --service {service}"
    )


@app.command("manifest")
def manifest(
    ca_file: Path = typer.Option(..., "--ca-file", help="PEM of the CA that signed the cert."),
    namespace: str = typer.Option("driftwarden", "--namespace", help="The injector's namespace."),
    service: str = typer.Option("driftwarden-injector", "--service", help="Its Service."),
    service_port: int = typer.Option(443, "--service-port"),
    url: str = typer.Option(None, "--url", help="Reach the injector at this URL instead."),
    timeout: int = typer.Option(3, "--timeout", help="timeoutSeconds (1-30)."),
) -> None:
    """Print the MutatingWebhookConfiguration (YAML) that sends pods to the injector."""
    import yaml

    from collector.injector.webhook_config import webhook_configuration

    try:
        ca = ca_file.read_bytes()
    except OSError as e:
        raise DriftwardenError(f"--ca-file {ca_file}: {e.strerror}") from e
    try:
        doc = webhook_configuration(
            ca_bundle=ca,
            namespace=namespace,
            service=service,
            service_port=service_port,
            url=url,
            timeout_s=timeout,
        )
    except ValueError as e:
        raise DriftwardenError(f"--timeout: {e}") from e
    typer.echo(yaml.safe_dump(doc, sort_keys=False), nl=False)
