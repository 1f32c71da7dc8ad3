"""The mutating admission webhook that puts the collector sidecar in front of a model.

A pod annotated `driftwarden.io/inject: "true"` (or created in a namespace labelled
`driftwarden.io/inject=enabled`) gets the collector as a native sidecar that takes over the
model's named port, so Services reach the model through it without any edit. The patch
builder (`decide`) and the manifest builder (`webhook_configuration`) are pure; the HTTPS
server, the certificates and the reconciler wrap them. See docs/injector.md.
"""

from collector.injector.certs import CertBundle, make_certs, service_dns_names, write_certs
from collector.injector.config import (
    InjectorConfig,
    InjectorConfigError,
    load_config,
    make_config,
)
from collector.injector.metrics import InjectorMetrics, InjectorStats
from collector.injector.patch import REASONS, BadReview, Decision, decide, is_injected, parse_review
from collector.injector.webhook_config import webhook_configuration

# The server pulls in uvloop/httptools and the reconciler the Kubernetes client: on demand.
_LAZY = {
    "InjectorServer": "collector.injector.server",
    "ServerSettings": "collector.injector.server",
    "Webhook": "collector.injector.server",
    "run_injector": "collector.injector.server",
    "Reconciler": "collector.injector.reconciler",
    "missing_sidecar": "collector.injector.reconciler",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'collector.injector' has no attribute {name!r}")


__all__ = [
    "REASONS",
    "BadReview",
    "CertBundle",
    "Decision",
    "InjectorConfig",
    "InjectorConfigError",
    "InjectorMetrics",
    "InjectorServer",
    "InjectorStats",
    "Reconciler",
    "ServerSettings",
    "Webhook",
    "decide",
    "is_injected",
    "load_config",
    "make_certs",
    "make_config",
    "missing_sidecar",
    "parse_review",
    "run_injector",
    "service_dns_names",
    "webhook_configuration",
    "write_certs",
]
