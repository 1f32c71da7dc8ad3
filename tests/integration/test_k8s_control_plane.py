"""Proof that the `k8s` fixture is a real Kubernetes control plane: workloads are scheduled
onto kwok's fake node and reach Running / Complete, a mutating webhook on 127.0.0.1 is
really called, failurePolicy Ignore admits pods while the webhook is down, and RBAC really
denies what a Role does not grant."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from driftwarden.errors import ServiceError
from driftwarden.services.kubernetes import KubeSettings
from driftwarden.services.ports import free_port
from tests.kits.kubernetes import AdmissionWebhook, KubeCluster, annotate, record_figure

pytestmark = pytest.mark.integration

RBAC_GROUP = "rbac.authorization.k8s.io"
IMAGE = "registry.invalid/never-pulled:1"  # kwok runs no containers; nothing is pulled


def _pod_spec() -> dict[str, Any]:
    return {"containers": [{"name": "main", "image": IMAGE}]}


def _pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": _pod_spec(),
    }


@pytest.fixture
def core(k8s: KubeCluster) -> Iterator[client.CoreV1Api]:
    with k8s.api_client() as api:
        yield client.CoreV1Api(api)


def test_deployment_pods_reach_running_on_the_fake_node(k8s: KubeCluster) -> None:
    ns = k8s.namespace("deploy")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": _pod_spec()},
        },
    }
    with k8s.api_client() as api:
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        t0 = time.monotonic()
        apps.create_namespaced_deployment(ns, deployment)

        def running_pods() -> list[client.V1Pod]:
            pods = core.list_namespaced_pod(ns, label_selector="app=web").items
            running = [p for p in pods if p.status.phase == "Running"]
            return running if len(running) == 2 else []

        pods = k8s.wait(running_pods, timeout=60, what="2 web pods Running")
        record_figure("pods_running_s", round(time.monotonic() - t0, 2))
        k8s.wait(
            lambda: (
                (apps.read_namespaced_deployment("web", ns).status.available_replicas or 0) == 2
            ),
            timeout=30,
            what="deployment web available",
        )
    pod_cidr = ipaddress.ip_network(KubeSettings().pod_cidr)
    for pod in pods:
        assert pod.spec.node_name == KubeSettings().node_name
        assert ipaddress.ip_address(pod.status.pod_ip) in pod_cidr  # kwok's fake, never used
        assert pod.status.container_statuses[0].ready is True


def test_job_reaches_complete(k8s: KubeCluster) -> None:
    ns = k8s.namespace("job")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {**_pod_spec(), "restartPolicy": "Never"}},
        },
    }
    with k8s.api_client() as api:
        batch = client.BatchV1Api(api)
        t0 = time.monotonic()
        batch.create_namespaced_job(ns, job)

        def complete() -> client.V1Job | None:
            current = batch.read_namespaced_job("train", ns)
            conditions = current.status.conditions or []
            done = any(c.type == "Complete" and c.status == "True" for c in conditions)
            return current if done else None

        finished = k8s.wait(complete, timeout=60, what="job train Complete")
        record_figure("job_complete_s", round(time.monotonic() - t0, 2))
    assert finished.status.succeeded == 1
    assert not finished.status.failed


def _webhook_configuration(
    name: str, url: str, ca_bundle: str, namespace: str, failure_policy: str
) -> dict[str, Any]:
    """Intercepts pod creation in `namespace` only, so the shared cluster's other tests
    never meet it."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "pods.driftwarden.test",
                "clientConfig": {
                    "url": f"{url}/mutate",
                    **({"caBundle": ca_bundle} if ca_bundle else {}),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": failure_policy,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }


@pytest.fixture
def webhook_configs(k8s: KubeCluster) -> Iterator[Callable[[dict[str, Any]], str]]:
    """Create MutatingWebhookConfigurations; all deleted at teardown."""
    names: list[str] = []
    with k8s.api_client() as api:
        admission = client.AdmissionregistrationV1Api(api)

        def create(body: dict[str, Any]) -> str:
            admission.create_mutating_webhook_configuration(body)
            names.append(body["metadata"]["name"])
            return body["metadata"]["name"]

        try:
            yield create
        finally:
            for name in names:
                admission.delete_mutating_webhook_configuration(name)


def _dry_run_create(core: client.CoreV1Api, ns: str, name: str) -> client.V1Pod | str:
    """Create a pod with dryRun=All (admission runs, nothing is stored): the pod as
    admitted, or the refusal's message."""
    try:
        return core.create_namespaced_pod(ns, _pod(name), dry_run="All")
    except client.ApiException as e:
        return f"HTTP {e.status}: {e.body}"


def test_mutating_webhook_on_loopback_is_called(
    k8s: KubeCluster,
    core: client.CoreV1Api,
    admission_webhook: Callable[..., AdmissionWebhook],
    webhook_configs: Callable[[dict[str, Any]], str],
) -> None:
    ns = k8s.namespace("webhook")
    webhook = admission_webhook(annotate("driftwarden.test/mutated", "yes"))
    webhook_configs(
        _webhook_configuration(f"dw-test-{ns}", webhook.url, webhook.ca_bundle, ns, "Fail")
    )

    # The API server picks the configuration up within a second or so; probe with dry runs.
    def mutated_probe() -> bool:
        answer = _dry_run_create(core, ns, "probe")
        return not isinstance(answer, str) and bool(
            (answer.metadata.annotations or {}).get("driftwarden.test/mutated")
        )

    k8s.wait(mutated_probe, timeout=30, what="webhook configuration in effect")

    created = core.create_namespaced_pod(ns, _pod("real", {"app": "real"}))
    assert created.metadata.annotations["driftwarden.test/mutated"] == "yes"
    request = webhook.wait_for(
        lambda r: r.get("dryRun") is False and r["object"]["metadata"].get("name") == "real"
    )
    assert request["namespace"] == ns
    assert request["operation"] == "CREATE"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    stored = core.read_namespaced_pod("real", ns)
    assert stored.metadata.annotations["driftwarden.test/mutated"] == "yes"


def test_failure_policy_ignore_admits_pods_while_the_webhook_is_down(
    k8s: KubeCluster,
    core: client.CoreV1Api,
    webhook_configs: Callable[[dict[str, Any]], str],
) -> None:
    ns = k8s.namespace("ignore")
    down_url = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    name = webhook_configs(_webhook_configuration(f"dw-test-{ns}", down_url, "", ns, "Fail"))

    # First prove the configuration is in effect: with failurePolicy Fail, pods are refused.
    refusal = k8s.wait(
        lambda: (lambda a: a if isinstance(a, str) else "")(_dry_run_create(core, ns, "probe")),
        timeout=30,
        what="pod creation refused by the unreachable webhook",
    )
    assert "failed calling webhook" in refusal
    assert "pods.driftwarden.test" in refusal

    with k8s.api_client() as api:
        client.AdmissionregistrationV1Api(api).patch_mutating_webhook_configuration(
            name,
            [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}],
        )
    k8s.wait(
        lambda: not isinstance(_dry_run_create(core, ns, "probe"), str),
        timeout=30,
        what="pod admitted with failurePolicy Ignore",
    )
    core.create_namespaced_pod(ns, _pod("admitted"))
    k8s.wait(
        lambda: core.read_namespaced_pod("admitted", ns).status.phase == "Running",
        timeout=60,
        what="pod admitted Running",
    )


