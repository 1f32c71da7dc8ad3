"""The patch builder: from an AdmissionReview and an `InjectorConfig`, the JSONPatch that puts
the collector in front of the model. Pure: no HTTP, no Kubernetes client, no clock.

The decision for one pod, in order (the first that applies wins; `reason` is what the
`driftwarden_injector_reviews_total{outcome,reason}` counter and the log line say):

1. not a Pod CREATE (`not_pod`, `not_create`) or not a readable Pod (`malformed`): skipped;
2. already injected (marker annotation or the sidecar's name present): `already_injected`;
3. not opted in: no `driftwarden.io/inject` annotation and the review did not come through
   the namespace opt-in webhook (`not_opted_in`); annotation `"false"` (`opted_out`); any
   other value than `true`/`false` (`bad_annotation`);
4. a pod the sidecar cannot serve: host network (`host_network`), Windows (`unsupported_os`);
5. annotations that do not parse (`bad_annotation`), no model name (`no_model_name`);
6. no model port to forward to (`no_model_port`, `port_not_found`, `unsupported_protocol`),
   or a name the sidecar needs already used (`name_conflict`);
7. otherwise injected: `named_port` (the sidecar took over the model's port name: Services
   with `targetPort: <name>` now reach the sidecar) or `numeric_port` (the model's port has
   no name: the sidecar listens on its own port, Services with a numeric `targetPort` still
   reach the model directly; see docs/injector.md).

Port takeover: the model container's port `http: 8080` is renamed `dw-model: 8080`; the
sidecar declares `http: 8480` (the first free number from `proxy_port`) and forwards to
127.0.0.1:8080. Two containers of a pod share one network namespace, so they cannot both
listen on 8080: the name moves, the number does not. The model's probes and lifecycle hooks
that named the port are rewritten to the new name (the kubelet resolves a probe's port name
among its own container's ports only); probes by number keep working unchanged.

The patch is idempotent by construction: every operation is an `add` of a whole object
member (`/metadata/annotations`, `/spec/containers`, `/spec/initContainers`, `/spec/volumes`),
which replaces the member when it exists, so applying it twice gives what applying it once
gives. And the pod it produces is recognised as injected, so a second review (the API server
reinvokes webhooks: `reinvocationPolicy: IfNeeded`) yields no patch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from collector.injector.config import PAYLOAD_FORMATS, PORT_NAME, InjectorConfig

PREFIX: Final = "driftwarden.io/"
INJECT: Final = PREFIX + "inject"
MODEL: Final = PREFIX + "model"
MODEL_VERSION: Final = PREFIX + "model-version"
MODEL_PORT: Final = PREFIX + "model-port"
PAYLOAD_FORMAT: Final = PREFIX + "payload-format"
SAMPLE_RATE: Final = PREFIX + "sample-rate"
#: Extension: a ConfigMap holding the model's monitoring spec under the key `spec.yaml`.
SPEC_CONFIGMAP: Final = PREFIX + "spec-configmap"
#: Written by the injector on every pod it patched.
INJECTED: Final = PREFIX + "injected"
DEFAULT_CONTAINER: Final = "kubectl.kubernetes.io/default-container"

#: Pod labels that name the model or its version when the annotations do not (in order).
MODEL_LABELS: Final = ("app.kubernetes.io/name", "app")
VERSION_LABELS: Final = (PREFIX + "version", "version", "app.kubernetes.io/version")

SPEC_MOUNT: Final = "/etc/driftwarden/spec"
SPEC_KEY: Final = "spec.yaml"

Outcome = Literal["injected", "skipped", "error"]

#: Every reason a review can be counted under, by outcome (metrics are pre-declared with it).
REASONS: Final[dict[str, tuple[str, ...]]] = {
    "injected": ("named_port", "numeric_port"),
    "skipped": (
        "not_pod",
        "not_create",
        "malformed",
        "already_injected",
        "not_opted_in",
        "opted_out",
        "bad_annotation",
        "host_network",
        "unsupported_os",
        "no_model_name",
        "no_model_port",
        "port_not_found",
        "unsupported_protocol",
        "name_conflict",
    ),
    "error": ("internal",),
}

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_VERSION = re.compile(r"^[A-Za-z0-9._+-]{0,128}$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_PROBES: Final = ("livenessProbe", "readinessProbe", "startupProbe")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the webhook answers for one pod: always allowed; a patch only when injected."""

    outcome: Outcome
    reason: str
    detail: str = ""
    patch: list[dict[str, Any]] = field(default_factory=list)
    #: Shown to the user by kubectl (AdmissionReview `warnings`).
    warnings: tuple[str, ...] = ()


