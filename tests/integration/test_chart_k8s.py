"""`helm install` of charts/driftwarden into the real API server (tests/kits/kubernetes.py):
every object passes a strict server-side dry run, the install (hooks included; kwok completes
their pods) succeeds, the injector's pod runs behind the Service the webhooks call, and the
certificate hook's script does its work with the hook's own, least-privilege, token."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kits.chart import CHART, KUBECTL, run_helm, template, values_file
from tests.kits.kubernetes import KubeCluster, record_figure

pytestmark = pytest.mark.integration


def _values(ns: str, other: str) -> dict[str, Any]:
    return {
        # CRD-dependent objects off: this API server has no prometheus-operator CRDs
        "monitoring": {"prometheusOperator": False, "rulesConfigMap": True},
        "alertmanager": {"alertmanagerConfig": False},
        # the webhooks see only namespaces carrying this label (none): a shared cluster
        "injector": {"replicas": 1, "namespaceLabels": {"driftwarden-test": ns}},
        "trigger": {"namespaces": [ns, other]},
        "detectors": {"specs": {"fraud": {"model": "fraud"}}},
        # Secret volumes of the Kafka credentials in every Kafka client (validated too)
        "kafka": {
            "bootstrap": "127.0.0.1:9",
            "security": {
                "protocol": "SASL_SSL",
                "caSecret": "kafka-ca",
                "username": "driftwarden",
                "passwordSecret": "kafka-user",
                "users": {"detectors": {"username": "dw-detectors", "passwordSecret": "kafka-det"}},
            },
        },
    }


def _kubeconfig_for_token(k8s: KubeCluster, token: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": k8s.server, "certificate-authority": str(k8s.ca_file)},
            }
        ],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_helm_install_into_the_real_api_server(k8s: KubeCluster, tmp_path: Path) -> None:
    from kubernetes import client

    ns = k8s.namespace("chart")
    other = k8s.namespace("chart-ml")
    release = f"dw{ns[-6:]}"
    full = f"{release}-driftwarden"
    values = _values(ns, other)
    helm_env = {
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
        "KUBECONFIG": str(k8s.kubeconfig),
    }

    # 1. every object, hooks included, accepted by the API server with strict field validation
    rendered = template(values, release=release, namespace=ns)
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered.stdout)
    objects = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    dry_run = subprocess.run(
        [
            str(KUBECTL),
            "--kubeconfig",
            str(k8s.kubeconfig),
            # discovery cache in the test's folder, not ~/.kube (or the working tree)
            f"--cache-dir={tmp_path / 'kube-cache'}",
            "apply",
            "--server-side",
            "--dry-run=server",
            "--validate=strict",
            "--field-manager=chart-test",
            "-f",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    assert len(dry_run.stdout.strip().splitlines()) == len(objects)

    # 2. the install itself, waiting for hooks and workloads
    try:
        started = time.monotonic()
        install = run_helm(
            [
                "install",
                release,
                str(CHART),
                "--namespace",
                ns,
                "--wait",
                "--timeout",
                "180s",
                "-f",
                str(values_file(values, tmp_path)),
            ],
            env=helm_env,
            timeout=240,
        )
        assert install.returncode == 0, install.stdout + install.stderr
        record_figure("helm_install_s", round(time.monotonic() - started, 1))

        with k8s.api_client() as api:
            core = client.CoreV1Api(api)
            admission = client.AdmissionregistrationV1Api(api)
            rbac = client.RbacAuthorizationV1Api(api)
            batch = client.BatchV1Api(api)

            # 3. the injector's pod is Running, behind the Service both webhooks call
            selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=injector"
            pods = k8s.wait(
                lambda: [
                    p
                    for p in core.list_namespaced_pod(ns, label_selector=selector).items
                    if p.status.phase == "Running" and p.status.pod_ip
                ],
                timeout=60,
                what="the injector pod Running",
            )
            pod = pods[0]
            webhook_config = admission.read_mutating_webhook_configuration(f"{full}-injector")
            assert [w.name for w in webhook_config.webhooks] == [
                "pods.inject.driftwarden.io",
                "namespaces.inject.driftwarden.io",
            ]
            for hook in webhook_config.webhooks:
                ref = hook.client_config.service
                assert (ref.namespace, ref.name, ref.port) == (ns, f"{full}-injector", 443)
                assert hook.failure_policy == "Ignore"
                service = core.read_namespaced_service(ref.name, ref.namespace)
                assert all(
                    pod.metadata.labels.get(k) == v for k, v in service.spec.selector.items()
                )
                port = next(p for p in service.spec.ports if p.port == ref.port)
                container_ports = {p.name: p.container_port for p in pod.spec.containers[0].ports}
                assert port.target_port in container_ports
            discovery = client.DiscoveryV1Api(api)
            k8s.wait(
                lambda: any(
                    pod.status.pod_ip in (e.addresses or []) and e.conditions.ready
                    for s in discovery.list_namespaced_endpoint_slice(
                        ns, label_selector=f"kubernetes.io/service-name={full}-injector"
                    ).items
                    for e in (s.endpoints or [])
                ),
                timeout=60,
                what="the injector pod in the Service's endpoints",
            )

            # 4. hooks ran and were deleted on success; the trigger's Roles are where asked
            jobs = [j.metadata.name for j in batch.list_namespaced_job(ns).items]
            assert f"{full}-topics" not in jobs and f"{full}-injector-certs-pre" not in jobs
            for namespace in (ns, other):
                role = rbac.read_namespaced_role(f"{full}-retrain-trigger", namespace)
                assert {r.resources[0] for r in role.rules} == {"jobs", "events", "deployments"}
                role = rbac.read_namespaced_role(f"{full}-canary", namespace)
                assert {r.resources[0] for r in role.rules} == {"deployments", "jobs", "events"}
            for name in ("detectors", "retrain-trigger", "canary"):
                deployment = client.AppsV1Api(api).read_namespaced_deployment(f"{full}-{name}", ns)
                assert deployment.status.ready_replicas == 1, name

            # 4b. hook objects (ServiceAccount, RBAC, script) were removed once they succeeded
            hook_name = f"{full}-injector-certs"
            cluster_roles = {r.metadata.name for r in rbac.list_cluster_role().items}
            assert hook_name not in cluster_roles
            assert hook_name not in {
                a.metadata.name for a in core.list_namespaced_service_account(ns).items
            }

            # 5. the certificate hook's script, with exactly the hook's RBAC (the chart's
            #    rendered ServiceAccount, Role, ClusterRole and bindings, applied here)
            hook_objects = [
                d
                for d in objects
                if d["metadata"]["name"] == hook_name
                and d["kind"] != "ConfigMap"
                and "helm.sh/hook" in (d["metadata"].get("annotations") or {})
            ]
            assert {d["kind"] for d in hook_objects} == {
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
            }
            hook_manifest = tmp_path / "hook-rbac.yaml"
            hook_manifest.write_text(yaml.safe_dump_all(hook_objects))
            kubectl = [
                str(KUBECTL),
                "--kubeconfig",
                str(k8s.kubeconfig),
                f"--cache-dir={tmp_path / 'kube-cache'}",
            ]
            applied = subprocess.run(
                [*kubectl, "create", "-f", str(hook_manifest)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert applied.returncode == 0, applied.stderr
            token = k8s.service_account_token(ns, hook_name)
            env = {
                **os.environ,
                "KUBECONFIG": str(_kubeconfig_for_token(k8s, token, tmp_path / "hook.kubeconfig")),
            }
            certs = tmp_path / "certs"
            made = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "driftwarden",
                    "injector",
                    "certs",
                    "--out",
                    str(certs),
                    "--service",
                    f"{full}-injector",
                    "--namespace",
                    ns,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert made.returncode == 0, made.stderr
            script = CHART / "files" / "scripts" / "webhook_certs.py"
            tls = f"{full}-injector-tls"

            def hook(*args: str) -> str:
                done = subprocess.run(
                    [sys.executable, str(script), *args],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=60,
                    check=False,
                )
                assert done.returncode == 0, done.stderr
                return done.stdout.strip()

            secret_args = ("secret", "--namespace", ns, "--secret", tls, "--certs", str(certs))
            assert hook(*secret_args) == f"secret {ns}/{tls}: created"
            assert hook(*secret_args) == f"secret {ns}/{tls}: kept (valid, same names)"
            assert hook(
                "cabundle", "--namespace", ns, "--secret", tls, "--webhook", f"{full}-injector"
            ).endswith("caBundle set on 2 webhooks")
            secret = core.read_namespaced_secret(tls, ns)
            assert secret.type == "kubernetes.io/tls"
            ca = (certs / "ca.crt").read_bytes()
            assert base64.b64decode(secret.data["ca.crt"]) == ca
            patched = admission.read_mutating_webhook_configuration(f"{full}-injector")
            assert all(base64.b64decode(w.client_config.ca_bundle) == ca for w in patched.webhooks)
            # ... and nothing more: another Secret is out of its reach
            denied = subprocess.run(
                [
                    sys.executable,
                    str(script),
                    "cabundle",
                    "--namespace",
                    ns,
                    "--secret",
                    f"{full}-retrain-trigger-token",
                    "--webhook",
                    f"{full}-injector",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
            assert denied.returncode == 1 and "403" in denied.stderr
            removed = subprocess.run(
                [*kubectl, "delete", "-f", str(hook_manifest)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert removed.returncode == 0, removed.stderr

            # 6. an upgrade keeps the generated bearer token (both Secrets) and the hooks rerun
            def tokens() -> tuple[bytes, bytes]:
                mine = core.read_namespaced_secret(f"{full}-retrain-trigger-token", ns)
                alertmanagers = core.read_namespaced_secret("driftwarden-retrain", ns)
                return mine.data["token"], alertmanagers.data["token"]

            before = tokens()
            assert before[0] == before[1]
            upgrade = run_helm(
                [
                    "upgrade",
                    release,
                    str(CHART),
                    "--namespace",
                    ns,
                    "--wait",
                    "--timeout",
                    "180s",
                    "-f",
                    str(values_file(values, tmp_path)),
                ],
                env=helm_env,
                timeout=240,
            )
            assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
            assert tokens() == before
            assert base64.b64decode(core.read_namespaced_secret(tls, ns).data["ca.crt"]) == ca
            # the upgrade's own apply of the webhook configuration leaves the caBundle alone
            upgraded = admission.read_mutating_webhook_configuration(f"{full}-injector")
            assert all(base64.b64decode(w.client_config.ca_bundle) == ca for w in upgraded.webhooks)
    finally:
        uninstall = run_helm(
            ["uninstall", release, "--namespace", ns, "--wait", "--timeout", "120s"],
            env=helm_env,
            timeout=180,
        )
    assert uninstall.returncode == 0, uninstall.stderr
    with k8s.api_client() as api:
        names = [
            m.metadata.name
            for m in client.AdmissionregistrationV1Api(api)
            .list_mutating_webhook_configuration()
            .items
        ]
        assert f"{full}-injector" not in names
        rbac = client.RbacAuthorizationV1Api(api)
        selector = f"app.kubernetes.io/instance={release}"
        assert not rbac.list_cluster_role(label_selector=selector).items
        assert not rbac.list_cluster_role_binding(label_selector=selector).items