def _status(call: Callable[[], Any]) -> int:
    """HTTP status of an API call: 200 when it succeeds, the error's status otherwise."""
    try:
        call()
    except client.ApiException as e:
        return int(e.status)
    return 200


def _grant_pod_reading(k8s: KubeCluster, ns: str, subject: dict[str, str]) -> None:
    """A Role allowing get/list on pods in `ns`, bound to `subject`."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "pod-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [subject],
    }
    with k8s.api_client() as api:
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(ns, role)
        rbac.create_namespaced_role_binding(ns, binding)


def _assert_may_only_read_pods(k8s: KubeCluster, token: str, ns: str, who: str) -> None:
    other = k8s.namespace("rbac-other")
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    with k8s.api_client_for_token(token) as api:
        core = client.CoreV1Api(api)
        # Granted (RBAC's cache may take a moment to see the new binding).
        k8s.wait(
            lambda: _status(lambda: core.list_namespaced_pod(ns)) == 200,
            timeout=30,
            what=f"{who} may list pods in {ns}",
        )
        # Not granted: another verb, another resource, another namespace, cluster scope.
        assert _status(lambda: core.create_namespaced_pod(ns, _pod("p"))) == 403
        assert _status(lambda: core.delete_namespaced_pod("any", ns)) == 403
        assert _status(lambda: core.list_namespaced_secret(ns)) == 403
        assert _status(lambda: core.create_namespaced_config_map(ns, configmap)) == 403
        assert _status(lambda: core.list_namespaced_pod(other)) == 403
        assert _status(lambda: core.list_node()) == 403


def test_rbac_denies_a_service_account_what_its_role_does_not_grant(k8s: KubeCluster) -> None:
    ns = k8s.namespace("rbac-sa")
    _grant_pod_reading(k8s, ns, {"kind": "ServiceAccount", "name": "reader", "namespace": ns})
    token = k8s.service_account_token(ns, "reader")
    _assert_may_only_read_pods(k8s, token, ns, "serviceaccount reader")
    # A ServiceAccount with no binding gets nothing; a made-up token is not authenticated.
    with k8s.api_client_for_token(k8s.service_account_token(ns, "nobody")) as api:
        assert _status(lambda: client.CoreV1Api(api).list_namespaced_pod(ns)) == 403
    with k8s.api_client_for_token("not-a-token") as api:
        assert _status(lambda: client.CoreV1Api(api).list_namespaced_pod(ns)) == 401


def test_rbac_denies_a_test_user_what_its_role_does_not_grant(k8s: KubeCluster) -> None:
    ns = k8s.namespace("rbac-user")
    _grant_pod_reading(k8s, ns, {"kind": "User", "name": "alice", "apiGroup": RBAC_GROUP})
    _assert_may_only_read_pods(k8s, k8s.token_for("alice"), ns, "user alice")
    with k8s.api_client_for_token(k8s.token_for("bob")) as api:  # bob: no binding
        assert _status(lambda: client.CoreV1Api(api).list_namespaced_pod(ns)) == 403


def test_token_for_names_the_problem_for_unknown_users(k8s: KubeCluster) -> None:
    with pytest.raises(ServiceError, match="not in the token file"):
        k8s.token_for("mallory")
    with pytest.raises(ServiceError, match="not in the token file"):
        k8s.token_for("alice", groups=["system:masters"])
