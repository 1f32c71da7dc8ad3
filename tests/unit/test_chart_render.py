"""The Helm chart rendered offline: lint, every object valid for the Kubernetes versions we
support, RBAC no wider than documented, the values schema's messages, and the objects that
must agree with the code (webhook configuration, topics, scrape job names, security)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import driftwarden
from tests.kits.chart import (
    CHART,
    EVERYTHING_ON,
    KUBE_VERSIONS,
    STRIMZI,
    VALUE_SETS,
    by_kind,
    is_crd_kind,
    one,
    render,
    run_helm,
    template,
    validate_offline,
    values_file,
)

ROOT = Path(__file__).resolve().parents[2]
RENDERED = {name: render(values) for name, values in VALUE_SETS.items()}


def test_chart_version_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == driftwarden.__version__


@pytest.mark.parametrize("values", ["defaults", "everything-on"])
def test_lint_strict(values: str, tmp_path: Path) -> None:
    result = run_helm(
        ["lint", "--strict", str(CHART), "-f", str(values_file(VALUE_SETS[values], tmp_path))]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_every_object_is_valid_offline(values: str, kube_version: str) -> None:
    docs = (
        RENDERED[values]
        if kube_version == KUBE_VERSIONS[-1]
        else render(VALUE_SETS[values], kube_version=kube_version)
    )
    checked = 0
    for doc in docs:
        if is_crd_kind(doc):
            assert doc["metadata"]["name"] and "spec" in doc, doc
            continue
        validate_offline(doc, kube_version)
        checked += 1
    assert checked >= 15


def test_value_sets_render_what_they_toggle() -> None:
    kinds = {name: {d["kind"] for d in docs} for name, docs in RENDERED.items()}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Job"} <= kinds["defaults"]
    assert "HorizontalPodAutoscaler" not in kinds["defaults"]
    assert {"HorizontalPodAutoscaler", "AlertmanagerConfig", "ClusterRole"} <= kinds[
        "everything-on"
    ]
    assert (
        not {"ServiceMonitor", "PodMonitor", "PrometheusRule"} & kinds["no-kube-prometheus-stack"]
    )
    assert {"Certificate", "Issuer"} <= kinds["cert-manager"]
    assert "Certificate" not in kinds["defaults"]
    assert "KafkaTopic" in kinds["strimzi"]


# --- RBAC ---------------------------------------------------------------------------------


def _expand(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, str | None]]:
    out = set()
    for rule in rules:
        names = rule.get("resourceNames") or [None]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in names:
                        out.add((group, resource, verb, name))
    return out


def _documented() -> dict[str, set[tuple[str, str, str, str | None]]]:
    text = (ROOT / "docs" / "chart.md").read_text().split("## RBAC", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set] = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        block = block.replace("<release>", "driftwarden")
        for role, rules in yaml.safe_load(block).items():
            documented[role] = _expand(rules)
    return documented


def _trigger_doc_rules() -> set[tuple[str, str, str, str | None]]:
    text = (ROOT / "docs" / "retrain-trigger.md").read_text().split("## RBAC", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    return _expand(yaml.safe_load(block)["rules"])


def test_trigger_role_is_exactly_the_documented_list() -> None:
    docs = RENDERED["everything-on"]
    roles = [d for d in by_kind(docs, "Role") if d["metadata"]["name"].endswith("retrain-trigger")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ml-a", "ml-b"]
    for role in roles:
        assert _expand(role["rules"]) == _trigger_doc_rules()
    bindings = [
        d for d in by_kind(docs, "RoleBinding") if d["metadata"]["name"].endswith("retrain-trigger")
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ml-a", "ml-b"]
    assert all(b["subjects"][0]["namespace"] == "driftwarden" for b in bindings)


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_rbac_grants_nothing_beyond_the_documented_list(values: str) -> None:
    documented = _documented()
    assert documented["retrain-trigger"] == _trigger_doc_rules()
    granted: dict[str, set] = {}
    for doc in RENDERED[values]:
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        role = doc["metadata"]["name"].removeprefix("driftwarden-")
        assert role in documented, f"{doc['kind']} {role} is not documented in docs/chart.md"
        rules = _expand(doc["rules"])
        wide = {(g, r, v, None) for g, r, v, _ in rules}
        allowed = documented[role]
        extra = {t for t in rules if t not in allowed and (*t[:3], None) not in allowed}
        assert not extra, f"{doc['kind']} {role} grants undocumented {sorted(extra, key=str)}"
        assert not any("*" in t for t in wide), f"{role}: wildcard"
        assert not any(t[2] in ("escalate", "bind", "impersonate") for t in rules)
        granted.setdefault(role, set()).update(rules)
    if values == "defaults":
        assert set(granted) == {"retrain-trigger", "injector-certs", "canary"}
    injector_sa = one(RENDERED[values], "ServiceAccount", "-injector")
    assert injector_sa["automountServiceAccountToken"] is False


def test_injector_has_no_rbac_unless_the_reconciler_is_on() -> None:
    deployment = one(RENDERED["defaults"], "Deployment", "-injector")
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    on = one(RENDERED["everything-on"], "Deployment", "-injector")
    assert on["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    env = {
        e["name"]: e.get("value") for e in on["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DRIFTWARDEN_RECONCILE_INTERVAL"] == "60"


# --- values.schema.json ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"detectors": {"replicas": "two"}}, "/detectors/replicas"),
        ({"detectors": {"replica": 2}}, "replica"),
        ({"kafka": {"topics": {"mode": "zookeeper"}}}, "/kafka/topics/mode"),
        ({"kafka": {"topics": {"replicationFactor": 0}}}, "/kafka/topics/replicationFactor"),
        ({"kafka": {"bootstrap": "kafka"}}, "/kafka/bootstrap"),
        ({"injector": {"certs": {"mode": "selfsigned"}}}, "/injector/certs/mode"),
        ({"injector": {"sidecar": {"sampleRate": 1.5}}}, "/injector/sidecar/sampleRate"),
        ({"injector": {"timeoutSeconds": 60}}, "/injector/timeoutSeconds"),
        ({"trigger": {"namespaces": ["Bad_NS"]}}, "/trigger/namespaces/0"),
        ({"detectors": {"resources": {"limits": {"memory": "2 gigs"}}}}, "memory"),
        ({"monitoring": {"interval": "often"}}, "/monitoring/interval"),
        ({"canary": {"prometheusUrl": "prometheus:9090"}}, "/canary/prometheusUrl"),
        ({"kafka": {"security": {"saslSecret": "kafka-user"}}}, "saslSecret"),
        ({"kafka": {"security": {"protocol": "TLS"}}}, "/kafka/security/protocol"),
        (
            {"kafka": {"security": {"passwordSecret": "Kafka_User"}}},
            "/kafka/security/passwordSecret",
        ),
        (
            {"kafka": {"security": {"protocol": "SASL_PLAINTEXT", "saslMechanism": "PLAIN"}}},
            "/kafka/security/saslMechanism",
        ),
        ({"kafka": {"security": {"users": {"dataset": {}}}}}, "dataset"),
    ],
)
def test_schema_rejects_bad_values_naming_them(values: dict[str, Any], named: str) -> None:
    result = template(values)
    assert result.returncode != 0, f"accepted {values}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert named in result.stderr, result.stderr


def test_canary_controller_runs_in_the_trigger_namespaces() -> None:
    docs = RENDERED["everything-on"]
    pod = one(docs, "Deployment", "-canary")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["canary", "run"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DRIFTWARDEN_NAMESPACES"] == "ml-a,ml-b"
    assert env["DRIFTWARDEN_PROMETHEUS"] == "http://prometheus-operated.monitoring.svc:9090"
    policies = next(v for v in pod["volumes"] if v["name"] == "policies")
    assert policies["configMap"]["name"] == "driftwarden-retrain-trigger-policies"
    roles = [d for d in by_kind(docs, "Role") if d["metadata"]["name"] == "driftwarden-canary"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ml-a", "ml-b"]
    assert {"services", "httproutes"} <= {r["resources"][0] for r in roles[0]["rules"]}
    plain = one(RENDERED["defaults"], "Role", "-canary")
    assert not {"services", "httproutes"} & {r["resources"][0] for r in plain["rules"]}
    off = render({"canary": {"enabled": False}})
    assert not [d for d in off if d["metadata"]["name"].endswith("-canary")]


# --- objects that must agree with the code --------------------------------------------------


@pytest.mark.parametrize("values", ["defaults", "everything-on", "cert-manager"])
def test_webhook_configuration_is_the_injectors_own(values: str) -> None:
    from collector.injector.webhook_config import webhook_configuration

    rendered = one(RENDERED[values], "MutatingWebhookConfiguration", "-injector")
    labels = VALUE_SETS[values].get("injector", {}).get("namespaceLabels")
    expected = webhook_configuration(
        ca_bundle=b"",
        namespace="driftwarden",
        name="driftwarden-injector",
        service="driftwarden-injector",
        namespace_labels=labels,
    )
    got = [
        dict(w, clientConfig={k: v for k, v in w["clientConfig"].items() if k != "caBundle"})
        for w in rendered["webhooks"]
    ]
    want = [
        dict(w, clientConfig={k: v for k, v in w["clientConfig"].items() if k != "caBundle"})
        for w in expected["webhooks"]
    ]
    assert got == want
    if values == "cert-manager":
        assert rendered["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
            "driftwarden/driftwarden-injector-serving"
        )


def test_strimzi_topics_are_the_topics_command_plan() -> None:
    from driftwarden.cli.topics import topic_plan

    topics = {t["spec"]["topicName"]: t for t in by_kind(RENDERED["strimzi"], "KafkaTopic")}
    plan = topic_plan("driftwarden", partitions=6, replication_factor=3, retention_hours=24)
    assert set(topics) == {t.name for t in plan}
    for spec in plan:
        topic = topics[spec.name]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["replicas"] == spec.replication_factor
        assert topic["spec"]["config"] == dict(spec.config)
    assert STRIMZI["kafka"]["topics"]["retentionHours"] == 24


def test_topics_job_runs_before_the_components_with_the_values() -> None:
    job = one(RENDERED["everything-on"], "Job", "-topics")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["topics", "create"]
    assert "--partitions=6" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["DRIFTWARDEN_KAFKA_USERNAME"] == "driftwarden"
    assert env["DRIFTWARDEN_KAFKA_PASSWORD_FILE"] == "/etc/driftwarden/kafka/sasl/password"
    assert env["DRIFTWARDEN_KAFKA_CA_FILE"] == "/etc/driftwarden/kafka/ca/ca.crt"


# --- Kafka security: the --kafka-* group of every component, secrets as files --------------

#: Kafka client -> (container name, user of kafka.security.users, expected user, password Secret)
KAFKA_CLIENTS = {
    ("Deployment", "-detectors"): ("detectors", "dw-detectors", "kafka-det"),
    ("Deployment", "-retrain-trigger"): ("trigger", "driftwarden", "kafka-user"),
    ("Deployment", "-canary"): ("canary", "driftwarden", "kafka-user"),
    ("Job", "-topics"): ("topics", "driftwarden", "kafka-user"),
}


def _mounted(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[dict, dict]:
    """(the volume, its mount) that `path` lies in; fails when no mount holds it."""
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            return volume, mount
    raise AssertionError(f"{container['name']}: {path} is on no volume")


def test_kafka_security_reaches_every_client_as_files() -> None:
    """SASL_SSL + SCRAM + CA (everything-on): each Kafka client gets exactly the
    DRIFTWARDEN_KAFKA_* variables of its command, its own user, and its password and CA as
    files on read-only Secret volumes (whole Secrets, no subPath: the kubelet updates them)."""
    from driftwarden.kafka import KafkaSecurity, security_from_args

    docs = RENDERED["everything-on"]
    for (kind, suffix), (name, user, password_secret) in KAFKA_CLIENTS.items():
        pod = one(docs, kind, suffix)["spec"]["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] == name]
        env = {e["name"]: e for e in container["env"]}
        kafka = {k: e["value"] for k, e in env.items() if k.startswith("DRIFTWARDEN_KAFKA_")}
        assert kafka == {
            "DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "DRIFTWARDEN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "DRIFTWARDEN_KAFKA_USERNAME": user,
            "DRIFTWARDEN_KAFKA_PASSWORD_FILE": "/etc/driftwarden/kafka/sasl/password",
            "DRIFTWARDEN_KAFKA_CA_FILE": "/etc/driftwarden/kafka/ca/ca.crt",
            "DRIFTWARDEN_KAFKA_VERIFY_HOSTNAME": "true",
        }, name
        # the component builds its security group from exactly these variables
        security, _ = security_from_args([], kafka)
        assert security == KafkaSecurity(
            protocol="SASL_SSL",
            username=user,
            password_file=Path("/etc/driftwarden/kafka/sasl/password"),
            ca_file=Path("/etc/driftwarden/kafka/ca/ca.crt"),
        )
        for variable, secret, key in (
            ("DRIFTWARDEN_KAFKA_PASSWORD_FILE", password_secret, "password"),
            ("DRIFTWARDEN_KAFKA_CA_FILE", "kafka-ca", "ca.crt"),
        ):
            path = kafka[variable]
            volume, mount = _mounted(pod, container, path)
            assert mount["readOnly"] is True and "subPath" not in mount, (name, mount)
            assert volume["secret"]["secretName"] == secret, (name, volume)
            assert volume["secret"]["items"] == [{"key": key, "path": key}]
            assert volume["secret"]["defaultMode"] == 0o440
            assert path == f"{mount['mountPath']}/{key}"
        assert pod["securityContext"]["fsGroup"] == 65532  # group-readable 0440 files


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_no_secret_is_an_environment_variable(values: str) -> None:
    """Passwords travel as files only: no env value of any pod names a password, and no
    variable is filled from a Kafka Secret (`kubectl describe` and /proc/<pid>/environ
    would show it)."""
    kafka_secrets = {"kafka-user", "kafka-det", "kafka-ca", "my-cluster-cluster-ca-cert"}
    for doc in RENDERED[values]:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            for e in container.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                assert ref is None or ref["name"] not in kafka_secrets, (doc["metadata"], e)
                assert "PASSWORD" not in e["name"] or e["name"].endswith("_PASSWORD_FILE"), e
                assert "password" not in str(e.get("value", "")).replace("/password", ""), e
            assert not container.get("envFrom"), doc["metadata"]["name"]


def test_strimzi_users_carry_each_components_least_acls() -> None:
    """kafka.security.strimziUsers: one KafkaUser per component with the ACLs of
    driftwarden.kafka.component_acls (via the generated files/kafka-acls.yaml), and each
    component logs in as that user with the Secret Strimzi writes for it."""
    from charts.sync import strimzi_acls

    docs = RENDERED["strimzi"]
    expected = strimzi_acls("driftwarden", "driftwarden-detectors")
    users = {u["metadata"]["name"]: u for u in by_kind(docs, "KafkaUser")}
    assert set(users) == {
        "driftwarden-kafka-detectors",
        "driftwarden-kafka-trigger",
        "driftwarden-kafka-canary",
        "driftwarden-kafka-collector",  # the injected sidecars' principal
    }
    assert (
        users["driftwarden-kafka-collector"]["spec"]["authorization"]["acls"]
        == (expected["collector"])
    )
    for (kind, suffix), (name, _, _) in KAFKA_CLIENTS.items():
        if kind == "Job":
            continue  # topics: KafkaTopics in Strimzi mode, no hook Job
        user = users[f"driftwarden-kafka-{name}"]
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["acls"] == expected[name]
        pod = one(docs, kind, suffix)["spec"]["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] == name]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DRIFTWARDEN_KAFKA_USERNAME"] == user["metadata"]["name"]
        volume, _ = _mounted(pod, container, env["DRIFTWARDEN_KAFKA_PASSWORD_FILE"])
        assert volume["secret"]["secretName"] == user["metadata"]["name"]
    detectors = {
        (a["resource"]["type"], a["resource"]["name"]): a["operations"]
        for a in users["driftwarden-kafka-detectors"]["spec"]["authorization"]["acls"]
    }
    assert detectors[("transactionalId", "driftwarden-detectors.")] == ["Write", "Describe"]
    assert ("topic", "driftwarden.lineage") not in detectors
    assert not by_kind(RENDERED["defaults"], "KafkaUser")


def test_the_acl_table_in_docs_is_component_acls() -> None:
    """docs/chart.md lists each chart principal's ACLs: exactly component_acls() and
    topics_acls(), for the default prefix and group."""
    from driftwarden.cli.topics import topics_acls
    from driftwarden.kafka import component_acls

    text = (ROOT / "docs" / "chart.md").read_text().split("### Kafka security", 1)[1]
    table = text.split("| user | resource | name | pattern | operations |", 1)[1]
    documented = set()
    for line in table.split("\n\n", 1)[0].strip().splitlines()[1:]:
        user, resource, name, pattern, ops = (c.strip() for c in line.strip("|").split("|"))
        documented.add(
            (user, resource, name.strip("`"), pattern, tuple(o.strip() for o in ops.split(",")))
        )
    acls = component_acls("driftwarden", "driftwarden-detectors")
    principals = {
        "detectors": acls["detectors"],
        "trigger": acls["trigger"],
        "canary": acls["canary"],
        "topics": topics_acls("driftwarden"),
    }
    expected = {
        (
            user,
            acl.resource,
            acl.name,
            "prefixed" if acl.prefixed else "literal",
            tuple(op.capitalize() for op in acl.operations),
        )
        for user, entries in principals.items()
        for acl in entries
    }
    assert documented == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"kafka": {"security": {"protocol": "SASL_SSL", "passwordSecret": "p"}}},
            "kafka.security.username (or kafka.security.users.",
        ),
        (
            {"kafka": {"security": {"protocol": "SASL_SSL", "username": "u"}}},
            "kafka.security.passwordSecret (or kafka.security.users.",
        ),
        (
            {"kafka": {"security": {"caSecret": "ca"}}},
            "kafka.security.caSecret/certSecret need kafka.security.protocol SSL or SASL_SSL",
        ),
        (
            {"kafka": {"security": {"username": "u"}}},
            "need kafka.security.protocol SASL_SSL or SASL_PLAINTEXT, not PLAINTEXT",
        ),
        (
            {
                "kafka": {
                    "security": {
                        "protocol": "SASL_SSL",
                        "saslMechanism": "SCRAM-SHA-256",
                        "strimziUsers": True,
                    },
                    "topics": {"mode": "strimzi"},
                }
            },
            "saslMechanism must be SCRAM-SHA-512",
        ),
        (
            {
                "kafka": {
                    "security": {"protocol": "SASL_SSL", "strimziUsers": True},
                    "topics": {"mode": "strimzi", "strimzi": {"namespace": "kafka"}},
                }
            },
            "can mount only Secrets of driftwarden",
        ),
        (
            {"kafka": {"security": {"protocol": "SASL_SSL", "strimziUsers": True}}},
            "kafka.security.users.topics.username",
        ),
    ],
)
def test_inconsistent_kafka_security_fails_naming_the_value(
    values: dict[str, Any], message: str
) -> None:
    result = template(values)
    assert result.returncode != 0, f"accepted {values}"
    assert message in result.stderr, result.stderr


def test_scrape_job_names_are_the_ones_the_alerts_expect() -> None:
    rules = "".join(p.read_text() for p in (ROOT / "alerts" / "rules").glob("*.yaml"))
    expected = set(re.findall(r'job="([^"]+)"', rules))
    assert expected == {"driftwarden-collector", "driftwarden-detectors"}
    docs = RENDERED["defaults"]
    jobs = set()
    for monitor in by_kind(docs, "ServiceMonitor") + by_kind(docs, "PodMonitor"):
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        jobs |= {
            r["replacement"]
            for e in endpoints
            for r in e["relabelings"]
            if r["targetLabel"] == "job"
        }
    assert expected <= jobs
    pod_monitor = one(docs, "PodMonitor", "-collector")
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "dw-admin"
    snippet = one(RENDERED["no-kube-prometheus-stack"], "ConfigMap", "-prometheus")
    scrape = yaml.safe_load(snippet["data"]["scrape-configs.yaml"])
    assert expected <= {s["job_name"] for s in scrape}


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_every_pod_is_locked_down(values: str) -> None:
    for doc in RENDERED[values]:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        assert pod["enableServiceLinks"] is False, doc["metadata"]["name"]
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert (
                container["image"] == f"ghcr.io/driftwarden/driftwarden:{driftwarden.__version__}"
            )
        if doc["kind"] == "Deployment":
            for container in pod["containers"]:
                path = container["readinessProbe"]["httpGet"]["path"]
                assert path == ("/metrics" if container["name"] == "canary" else "/healthz")
                assert container["resources"]["requests"]


def test_pdbs_and_network_policies() -> None:
    docs = RENDERED["everything-on"]
    pdbs = {d["metadata"]["name"] for d in by_kind(docs, "PodDisruptionBudget")}
    assert pdbs == {
        "driftwarden-injector",
        "driftwarden-detectors",
        "driftwarden-retrain-trigger",
        "driftwarden-canary",
    }
    policies = {d["metadata"]["name"]: d for d in by_kind(docs, "NetworkPolicy")}
    trigger = policies["driftwarden-retrain-trigger"]["spec"]["ingress"][0]
    assert trigger["ports"] == [{"port": "http", "protocol": "TCP"}]
    selectors = [peer["namespaceSelector"]["matchLabels"] for peer in trigger["from"]]
    assert selectors == [{"kubernetes.io/metadata.name": "monitoring"}] * 2
    detectors = policies["driftwarden-detectors"]["spec"]["ingress"]
    assert len(detectors) == 1 and detectors[0]["from"]
    hpa = one(docs, "HorizontalPodAutoscaler", "-detectors")
    assert hpa["spec"]["maxReplicas"] == 6
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "External"]
    assert "replicas" not in one(docs, "Deployment", "-detectors")["spec"]


def test_specs_and_policies_come_from_values() -> None:
    docs = RENDERED["everything-on"]
    specs = one(docs, "ConfigMap", "-detectors-specs")["data"]
    assert yaml.safe_load(specs["fraud.yaml"]) == EVERYTHING_ON["detectors"]["specs"]["fraud"]
    policies = one(docs, "ConfigMap", "-retrain-trigger-policies")["data"]
    assert yaml.safe_load(policies["fraud.yaml"])["namespace"] == "ml-a"
    trigger = one(docs, "Deployment", "-retrain-trigger")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in trigger["containers"][0]["env"]}
    assert env["DRIFTWARDEN_NAMESPACES"] == "ml-a,ml-b"


def test_token_secrets_share_one_token() -> None:
    docs = RENDERED["everything-on"]
    trigger = one(docs, "Secret", "-retrain-trigger-token")
    alertmanager = one(docs, "Secret", "driftwarden-retrain")
    assert alertmanager["metadata"]["namespace"] == "monitoring"
    assert trigger["data"]["token"] == alertmanager["data"]["token"]
    assert len(trigger["data"]["token"]) >= 60  # base64 of 48 random characters


def _envvars(group: str, command: str) -> set[str]:
    import click
    import typer.main

    from driftwarden.cli import app

    root = typer.main.get_command(app)
    ctx = click.Context(root)
    _, sub, _ = root.resolve_command(ctx, [group])
    cmd = sub.get_command(click.Context(sub, parent=ctx), command)
    names: set[str] = set()
    for param in cmd.params:
        envvar = getattr(param, "envvar", None)
        names |= {envvar} if isinstance(envvar, str) else set(envvar or ())
    return names


def test_every_setting_the_chart_passes_is_a_flag_of_its_command() -> None:
    checked = set()
    for doc in RENDERED["everything-on"]:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            args = container.get("args") or []
            if container.get("command") or len(args) < 2:
                continue
            known = _envvars(args[0], args[1])
            passed = {e["name"] for e in container.get("env", [])}
            assert passed <= known, f"{args[:2]}: not flags: {sorted(passed - known)}"
            checked.add(" ".join(args[:2]))
    assert checked == {
        "injector run",
        "detectors run",
        "trigger run",
        "canary run",
        "topics create",
    }


def test_injector_config_file_is_one_the_injector_loads(tmp_path: Path) -> None:
    from collector.injector.config import load_config

    docs = RENDERED["everything-on"]
    text = one(docs, "ConfigMap", "-injector-config")["data"]["injector.yaml"]
    (tmp_path / "injector.yaml").write_text(text)
    config = load_config(tmp_path / "injector.yaml", {})
    assert config.extra_env == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}
    pod = one(docs, "Deployment", "-injector")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["DRIFTWARDEN_CONFIG"] == "/etc/driftwarden/injector/injector.yaml"
    assert not [d for d in RENDERED["defaults"] if d["metadata"]["name"].endswith("-config")]
    # kafka.security reaches the sidecars the injector makes (Secrets of the model's namespace)
    sidecar = config.kafka_security.security()
    assert (sidecar.protocol, sidecar.username) == ("SASL_SSL", "driftwarden")
    assert sidecar.password_file == Path("/etc/driftwarden/kafka/sasl/password")
    assert sidecar.ca_file == Path("/etc/driftwarden/kafka/ca/ca.crt")
    volumes = {v["name"]: v["secret"]["secretName"] for v in config.kafka_security.volumes()}
    assert volumes == {"driftwarden-kafka-ca": "kafka-ca", "driftwarden-kafka-sasl": "kafka-user"}


#: Names a Kubernetes service link can give (<SVC>_SERVICE_HOST, <SVC>_SERVICE_PORT[_<name>],
#: <SVC>_PORT[_<n>_<PROTO>[_PROTO|_PORT|_ADDR]]): a Service `driftwarden-metrics` in a model's
#: namespace sets DRIFTWARDEN_METRICS_PORT=tcp://<ip>:<port> in every container there.
SERVICE_LINK_NAME = re.compile(r"_(PORT|ADDR|PROTO)$|_SERVICE_(HOST|PORT)")


def test_injected_sidecar_sets_every_setting_a_service_link_could_shadow(tmp_path: Path) -> None:
    """Model pods keep their service links; the kubelet adds a service variable only where
    the container declares none of that name, so each `collector run` setting that a
    service link could produce must be set explicitly by the patch (docs/injector.md)."""
    import json

    from collector.injector.config import load_config
    from collector.injector.patch import decide

    text = one(RENDERED["everything-on"], "ConfigMap", "-injector-config")["data"]
    (tmp_path / "injector.yaml").write_text(text["injector.yaml"])
    config = load_config(tmp_path / "injector.yaml", {})
    review = json.loads((ROOT / "tests/unit/injector_reviews/plain.json").read_text())
    decision = decide(review["request"], config)
    assert decision.outcome == "injected", decision
    added = [op["value"] for op in decision.patch if op["path"] == "/spec/initContainers"]
    (sidecar,) = [c for c in added[0] if c["name"] == config.sidecar_name]
    declared = {e["name"] for e in sidecar["env"]}
    at_risk = {name for name in _envvars("collector", "run") if SERVICE_LINK_NAME.search(name)}
    assert {"DRIFTWARDEN_PORT", "DRIFTWARDEN_MODEL_PORT", "DRIFTWARDEN_ADMIN_PORT"} <= at_risk
    assert at_risk <= declared, f"set explicitly in the sidecar: {sorted(at_risk - declared)}"
