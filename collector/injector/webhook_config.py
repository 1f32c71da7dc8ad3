"""The MutatingWebhookConfiguration that sends pods to the injector (pure: returns a dict).

Two webhooks, so that every pod is reviewed by at most one of them:

- `pods.inject.driftwarden.io` (path `/mutate`): pods in namespaces *without* the opt-in
  label; the injector patches those that carry the `driftwarden.io/inject: "true"`
  annotation. (An objectSelector matches labels, not annotations, so this one must see
  every pod of those namespaces and decide by itself.)
- `namespaces.inject.driftwarden.io` (path `/mutate/namespace`): pods in namespaces
  labelled `driftwarden.io/inject=enabled`; the injector patches them unless the pod's
  annotation says `"false"`. The API server did the namespace filtering, so the webhook
  trusts the path it is called on: it never reads Namespaces itself.

Both exclude the injector's own namespace and `kube-system` (a broken injector must not
be able to get in the way of its own pods), and pods labelled `driftwarden.io/inject=false`
(not even sent). `failurePolicy: Ignore` and a short timeout: when the injector is down or
slow, pods are admitted without the sidecar (the reconciler makes them visible).
"""

from __future__ import annotations

import base64
from typing import Any

NAMESPACE_LABEL = "driftwarden.io/inject"
NAMESPACE_LABEL_VALUE = "enabled"
POD_OPT_OUT_LABEL = "driftwarden.io/inject"


def webhook_configuration(
    *,
    ca_bundle: bytes,
    namespace: str,
    name: str = "driftwarden-injector",
    service: str | None = "driftwarden-injector",
    service_port: int = 443,
    url: str | None = None,
    timeout_s: int = 3,
    exclude_namespaces: tuple[str, ...] = ("kube-system",),
    namespace_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest. `ca_bundle` is the PEM of the CA that signed the serving certificate.

    The injector is reached through `service` in `namespace` (in-cluster), or at `url`
    (`https://127.0.0.1:8443`, for a webhook outside the cluster: tests, development; the
    url wins when both are given); `/mutate` and `/mutate/namespace` are appended.
    `namespace_labels` narrows both webhooks to namespaces carrying these labels too
    (a staged roll-out, or tests sharing a cluster).
    """
    if url is None and not service:
        raise ValueError("give the injector's service or its url")
    if not 1 <= timeout_s <= 30:
        raise ValueError("timeout_s must be between 1 and 30 seconds")
    excluded = sorted({namespace, *exclude_namespaces})
    ca = base64.b64encode(ca_bundle).decode()

    def client(path: str) -> dict[str, Any]:
        if url is not None:
            return {"url": url.rstrip("/") + path, "caBundle": ca}
        return {
            "service": {
                "name": service,
                "namespace": namespace,
                "path": path,
                "port": service_port,
            },
            "caBundle": ca,
        }

    not_excluded = {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": excluded,
    }

    narrow = [
        {"key": k, "operator": "In", "values": [v]}
        for k, v in sorted((namespace_labels or {}).items())
    ]

    def hook(hook_name: str, path: str, label_op: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": hook_name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": client(path),
            "rules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["pods"],
                    "scope": "Namespaced",
                }
            ],
            "failurePolicy": "Ignore",
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "timeoutSeconds": timeout_s,
            "reinvocationPolicy": "IfNeeded",
            "namespaceSelector": {"matchExpressions": [not_excluded, label_op, *narrow]},
            "objectSelector": {
                "matchExpressions": [
                    {"key": POD_OPT_OUT_LABEL, "operator": "NotIn", "values": ["false"]}
                ]
            },
        }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "driftwarden-injector"},
        },
        "webhooks": [
            hook(
                "pods.inject.driftwarden.io",
                "/mutate",
                {"key": NAMESPACE_LABEL, "operator": "NotIn", "values": [NAMESPACE_LABEL_VALUE]},
            ),
            hook(
                "namespaces.inject.driftwarden.io",
                "/mutate/namespace",
                {"key": NAMESPACE_LABEL, "operator": "In", "values": [NAMESPACE_LABEL_VALUE]},
            ),
        ],
    }
