"""The pure parts of the demo's node (`driftwarden demo --kubeconfig`): what it registers,
the pod status it reports, how pods are pinned to it and the Service-like balancing."""

from __future__ import annotations

import pytest

from driftwarden.demo.cluster import Endpoint, TrafficSplit
from driftwarden.demo.node import (
    NODE_LABEL,
    ServiceBalancer,
    demo_node_name,
    node_manifest,
    node_status,
    placement,
    pod_status,
)
from driftwarden.demo.runner import PROFILES, policy_document, stable_deployment
from retrain_trigger.policy import RetrainPolicy


def test_the_node_name_is_a_dns_label() -> None:
    assert demo_node_name("My_Laptop.local") == "driftwarden-demo-my-laptop-local"
    assert len(demo_node_name("x" * 200)) <= 63


def test_only_pods_placed_on_the_node_tolerate_its_taint() -> None:
    node = node_manifest("n1")
    taint = node["spec"]["taints"][0]
    assert node["metadata"]["labels"][NODE_LABEL] == "n1"
    pin = placement("n1")
    assert pin["nodeSelector"] == {NODE_LABEL: "n1"}
    toleration = pin["tolerations"][0]
    assert (toleration["key"], toleration["value"], toleration["effect"]) == (
        taint["key"],
        taint["value"],
        taint["effect"],
    )


def test_the_node_reports_ready_with_a_fresh_heartbeat() -> None:
    status = node_status("n1", 1_700_000_000.0)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["lastHeartbeatTime"] == "2023-11-14T22:13:20Z"
    assert status["allocatable"]["pods"] == "110"


def test_pod_status_running_then_terminated() -> None:
    containers = [{"name": "model", "image": "i"}, {"name": "collector", "image": "i"}]
    running = pod_status(containers, started=0.0)["status"]
    assert running["phase"] == "Running" and running["podIP"] == "127.0.0.1"
    assert {c["type"]: c["status"] for c in running["conditions"]}["Ready"] == "True"
    assert [c["name"] for c in running["containerStatuses"]] == ["model", "collector"]
    done = pod_status(containers[:1], started=0.0, exit_code=0, finished=60.0)["status"]
    assert done["phase"] == "Succeeded"
    term = done["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["finishedAt"] == "1970-01-01T00:01:00Z"
    failed = pod_status(containers[:1], started=0.0, exit_code=3, message="boom")["status"]
    assert failed["phase"] == "Failed"
    assert failed["containerStatuses"][0]["state"]["terminated"]["message"] == "boom"
    assert {c["type"]: c["status"] for c in failed["conditions"]}["Ready"] == "False"


def test_the_balancer_sends_the_canary_its_share_of_ready_pods() -> None:
    service = ServiceBalancer("credit", seed=3)
    assert service.pick() is None and service.canary_weight() == 0
    service.set_endpoint("credit-a", Endpoint("credit", "v1", "http://a", "http://a/f"))
    assert service.serves("credit") and not service.serves("credit-canary")
    service.set_endpoint(
        "credit-canary-b", Endpoint("credit-canary", "v2", "http://b", "http://b/f")
    )
    assert service.canary_weight() == 50
    picks = [service.pick().version for _ in range(4_000)]
    assert picks.count("v2") / len(picks) == pytest.approx(0.5, abs=0.03)
    service.set_endpoint("credit-a", None)  # the stable scaled to 0 at the 100 % step
    assert service.canary_weight() == 100
    split = TrafficSplit("credit", "credit-canary")
    split.set_weight(30)
    assert split.canary_weight() == 0  # no canary pod ready yet


def test_the_policy_and_deployment_pin_their_pods_to_the_node(tmp_path) -> None:
    pin = placement("n1")
    doc = policy_document(
        PROFILES["fast"], spec=tmp_path / "s.yaml", output=tmp_path, seed=1, namespace="ns",
        placement=pin,
    )  # fmt: skip
    policy = RetrainPolicy.model_validate(doc)
    assert policy.namespace == "ns" and policy.trainer.node_selector == {NODE_LABEL: "n1"}
    assert policy.trainer.tolerations[0].value == "n1"
    deployment = stable_deployment(
        tmp_path / "a", tmp_path / "s.yaml", "127.0.0.1:9092", namespace="ns", placement=pin
    )
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["metadata"]["namespace"] == "ns"
    assert spec["nodeSelector"] == pin["nodeSelector"] and spec["tolerations"] == pin["tolerations"]
    assert all(c["image"] for c in spec["containers"])