class BadReview(ValueError):
    """The body is not an AdmissionReview v1 with a request uid: nothing to answer to."""


class _Skip(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Port:
    """The model's port: where it is declared (if it is) and what it is called."""

    number: int
    container: int | None = None
    index: int | None = None
    name: str | None = None


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Skip("malformed", f"{what} is not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Skip("malformed", f"{what} is not a list")
    return value


def _string_map(value: object, what: str) -> dict[str, str]:
    m = _mapping(value, what)
    for k, v in m.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise _Skip("malformed", f"{what} has a value that is not a string")
    return dict(m)


def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    out = _list(spec.get(key), f"spec.{key}")
    for i, c in enumerate(out):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
            raise _Skip("malformed", f"spec.{key}[{i}] has no name")
        ports = _list(c.get("ports"), f"spec.{key}[{i}].ports")
        for j, p in enumerate(ports):
            if not isinstance(p, dict):
                raise _Skip("malformed", f"spec.{key}[{i}].ports[{j}] is not an object")
            n = p.get("containerPort")
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 65535:
                raise _Skip("malformed", f"spec.{key}[{i}].ports[{j}].containerPort is not a port")
            if p.get("name") is not None and not isinstance(p.get("name"), str):
                raise _Skip("malformed", f"spec.{key}[{i}].ports[{j}].name is not a string")
    return out


def _protocol(port: Mapping[str, Any]) -> str:
    p = port.get("protocol")
    return p if isinstance(p, str) and p else "TCP"


def is_injected(pod: Mapping[str, Any], config: InjectorConfig) -> bool:
    """True for a pod this injector has patched (or that carries its sidecar anyway)."""
    meta = pod.get("metadata")
    if isinstance(meta, Mapping):
        ann = meta.get("annotations")
        if isinstance(ann, Mapping) and INJECTED in ann:
            return True
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return False
    for key in ("containers", "initContainers"):
        cs = spec.get(key)
        if isinstance(cs, list) and any(
            isinstance(c, dict) and c.get("name") == config.sidecar_name for c in cs
        ):
            return True
    return False


def _opt_in(annotations: Mapping[str, str], namespace_opt_in: bool) -> None:
    value = annotations.get(INJECT)
    if value is None:
        if namespace_opt_in:
            return
        raise _Skip("not_opted_in", f"no {INJECT} annotation")
    v = value.strip().lower()
    if v == "true":
        return
    if v == "false":
        raise _Skip("opted_out", f"{INJECT}: false")
    raise _Skip("bad_annotation", f"{INJECT}: {value[:64]!r} is not true or false")


@dataclass(frozen=True, slots=True)
class _Settings:
    model: str
    version: str
    payload_format: str
    sample_rate: float
    spec_configmap: str | None


def _settings(
    annotations: Mapping[str, str], labels: Mapping[str, str], config: InjectorConfig
) -> _Settings:
    model = annotations.get(MODEL) or next((labels[k] for k in MODEL_LABELS if labels.get(k)), "")
    if not model:
        raise _Skip(
            "no_model_name", f"no {MODEL} annotation and no label {' or '.join(MODEL_LABELS)}"
        )
    if not _MODEL_NAME.fullmatch(model):
        raise _Skip("bad_annotation", f"{MODEL}: {model[:64]!r} is not a model name")
    version = annotations.get(MODEL_VERSION)
    if version is None:
        version = next((labels[k] for k in VERSION_LABELS if labels.get(k)), "")
    if not _VERSION.fullmatch(version):
        raise _Skip("bad_annotation", f"{MODEL_VERSION}: {version[:64]!r} is not a version")
    fmt = annotations.get(PAYLOAD_FORMAT, config.payload_format)
    if fmt not in PAYLOAD_FORMATS:
        raise _Skip(
            "bad_annotation",
            f"{PAYLOAD_FORMAT}: {fmt[:64]!r} is not one of {', '.join(PAYLOAD_FORMATS)}",
        )
    rate = config.sample_rate
    if SAMPLE_RATE in annotations:
        text = annotations[SAMPLE_RATE]
        try:
            rate = float(text)
        except ValueError:
            rate = math.nan
        if not 0.0 <= rate <= 1.0:
            raise _Skip(
                "bad_annotation", f"{SAMPLE_RATE}: {text[:64]!r} is not a number between 0 and 1"
            )
    cm = annotations.get(SPEC_CONFIGMAP)
    if cm is not None and not _DNS_SUBDOMAIN.fullmatch(cm):
        raise _Skip("bad_annotation", f"{SPEC_CONFIGMAP}: {cm[:64]!r} is not a ConfigMap name")
    return _Settings(model, version, fmt, rate, cm)


def _model_port(annotations: Mapping[str, str], containers: list[Mapping[str, Any]]) -> _Port:
    """Which port the model listens on (see docs/injector.md, "Which port is the model's").

    The annotation (a number or a port name) when present; else the port named `http`; else
    the first TCP port declared (containers in order), named or not. A number that no
    container declares is still forwarded to.
    """
    ports = [
        _Port(p["containerPort"], ci, pi, p.get("name") or None)
        for ci, c in enumerate(containers)
        for pi, p in enumerate(c.get("ports") or [])
    ]
    protocols = {
        (ci, pi): _protocol(p)
        for ci, c in enumerate(containers)
        for pi, p in enumerate(c.get("ports") or [])
    }

    def tcp(p: _Port) -> _Port:
        if protocols[(p.container, p.index)] != "TCP":
            raise _Skip(
                "unsupported_protocol",
                f"model port {p.name or p.number} is {protocols[(p.container, p.index)]}, not TCP",
            )
        return p

    text = annotations.get(MODEL_PORT)
    if text is not None:
        if text.isdigit():
            number = int(text)
            if not 1 <= number <= 65535:
                raise _Skip("bad_annotation", f"{MODEL_PORT}: {text[:16]!r} is not a port")
            declared = [p for p in ports if p.number == number]
            named = [p for p in declared if p.name]
            return tcp((named or declared)[0]) if declared else _Port(number)
        if not PORT_NAME.fullmatch(text):
            raise _Skip("bad_annotation", f"{MODEL_PORT}: {text[:64]!r} is not a port or port name")
        by_name = [p for p in ports if p.name == text]
        if not by_name:
            raise _Skip("port_not_found", f"{MODEL_PORT}: no container declares a port {text!r}")
        return tcp(by_name[0])
    tcp_ports = [p for p in ports if protocols[(p.container, p.index)] == "TCP"]
    http = [p for p in tcp_ports if p.name == "http"]
    if http or tcp_ports:
        return (http or tcp_ports)[0]
    raise _Skip("no_model_port", f"no {MODEL_PORT} annotation and no TCP container port")


def _rename_port_refs(obj: Any, old: str, new: str) -> Any:
    """A probe or lifecycle handler that named the port `old`, pointing at `new` instead.

    Copy on write: the review's objects are never modified, the patch shares what it keeps.
    """
    if not isinstance(obj, dict):
        return obj
    for action in ("httpGet", "tcpSocket"):
        a = obj.get(action)
        if isinstance(a, dict) and a.get("port") == old:
            obj = {**obj, action: {**a, "port": new}}
    return obj


def _free_port(start: int, used: set[int]) -> int:
    n = start
    while n in used:
        n = n + 1 if n < 65535 else 1024
    return n


def _sidecar(
    config: InjectorConfig,
    s: _Settings,
    model_port: int,
    proxy_port: int,
    proxy_name: str,
    admin_port: int,
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "DRIFTWARDEN_MODEL", "value": s.model},
        {"name": "DRIFTWARDEN_MODEL_VERSION", "value": s.version},
        {"name": "DRIFTWARDEN_MODEL_PORT", "value": str(model_port)},
        {"name": "DRIFTWARDEN_PORT", "value": str(proxy_port)},
        {"name": "DRIFTWARDEN_ADMIN_PORT", "value": str(admin_port)},
        {"name": "DRIFTWARDEN_BOOTSTRAP", "value": config.bootstrap},
        {"name": "DRIFTWARDEN_PAYLOAD_FORMAT", "value": s.payload_format},
        {"name": "DRIFTWARDEN_SAMPLE_RATE", "value": repr(s.sample_rate)},
        {"name": "DRIFTWARDEN_SPOOL_DIR", "value": config.spool_mount.rstrip("/") + "/spool"},
        {"name": "DRIFTWARDEN_LOG_LEVEL", "value": config.log_level},
        {"name": "DRIFTWARDEN_LOG_FORMAT", "value": config.log_format},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    mounts: list[dict[str, Any]] = [{"name": config.spool_volume, "mountPath": config.spool_mount}]
    if s.spec_configmap:
        env.append({"name": "DRIFTWARDEN_SPEC", "value": f"{SPEC_MOUNT}/{SPEC_KEY}"})
        mounts.append({"name": config.spec_volume, "mountPath": SPEC_MOUNT, "readOnly": True})
    env.extend(config.kafka_security.env())
    mounts.extend(config.kafka_security.mounts())
    env.extend({"name": k, "value": v} for k, v in sorted(config.extra_env.items()))
    resources: dict[str, Any] = {
        "requests": {"cpu": config.cpu_request, "memory": config.memory_request},
        "limits": {"memory": config.memory_limit},
    }
    if config.cpu_limit:
        resources["limits"]["cpu"] = config.cpu_limit

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": admin_port},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 2,
        }

    c: dict[str, Any] = {
        "name": config.sidecar_name,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": list(config.command),
        "env": env,
        "ports": [
            {"name": proxy_name, "containerPort": proxy_port, "protocol": "TCP"},
            {"name": config.admin_port_name, "containerPort": admin_port, "protocol": "TCP"},
        ],
        "resources": resources,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": config.run_as_user,
            "runAsGroup": config.run_as_group,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/healthz", 10, 3),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if config.native_sidecar:
        # The model starts once the proxy listens (the kubelet waits for a sidecar's startup
        # probe before starting the next container).
        c["restartPolicy"] = "Always"
        c["startupProbe"] = probe("/readyz", 1, config.startup_failure_s)
    return c


def _check_names(
    containers: list[Mapping[str, Any]],
    volumes: list[Any],
    port: _Port,
    settings: _Settings,
    config: InjectorConfig,
) -> None:
    """The port and volume names the sidecar brings must be free, and a taken-over port
    name unique in the pod (else a Service by that name could still pick another port)."""
    names = [p.get("name") for c in containers for p in (c.get("ports") or []) if p.get("name")]
    wanted = [config.admin_port_name]
    wanted.append(config.renamed_model_port if port.name else config.proxy_port_name)
    taken = [n for n in wanted if n in names]
    if port.name and names.count(port.name) > 1:
        taken.append(port.name)
    volume_names = {v.get("name") for v in volumes if isinstance(v, dict)}
    wanted_volumes = [config.spool_volume, *config.kafka_security.volume_names()]
    if settings.spec_configmap:
        wanted_volumes.append(config.spec_volume)
    taken += [n for n in wanted_volumes if n in volume_names]
    if taken:
        raise _Skip("name_conflict", f"the pod already uses the name(s) {', '.join(sorted(taken))}")


def _take_over(container: Mapping[str, Any], port: _Port, new: str) -> dict[str, Any]:
    """The model container with its port renamed `new`, and its probes and lifecycle hooks
    that named the port pointed at the new name (copied where changed, never modified)."""
    old = str(port.name)
    model = dict(container)
    ports = list(model["ports"])
    ports[port.index or 0] = {**ports[port.index or 0], "name": new}
    model["ports"] = ports
    for key in _PROBES:
        if key in model:
            model[key] = _rename_port_refs(model[key], old, new)
    lifecycle = model.get("lifecycle")
    if isinstance(lifecycle, dict):
        model["lifecycle"] = {
            hook: _rename_port_refs(h, old, new) if hook in ("postStart", "preStop") else h
            for hook, h in lifecycle.items()
        }
    return model


def _build(pod: Mapping[str, Any], config: InjectorConfig, namespace_opt_in: bool) -> Decision:
    meta = _mapping(pod.get("metadata"), "metadata")
    annotations = _string_map(meta.get("annotations"), "metadata.annotations")
    labels = _string_map(meta.get("labels"), "metadata.labels")
    if is_injected(pod, config):
        raise _Skip("already_injected", "the pod already has the collector sidecar")
    _opt_in(annotations, namespace_opt_in)
    spec = _mapping(pod.get("spec"), "spec")
    containers = _containers(spec, "containers")
    inits = _containers(spec, "initContainers")
    if not containers:
        raise _Skip("malformed", "spec.containers is empty")
    volumes = _list(spec.get("volumes"), "spec.volumes")
    if spec.get("hostNetwork") is True:
        raise _Skip("host_network", "hostNetwork pods share the node's ports")
    os_ = _mapping(spec.get("os"), "spec.os")
    if os_.get("name") not in (None, "linux"):
        raise _Skip("unsupported_os", f"spec.os.name is {str(os_.get('name'))[:32]!r}")
    settings = _settings(annotations, labels, config)
    port = _model_port(annotations, containers)
    takeover = port.name is not None
    _check_names(containers + inits, volumes, port, settings, config)
    used = {p["containerPort"] for c in containers + inits for p in (c.get("ports") or [])}
    used.add(port.number)
    proxy_port = _free_port(config.proxy_port, used)
    admin_port = _free_port(config.admin_port, used | {proxy_port})
    sidecar = _sidecar(
        config,
        settings,
        port.number,
        proxy_port,
        port.name if takeover else config.proxy_port_name,
        admin_port,
    )

    new_containers = list(containers)
    if takeover:
        i = port.container or 0
        new_containers[i] = _take_over(containers[i], port, config.renamed_model_port)
    model_container = containers[port.container if port.container is not None else 0]["name"]

    new_annotations = dict(annotations)
    new_annotations[INJECTED] = "true"
    new_annotations.setdefault(DEFAULT_CONTAINER, model_container)
    new_volumes = [
        *volumes,
        {"name": config.spool_volume, "emptyDir": {"sizeLimit": config.spool_size_limit}},
    ]
    new_volumes.extend(config.kafka_security.volumes())
    if settings.spec_configmap:
        new_volumes.append(
            {
                "name": config.spec_volume,
                "configMap": {
                    "name": settings.spec_configmap,
                    "items": [{"key": SPEC_KEY, "path": SPEC_KEY}],
                },
            }
        )

    patch: list[dict[str, Any]] = []
    if isinstance(pod.get("metadata"), dict):
        patch.append({"op": "add", "path": "/metadata/annotations", "value": new_annotations})
    else:
        patch.append({"op": "add", "path": "/metadata", "value": {"annotations": new_annotations}})
    if config.native_sidecar:
        if takeover:
            patch.append({"op": "add", "path": "/spec/containers", "value": new_containers})
        new_inits = [*inits, sidecar]
        patch.append({"op": "add", "path": "/spec/initContainers", "value": new_inits})
    else:
        patch.append({"op": "add", "path": "/spec/containers", "value": [*new_containers, sidecar]})
    patch.append({"op": "add", "path": "/spec/volumes", "value": new_volumes})

    if takeover:
        detail = (
            f"model {settings.model}: port {port.name!r} ({port.number}) taken over by the "
            f"sidecar on {proxy_port}, model port renamed {config.renamed_model_port!r}"
        )
        return Decision("injected", "named_port", detail, patch)
    detail = (
        f"model {settings.model}: model port {port.number} has no name; the sidecar listens on "
        f"{proxy_port} ({config.proxy_port_name!r}), numeric targetPorts bypass it"
    )
    warning = (
        f"driftwarden: port {port.number} has no name, so Services with targetPort "
        f"{port.number} bypass the collector; name the port (docs/injector.md)"
    )
    return Decision("injected", "numeric_port", detail, patch, (warning,))


def decide(
    request: Mapping[str, Any], config: InjectorConfig, *, namespace_opt_in: bool = False
) -> Decision:
    """The decision and patch for one AdmissionReview `request` (never raises).

    `namespace_opt_in`: the review came through the webhook whose namespaceSelector picks
    namespaces labelled for injection, so a pod without the annotation is injected too
    (the API server did the namespace filtering; the webhook trusts the path it was called on).
    """
    try:
        kind = _mapping(request.get("kind"), "request.kind")
        if (
            kind.get("kind") != "Pod"
            or kind.get("group", "") != ""
            or kind.get("version") != "v1"
            or request.get("subResource")
        ):
            raise _Skip("not_pod", f"kind {kind.get('kind')!r} {request.get('subResource') or ''}")
        if request.get("operation") != "CREATE":
            raise _Skip("not_create", f"operation {str(request.get('operation'))[:16]!r}")
        pod = request.get("object")
        if not isinstance(pod, Mapping):
            raise _Skip("malformed", "request.object is not a Pod")
        return _build(pod, config, namespace_opt_in)
    except _Skip as s:
        warnings: tuple[str, ...] = ()
        if s.reason in (
            "bad_annotation",
            "port_not_found",
            "unsupported_protocol",
            "name_conflict",
        ):
            warnings = (f"driftwarden: sidecar not injected: {s.detail}"[:240],)
        return Decision("skipped", s.reason, s.detail, warnings=warnings)
    except Exception as e:  # anything not understood: allowed, counted, logged by the caller
        return Decision("error", "internal", f"{type(e).__name__}: {e}"[:500])


def parse_review(review: object) -> tuple[str, str, Mapping[str, Any]]:
    """(apiVersion, uid, request) of an AdmissionReview, or `BadReview`."""
    if not isinstance(review, Mapping):
        raise BadReview("body is not a JSON object")
    api = review.get("apiVersion")
    if api != "admission.k8s.io/v1" or review.get("kind") != "AdmissionReview":
        raise BadReview("not an admission.k8s.io/v1 AdmissionReview")
    request = review.get("request")
    if not isinstance(request, Mapping):
        raise BadReview("AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("AdmissionReview request has no uid")
    return api, uid, request


def response(
    api_version: str, uid: str, decision: Decision, patch_b64: str | None
) -> dict[str, Any]:
    """The AdmissionReview answer: always `allowed`; the patch (base64) only when injected."""
    resp: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch_b64 is not None:
        resp["patchType"] = "JSONPatch"
        resp["patch"] = patch_b64
    if decision.warnings:
        resp["warnings"] = list(decision.warnings)
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": resp}
