"""The patch builder on AdmissionReview payloads: what is injected, what is skipped and why,
and the Kubernetes rules (Service targetPort lookup, probe port lookup) on the result."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.injector import (
    REASONS,
    BadReview,
    InjectorConfig,
    InjectorConfigError,
    decide,
    make_config,
    parse_review,
)
from collector.injector.patch import INJECTED, response
from tests.kits.injector import (
    apply,
    load_recorded,
    model_pod,
    probe_port,
    review,
    service_target,
)

CFG = InjectorConfig(image="registry.local/driftwarden:test", bootstrap="kafka.dw:9092")
OPT_IN = {"driftwarden.io/inject": "true"}


def _decide(pod: dict[str, Any], cfg: InjectorConfig = CFG, **kw: Any):
    return decide(review(pod)["request"], cfg, **kw)


def _sidecar(pod: dict[str, Any]) -> dict[str, Any]:
    spec = pod["spec"]
    found = [
        c
        for c in (spec.get("initContainers") or []) + spec["containers"]
        if c["name"] == "driftwarden-collector"
    ]
    assert len(found) == 1, found
    return found[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_plain_pod_gets_native_sidecar_that_takes_over_the_named_port() -> None:
    pod = model_pod(
        {
            **OPT_IN,
            "driftwarden.io/model": "credit",
            "driftwarden.io/model-version": "v7",
            "driftwarden.io/payload-format": "open-inference-v2",
            "driftwarden.io/sample-rate": "0.25",
        }
    )
    d = _decide(pod)
    assert (d.outcome, d.reason) == ("injected", "named_port")
    out = apply(pod, d.patch)

    side = _sidecar(out)
    assert side in out["spec"]["initContainers"] and side["restartPolicy"] == "Always"
    assert side["image"] == "registry.local/driftwarden:test"
    assert side["command"] == ["driftwarden", "collector", "run"]
    env = _env(side)
    assert env["DRIFTWARDEN_MODEL"] == "credit"
    assert env["DRIFTWARDEN_MODEL_VERSION"] == "v7"
    assert env["DRIFTWARDEN_MODEL_PORT"] == "8080"
    assert env["DRIFTWARDEN_PORT"] == "8480"
    assert env["DRIFTWARDEN_ADMIN_PORT"] == "8481"
    assert env["DRIFTWARDEN_BOOTSTRAP"] == "kafka.dw:9092"
    assert env["DRIFTWARDEN_PAYLOAD_FORMAT"] == "open-inference-v2"
    assert env["DRIFTWARDEN_SAMPLE_RATE"] == "0.25"
    assert env["DRIFTWARDEN_SPOOL_DIR"].startswith("/var/spool/driftwarden/")
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}

    # The takeover: Services with targetPort "http" now land on the sidecar's 8480, whose
    # env forwards to the model's unchanged 8080.
    assert service_target(pod, "http") == 8080
    assert service_target(out, "http") == 8480
    model = out["spec"]["containers"][0]
    assert model["ports"][0] == {"name": "dw-model", "containerPort": 8080, "protocol": "TCP"}
    assert model["ports"][1]["name"] == "metrics"  # other ports untouched
    # Every probe of the model still reaches the model's own port (names resolve among the
    # container's own ports: the kubelet would fail a probe on a name it no longer has).
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert probe_port(pod["spec"]["containers"][0], pod["spec"]["containers"][0][key]) == 8080
        assert probe_port(model, model[key]) == 8080, key
    assert model["readinessProbe"]["httpGet"]["port"] == "dw-model"
    assert model["livenessProbe"]["tcpSocket"]["port"] == "dw-model"
    assert model["startupProbe"]["httpGet"]["port"] == 8080

    sc = side["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert side["startupProbe"]["httpGet"] == {"path": "/readyz", "port": 8481}
    assert side["resources"]["limits"]["memory"] and "cpu" not in side["resources"]["limits"]

    spool = [v for v in out["spec"]["volumes"] if v["name"] == "driftwarden-spool"]
    assert spool == [{"name": "driftwarden-spool", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert {"name": "driftwarden-spool", "mountPath": "/var/spool/driftwarden"} in side[
        "volumeMounts"
    ]
    assert out["spec"]["volumes"][0]["name"] == "kube-api-access"  # kept
    assert out["metadata"]["annotations"][INJECTED] == "true"
    assert out["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "model"
    assert out["metadata"]["annotations"]["driftwarden.io/model"] == "credit"  # kept


def test_lifecycle_hooks_on_the_name_are_rewritten_too() -> None:
    pod = model_pod(OPT_IN)
    pod["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"httpGet": {"path": "/drain", "port": "http"}},
        "postStart": {"tcpSocket": {"port": "metrics"}},
    }
    out = apply(pod, _decide(pod).patch)
    life = out["spec"]["containers"][0]["lifecycle"]
    assert life["preStop"]["httpGet"]["port"] == "dw-model"
    assert life["postStart"]["tcpSocket"]["port"] == "metrics"


def test_defaults_model_and_version_from_labels() -> None:
    d = _decide(model_pod(OPT_IN))
    env = _env(_sidecar(apply(model_pod(OPT_IN), d.patch)))
    assert env["DRIFTWARDEN_MODEL"] == "credit"  # label app
    assert env["DRIFTWARDEN_MODEL_VERSION"] == "v3"  # label version (canaries differ by it)
    assert env["DRIFTWARDEN_PAYLOAD_FORMAT"] == "kserve-v1"
    assert env["DRIFTWARDEN_SAMPLE_RATE"] == "1.0"


def test_regular_container_mode() -> None:
    cfg = CFG.model_copy(update={"native_sidecar": False})
    pod = model_pod(OPT_IN)
    out = apply(pod, _decide(pod, cfg).patch)
    assert "initContainers" not in out["spec"]
    names = [c["name"] for c in out["spec"]["containers"]]
    assert names == ["model", "driftwarden-collector"]
    side = out["spec"]["containers"][1]
    assert "restartPolicy" not in side and "startupProbe" not in side
    assert service_target(out, "http") == 8480


def test_native_sidecar_goes_after_existing_init_containers() -> None:
    pod = model_pod(OPT_IN)
    pod["spec"]["initContainers"] = [{"name": "fetch-model", "image": "busybox"}]
    out = apply(pod, _decide(pod).patch)
    assert [c["name"] for c in out["spec"]["initContainers"]] == [
        "fetch-model",
        "driftwarden-collector",
    ]


def test_already_injected_pod_gets_no_patch() -> None:
    pod = model_pod(OPT_IN)
    once = apply(pod, _decide(pod).patch)
    d = _decide(once)
    assert (d.outcome, d.reason, d.patch) == ("skipped", "already_injected", [])
    # The sidecar's name alone is enough (e.g. a pod copied from an injected one).
    del once["metadata"]["annotations"][INJECTED]
    assert _decide(once).reason == "already_injected"
    marker_only = model_pod({**OPT_IN, INJECTED: "true"})
    assert _decide(marker_only).reason == "already_injected"


def test_no_annotation_is_not_touched() -> None:
    d = _decide(model_pod())
    assert (d.outcome, d.reason, d.patch) == ("skipped", "not_opted_in", [])


def test_namespace_opt_in_injects_without_annotation_and_respects_opt_out() -> None:
    d = _decide(model_pod(), namespace_opt_in=True)
    assert (d.outcome, d.reason) == ("injected", "named_port")
    d = _decide(model_pod({"driftwarden.io/inject": "false"}), namespace_opt_in=True)
    assert (d.outcome, d.reason, d.patch) == ("skipped", "opted_out", [])
    d = _decide(model_pod({"driftwarden.io/inject": "FALSE"}))
    assert d.reason == "opted_out"


def test_numeric_port_is_injected_beside_the_model_and_counted() -> None:
    pod = model_pod(OPT_IN, port={"containerPort": 8080, "protocol": "TCP"})
    d = _decide(pod)
    assert (d.outcome, d.reason) == ("injected", "numeric_port")
    assert d.warnings and "targetPort 8080" in d.warnings[0]
    out = apply(pod, d.patch)
    side = _sidecar(out)
    assert side["ports"][0] == {"name": "dw-proxy", "containerPort": 8480, "protocol": "TCP"}
    assert _env(side)["DRIFTWARDEN_MODEL_PORT"] == "8080"
    # Nothing of the model changes; a numeric targetPort keeps reaching the model directly.
    assert out["spec"]["containers"] == pod["spec"]["containers"]
    assert service_target(out, 8080) == 8080


def test_model_port_annotation_by_number_and_name() -> None:
    # A number that is declared with a name: the name is taken over.
    d = _decide(model_pod({**OPT_IN, "driftwarden.io/model-port": "8080"}))
    assert d.reason == "named_port"
    # A name other than the default choice.
    pod = model_pod({**OPT_IN, "driftwarden.io/model-port": "metrics"})
    out = apply(pod, _decide(pod).patch)
    assert service_target(out, "metrics") == 8480
    assert _env(_sidecar(out))["DRIFTWARDEN_MODEL_PORT"] == "9090"
    assert service_target(out, "http") == 8080  # the other port is not the model's
    # A number no container declares: forwarded to, nothing taken over.
    pod = model_pod({**OPT_IN, "driftwarden.io/model-port": "7000"})
    d = _decide(pod)
    assert d.reason == "numeric_port"
    assert _env(_sidecar(apply(pod, d.patch)))["DRIFTWARDEN_MODEL_PORT"] == "7000"
    # A name no container declares.
    d = _decide(model_pod({**OPT_IN, "driftwarden.io/model-port": "grpc"}))
    assert (d.outcome, d.reason, d.patch) == ("skipped", "port_not_found", [])
    assert d.warnings


def test_http_is_preferred_over_an_earlier_named_port() -> None:
    pod = model_pod(OPT_IN)
    ports = pod["spec"]["containers"][0]["ports"]
    ports.reverse()  # metrics first, http second
    out = apply(pod, _decide(pod).patch)
    assert service_target(out, "http") == 8480
    assert service_target(out, "metrics") == 9090


def test_sidecar_ports_avoid_ports_the_pod_uses() -> None:
    pod = model_pod(OPT_IN, port={"name": "http", "containerPort": 8480, "protocol": "TCP"})
    pod["spec"]["containers"][0]["ports"].append({"containerPort": 8482, "protocol": "TCP"})
    out = apply(pod, _decide(pod).patch)
    side = _sidecar(out)
    proxy, admin = (p["containerPort"] for p in side["ports"])
    assert (proxy, admin) == (8481, 8483)
    assert _env(side)["DRIFTWARDEN_MODEL_PORT"] == "8480"
    numbers = [p["containerPort"] for c in out["spec"]["containers"] for p in c["ports"]]
    assert len({*numbers, proxy, admin}) == len(numbers) + 2


def test_spec_configmap_is_mounted() -> None:
    pod = model_pod({**OPT_IN, "driftwarden.io/spec-configmap": "credit-spec"})
    out = apply(pod, _decide(pod).patch)
    side = _sidecar(out)
    assert _env(side)["DRIFTWARDEN_SPEC"] == "/etc/driftwarden/spec/spec.yaml"
    vol = next(v for v in out["spec"]["volumes"] if v["name"] == "driftwarden-spec")
    assert vol["configMap"]["name"] == "credit-spec"


@pytest.mark.parametrize(
    ("annotations", "reason"),
    [
        ({"driftwarden.io/inject": "yes please"}, "bad_annotation"),
        ({"driftwarden.io/sample-rate": "2"}, "bad_annotation"),
        ({"driftwarden.io/sample-rate": "nan"}, "bad_annotation"),
        ({"driftwarden.io/sample-rate": "-0.1"}, "bad_annotation"),
        ({"driftwarden.io/payload-format": "xml"}, "bad_annotation"),
        ({"driftwarden.io/model": "credit model"}, "bad_annotation"),
        ({"driftwarden.io/model-version": "v1\n"}, "bad_annotation"),
        ({"driftwarden.io/model-port": "99999"}, "bad_annotation"),
        ({"driftwarden.io/model-port": "Not_A_Name"}, "bad_annotation"),
        ({"driftwarden.io/spec-configmap": "Bad/Name"}, "bad_annotation"),
    ],
)
def test_bad_annotations_are_skipped_with_a_warning(
    annotations: dict[str, str], reason: str
) -> None:
    d = _decide(model_pod({**OPT_IN, **annotations}))
    assert (d.outcome, d.reason, d.patch) == ("skipped", reason, [])
    assert d.warnings and d.warnings[0].startswith("driftwarden: sidecar not injected")


def _mutate(pod: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    *parents, last = path.split(".")
    node: Any = pod
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return pod


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("metadata", "pod", "malformed"),
        ("metadata.annotations", ["driftwarden.io/inject"], "malformed"),
        ("metadata.labels", {"app": 3}, "malformed"),
        ("spec", None, "malformed"),
        ("spec.containers", {"name": "model"}, "malformed"),
        ("spec.containers", [], "malformed"),
        ("spec.containers.0", "model", "malformed"),
        ("spec.containers.0.name", None, "malformed"),
        ("spec.containers.0.ports", "8080", "malformed"),
        ("spec.containers.0.ports.0", 8080, "malformed"),
        ("spec.containers.0.ports.0.containerPort", "8080", "malformed"),
        ("spec.containers.0.ports.0.containerPort", 0, "malformed"),
        ("spec.containers.0.ports.0.containerPort", True, "malformed"),
        ("spec.containers.0.ports.0.name", 7, "malformed"),
        ("spec.containers.0.ports", [], "no_model_port"),
        ("spec.containers.0.ports.0.protocol", "UDP", "no_model_port"),
        ("spec.initContainers", 5, "malformed"),
        ("spec.volumes", {"a": 1}, "malformed"),
        ("spec.hostNetwork", True, "host_network"),
        ("spec.os", {"name": "windows"}, "unsupported_os"),
        ("spec.os", "linux", "malformed"),
    ],
)
def test_odd_pods_are_allowed_without_a_patch(path: str, value: Any, reason: str) -> None:
    pod = model_pod(OPT_IN)
    if reason == "no_model_port" and path.endswith("protocol"):
        pod["spec"]["containers"][0]["ports"] = pod["spec"]["containers"][0]["ports"][:1]
    d = _decide(_mutate(pod, path, value))
    assert (d.outcome, d.reason, d.patch) == ("skipped", reason, [])


def test_model_port_of_another_protocol_and_name_conflicts() -> None:
    pod = model_pod({**OPT_IN, "driftwarden.io/model-port": "dns"})
    pod["spec"]["containers"][0]["ports"].append(
        {"name": "dns", "containerPort": 53, "protocol": "UDP"}
    )
    assert _decide(pod).reason == "unsupported_protocol"
    pod = model_pod(OPT_IN)
    pod["spec"]["containers"][0]["ports"][1]["name"] = "dw-model"
    assert _decide(pod).reason == "name_conflict"
    pod = model_pod(OPT_IN)
    pod["spec"]["volumes"].append({"name": "driftwarden-spool", "emptyDir": {}})
    assert _decide(pod).reason == "name_conflict"
    pod = model_pod(OPT_IN)
    pod["spec"]["containers"].append(
        {"name": "other", "ports": [{"name": "http", "containerPort": 9000}]}
    )
    assert _decide(pod).reason == "name_conflict"
    pod = model_pod(OPT_IN, labels={"app": ""})
    assert _decide(pod).reason == "no_model_name"


@pytest.mark.parametrize(
    "request_",
    [
        {},
        {"kind": "Pod"},
        {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "operation": "CREATE"},
        {"kind": {"version": "v1", "kind": "Pod"}, "operation": "UPDATE", "object": {}},
        {"kind": {"version": "v1", "kind": "Pod"}, "operation": "CREATE", "object": []},
        {"kind": {"version": "v1", "kind": "Pod"}, "operation": "CREATE", "subResource": "exec"},
        {"kind": {"version": "v1", "kind": "Pod"}, "operation": "CREATE", "object": None},
    ],
)
def test_requests_that_are_not_a_pod_create_are_skipped(request_: dict[str, Any]) -> None:
    d = decide(request_, CFG)
    assert d.outcome == "skipped" and d.patch == []
    assert d.reason in REASONS["skipped"]


def test_review_envelope_round_trip() -> None:
    r = review(model_pod(OPT_IN), uid="abc-123")
    api, uid, request = parse_review(r)
    assert (api, uid) == ("admission.k8s.io/v1", "abc-123")
    d = decide(request, CFG)
    answer = response(api, uid, d, base64.b64encode(json.dumps(d.patch).encode()).decode())
    assert answer["response"]["uid"] == "abc-123" and answer["response"]["allowed"] is True
    assert answer["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["response"]["patch"])) == d.patch
    skipped = response(api, uid, decide(review(model_pod())["request"], CFG), None)
    assert skipped["response"] == {"uid": "abc-123", "allowed": True}
    for bad in (None, [], {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}):
        with pytest.raises(BadReview):
            parse_review(bad)
    with pytest.raises(BadReview, match="uid"):
        parse_review({**r, "request": {**r["request"], "uid": ""}})


def test_config_errors_name_the_field() -> None:
    with pytest.raises(InjectorConfigError, match="memory_limit"):
        make_config(memory_limit="lots")
    with pytest.raises(InjectorConfigError, match="renamed_model_port"):
        make_config(renamed_model_port="model_port_that_is_long")
    with pytest.raises(InjectorConfigError, match="sample_rate"):
        make_config(sample_rate=1.5)
    assert make_config(cpu_limit="500m").cpu_limit == "500m"


# --- properties ---------------------------------------------------------------------------

_names = st.sampled_from(
    ["http", "metrics", "grpc", "web", "admin", "api", "probe", None, None, "dw-admin"]
)
_numbers = st.sampled_from([80, 8080, 8480, 8481, 8482, 9090, 50051])


@st.composite
def _pods(draw: st.DrawFn) -> dict[str, Any]:
    containers = []
    for i in range(draw(st.integers(1, 2))):
        ports = []
        for _ in range(draw(st.integers(0, 3))):
            port: dict[str, Any] = {"containerPort": draw(_numbers)}
            name = draw(_names)
            if name:
                port["name"] = name
            if draw(st.booleans()):
                port["protocol"] = draw(st.sampled_from(["TCP", "TCP", "UDP"]))
            ports.append(port)
        c: dict[str, Any] = {"name": f"c{i}", "image": "x", "ports": ports}
        for key in ("readinessProbe", "livenessProbe"):
            if draw(st.booleans()):
                ref = draw(st.one_of(_names.filter(bool), _numbers))
                action = draw(st.sampled_from(["httpGet", "tcpSocket"]))
                c[key] = {action: {"port": ref}}
        containers.append(c)
    choices = {
        "driftwarden.io/inject": ["true", "true", "true", "false", "maybe"],
        "driftwarden.io/model": ["credit", "fraud-v2"],
        "driftwarden.io/model-port": ["http", "metrics", "8080", "9090", "7000"],
        "driftwarden.io/sample-rate": ["0.5", "1", "0"],
        "driftwarden.io/payload-format": ["json", "kserve-v1", "open-inference-v2"],
    }
    annotations = {
        key: draw(st.sampled_from(values))
        for key, values in choices.items()
        if draw(st.integers(0, 3)) > (0 if key == "driftwarden.io/inject" else 2)
    }
    spec: dict[str, Any] = {"containers": containers}
    if draw(st.booleans()):
        spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    if draw(st.booleans()):
        spec["initContainers"] = [{"name": "init", "image": "x"}]
    return {
        "metadata": {"name": "p", "labels": {"app": "m"}, "annotations": annotations},
        "spec": spec,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod=_pods(), native=st.booleans(), ns_opt_in=st.booleans())
def test_injecting_twice_equals_once(pod: dict[str, Any], native: bool, ns_opt_in: bool) -> None:
    cfg = CFG.model_copy(update={"native_sidecar": native})
    d = _decide(pod, cfg, namespace_opt_in=ns_opt_in)
    assert d.outcome != "error", d.detail
    if not d.patch:
        assert d.outcome == "skipped"
        return
    once = apply(pod, d.patch)
    # The same patch applied again changes nothing ...
    assert apply(once, d.patch) == once
    # ... and the injected pod is recognised: a reinvocation adds nothing.
    again = _decide(once, cfg, namespace_opt_in=ns_opt_in)
    assert (again.reason, again.patch) == ("already_injected", [])

    # The result is a pod Kubernetes accepts: two new port numbers, free before; the names
    # the sidecar brings are unique in the pod, and a taken-over name stays unique.
    def ports(p: dict[str, Any]) -> list[dict[str, Any]]:
        cs = p["spec"]["containers"] + p["spec"].get("initContainers", [])
        return [port for c in cs for port in c.get("ports") or []]

    before, after = ports(pod), ports(once)
    added = {p["containerPort"] for p in after} - {p["containerPort"] for p in before}
    assert len(after) == len(before) + 2 and len(added) == 2
    names = [p.get("name") for p in after]
    for name in {cfg.admin_port_name, cfg.renamed_model_port, cfg.proxy_port_name} & set(names):
        assert names.count(name) == 1, name
    side = _sidecar(once)
    if d.reason == "named_port":
        taken = side["ports"][0]["name"]
        assert service_target(once, taken) == side["ports"][0]["containerPort"]
    # Every probe resolves to the same port number as before.
    for old, new in zip(pod["spec"]["containers"], once["spec"]["containers"], strict=False):
        for key in ("readinessProbe", "livenessProbe"):
            if key in old:
                assert probe_port(new, new[key]) == probe_port(old, old[key])


# --- payloads recorded from kube-apiserver (tests/integration/injector_record_reviews.py) --


@pytest.mark.parametrize(
    ("name", "namespace_opt_in", "outcome", "reason"),
    [
        ("plain", False, "injected", "named_port"),
        ("no_annotation", False, "skipped", "not_opted_in"),
        ("no_annotation", True, "injected", "named_port"),
        ("numeric_port", False, "injected", "numeric_port"),
        ("already_injected", False, "skipped", "already_injected"),
        ("host_network", False, "skipped", "host_network"),
    ],
)
def test_recorded_reviews(name: str, namespace_opt_in: bool, outcome: str, reason: str) -> None:
    recorded = load_recorded(name)
    _, uid, request = parse_review(recorded)
    assert uid and request["userInfo"]["username"].endswith("replicaset-controller")
    d = decide(request, CFG, namespace_opt_in=namespace_opt_in)
    assert (d.outcome, d.reason) == (outcome, reason), d.detail
    if outcome == "skipped":
        assert d.patch == []
        return
    pod = request["object"]
    out = apply(pod, d.patch)
    assert apply(out, d.patch) == out
    assert decide({**request, "object": out}, CFG).reason == "already_injected"
    side = _sidecar(out)
    if reason == "named_port":
        assert service_target(out, "http") == side["ports"][0]["containerPort"] == 8480
        model = out["spec"]["containers"][0]
        for key in ("readinessProbe", "livenessProbe"):
            assert probe_port(model, model[key]) == 8080
    else:
        assert out["spec"]["containers"] == pod["spec"]["containers"]
    # The API server's defaults on the model container are kept as they were.
    before = {k: v for k, v in pod["spec"]["containers"][0].items() if k != "ports"}
    after = out["spec"]["containers"][0]
    assert after["terminationMessagePath"] == before["terminationMessagePath"]
    assert after["imagePullPolicy"] == before["imagePullPolicy"]
