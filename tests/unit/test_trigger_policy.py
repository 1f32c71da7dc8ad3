"""Retrain policy parsing: defaults, one-line errors naming the field, the policy folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retrain_trigger.policy import PolicyError, RetrainPolicy, load_policies, load_policy

MINIMAL = {
    "model": "fraud",
    "trainer": {"image": "ghcr.io/acme/trainer:1"},
    "spec": "/s.yaml",
    "output": "/artifacts/fraud",
}


def write(folder: Path, name: str, doc: object) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def test_minimal_policy_gets_documented_defaults(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "fraud.yaml", MINIMAL))
    assert policy.namespace == "default"
    assert policy.deployment_name == "fraud"
    assert policy.trainer.command == ["python", "-m", "retrain_trigger.train"]
    assert policy.trainer.resources.gpu == 1
    assert policy.max_concurrent == 1 and policy.backoff_limit == 1
    assert policy.canary.steps == [10, 25, 50, 100]
    assert policy.canary.router == "replicas" and policy.canary.on_deadline == "rollback"
    assert policy.data.location() == "kafka:21600s"


def test_full_policy_round_trips(tmp_path: Path) -> None:
    doc = {
        **MINIMAL,
        "namespace": "ml",
        "deployment": "fraud-v1",
        "trainer": {
            "image": "img",
            "args": ["--data", "{data}", "--out", "{artifact}"],
            "env": {"RUN": "{job}"},
            "resources": {"gpu": 2, "cpu": "8", "memory": "32Gi"},
            "node_selector": {"gpu": "a100"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "priority_class": "batch-low",
            "service_account": "trainer",
        },
        "data": {"source": "parquet", "path": "s3://bucket/fraud.parquet"},
        "cooldown_s": 600,
        "ttl_seconds_after_finished": 3600,
        "canary": {
            "router": "gateway-api",
            "http_route": "fraud",
            "steps": [5, 50, 100],
            "step_deadline_s": 900,
            "on_deadline": "hold",
            "thresholds": {"performance_metric": "roc_auc", "performance_tolerance": 0.01},
        },
    }
    policy = load_policy(write(tmp_path, "p.yaml", doc))
    assert policy.trainer.resources.gpu == 2
    assert policy.data.location() == "s3://bucket/fraud.parquet"
    assert policy.canary.thresholds.performance_metric == "roc_auc"
    assert RetrainPolicy.model_validate(policy.model_dump()) == policy


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"trainr": {}}, "trainr: Extra inputs are not permitted"),
        ({"trainer": {"image": "i", "gpus": 1}}, "trainer.gpus: Extra inputs are not permitted"),
        ({"trainer": {"image": "i", "resources": {"memory": "lots"}}}, "trainer.resources.memory"),
        ({"trainer": {"image": "i", "args": ["--x", "{nope}"]}}, "unknown placeholder(s) {nope}"),
        ({"namespace": "Bad_NS"}, "namespace: "),
        ({"data": {"source": "parquet"}}, "path: required when source is parquet"),
        ({"canary": {"steps": [50, 25, 100]}}, "canary.steps"),
        ({"canary": {"steps": [10, 50]}}, "must end at 100"),
        ({"canary": {"router": "istio"}}, "canary.router"),
        ({"canary": {"router": "gateway-api"}}, "http_route: required"),
        ({"cooldown_s": 86400, "ttl_seconds_after_finished": 60}, "must be at least cooldown_s"),
        ({"max_concurrent": 0}, "max_concurrent"),
    ],
)
def test_bad_policies_are_one_line_naming_the_field(
    tmp_path: Path, patch: dict, expected: str
) -> None:
    path = write(tmp_path, "bad.yaml", {**MINIMAL, **patch})
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expected in message


def test_folder_rejects_duplicates_and_foreign_namespaces(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", MINIMAL)
    write(tmp_path, "b.yml", {**MINIMAL, "model": "churn", "namespace": "ml"})
    assert set(load_policies(tmp_path)) == {"fraud", "churn"}
    with pytest.raises(PolicyError, match="namespace: 'ml' is not one of"):
        load_policies(tmp_path, namespaces=frozenset({"default"}))
    write(tmp_path, "c.yaml", MINIMAL)
    with pytest.raises(PolicyError, match="already defined by"):
        load_policies(tmp_path)
    with pytest.raises(PolicyError, match="not a directory"):
        load_policies(tmp_path / "missing")


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "model: [unclosed\n")
    with pytest.raises(PolicyError, match="invalid YAML at line"):
        load_policy(path)
