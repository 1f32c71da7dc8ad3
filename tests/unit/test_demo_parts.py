"""The demo's pure parts: its traffic drifts where it says, the ground truth changes with the
drift, the local cluster's pieces behave as the Kubernetes ones they stand in for, and the
view and the report render."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from driftwarden.demo.cluster import (
    Endpoint,
    SplitRouter,
    TrafficSplit,
    _merge,
    container_env,
    expand,
    v1_job,
)
from driftwarden.demo.data import (
    NO_DRIFT,
    Drift,
    labels_for,
    sample_rows,
    spec_document,
    training_frame,
    true_probability,
)
from driftwarden.demo.report import lineage_chain, render_report, svg_chart
from driftwarden.demo.runner import (
    PROFILES,
    DemoResult,
    Milestones,
    alertmanager_config,
    policy_document,
    stable_deployment,
)
from driftwarden.demo.traffic import TrafficStats
from driftwarden.demo.view import Snapshot, progress_line, render
from driftwarden.spec import parse_spec
from retrain_trigger.canary import manifests as mf
from retrain_trigger.canary.routers import Target
from retrain_trigger.kube import job_view
from retrain_trigger.policy import RetrainPolicy


def test_drift_moves_at_least_half_of_the_features() -> None:
    rng = np.random.default_rng(0)
    ref = sample_rows(rng, 20_000, NO_DRIFT)
    cur = sample_rows(rng, 20_000, Drift())
    moved = [
        name
        for name in ref
        if (
            abs(np.mean(cur[name]) - np.mean(ref[name])) > 0.2 * np.std(ref[name])
            if ref[name].dtype.kind == "f"
            else max(
                abs(np.mean(cur[name] == v) - np.mean(ref[name] == v)) for v in np.unique(ref[name])
            )
            > 0.1
        )
    ]
    assert len(moved) / len(ref) > 0.5, moved


def test_the_concept_drifts_so_the_old_model_is_wrong_and_a_new_one_can_be_right() -> None:
    rng = np.random.default_rng(1)
    rows = sample_rows(rng, 50_000, Drift())
    truth = true_probability(rows, Drift())
    y = labels_for(truth, rng)
    old_world = true_probability(rows, NO_DRIFT)  # the best a reference-trained model can do
    best_old = np.mean((old_world >= 0.5) == y)
    best_new = np.mean((truth >= 0.5) == y)
    assert best_old < 0.45 and best_new > 0.8, (best_old, best_new)
    # ... with about the same share of positives, so predictions keep their distribution.
    assert abs(truth.mean() - true_probability(sample_rows(rng, 50_000), NO_DRIFT).mean()) < 0.1


def test_training_frame_and_spec_agree() -> None:
    frame = training_frame(n=500)
    spec = parse_spec(spec_document("ref.parquet", 500, 8))
    assert set(spec.feature_names) | {"target"} == set(frame.columns)
    assert set(frame["target"].unique()) <= {0, 1}
    assert spec.window.duration_s == 8


def test_policy_and_deployment_are_what_the_trigger_and_controller_accept(tmp_path) -> None:
    for profile in PROFILES.values():
        doc = policy_document(profile, spec=tmp_path / "s.yaml", output=tmp_path / "a", seed=3)
        policy = RetrainPolicy.model_validate(doc)
        assert policy.canary.steps[-1] == 100 and policy.data.location().startswith("kafka:")
    stable = stable_deployment(tmp_path / "v1", tmp_path / "s.yaml", "127.0.0.1:9092")
    mf.check_stable(stable)  # selector without `version`, a version label, containers
    canary = mf.canary_deployment(stable, version="r2", artifact=str(tmp_path / "r2"), replicas=1)
    model_args = canary["spec"]["template"]["spec"]["containers"][0]["args"]
    assert str(tmp_path / "r2") in model_args and str(tmp_path / "v1") not in model_args
    collector = canary["spec"]["template"]["spec"]["containers"][1]
    env = container_env(collector, canary["spec"]["template"]["metadata"])
    assert env == {"DRIFTWARDEN_MODEL_VERSION": "r2"}  # the downward API reads the new version


def test_alertmanager_routes_to_the_trigger_with_its_token(tmp_path) -> None:
    import yaml

    doc = yaml.safe_load(alertmanager_config("http://127.0.0.1:1234", tmp_path / "token"))
    hook = doc["receivers"][0]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:1234/v1/alertmanager"
    assert hook["http_config"]["authorization"]["credentials_file"] == str(tmp_path / "token")


def test_var_expansion_is_kubernetes_style() -> None:
    env = {"MODEL_PORT": "8081", "POD_DIR": "/tmp/p"}
    assert expand("$(MODEL_PORT)", env) == "8081"
    assert expand("$(POD_DIR)/spool", env) == "/tmp/p/spool"
    assert expand("$(UNKNOWN)", env) == "$(UNKNOWN)"


def test_merge_patch_scales_and_deletes() -> None:
    obj = {"spec": {"replicas": 1, "template": {"a": 1}}, "metadata": {"x": "y"}}
    assert _merge(obj, {"spec": {"replicas": 3}, "metadata": {"x": None}}) == {
        "spec": {"replicas": 3, "template": {"a": 1}},
        "metadata": {},
    }


def test_local_jobs_read_as_the_trigger_reads_cluster_jobs() -> None:
    job = {
        "metadata": {
            "name": "retrain-credit-abc",
            "namespace": "default",
            "labels": {"driftwarden.io/model": "credit", "driftwarden.io/version": "r1"},
            "annotations": {"driftwarden.io/model": "credit"},
            "creationTimestamp": "2024-01-01T00:00:00Z",
        },
        "status": {
            "conditions": [
                {"type": "Failed", "status": "True", "lastTransitionTime": "2024-01-01T00:01:00Z"}
            ]
        },
    }
    view = job_view(v1_job(job))
    assert (view.model, view.version, view.outcome) == ("credit", "r1", "failed")
    assert view.finished_at is not None and view.finished_at - view.started_at == 60


class _Replicas:
    def __init__(self) -> None:
        self.replicas: dict[str, int] = {}

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.replicas[name] = replicas


def test_split_sends_the_weight_to_a_ready_canary_only() -> None:
    split = TrafficSplit("credit", "credit-canary", seed=1)
    split.set_endpoint("credit", Endpoint("credit", "v1", "http://s", "http://s/f"))
    kube = _Replicas()
    router = SplitRouter(split, kube)
    target = Target("default", "credit", "credit-canary", 1, "r2", "v1")
    router.set_weight(target, 30)
    assert kube.replicas == {"credit": 1}
    assert {split.pick().version for _ in range(100)} == {"v1"}  # no canary endpoint yet
    split.set_endpoint("credit-canary", Endpoint("credit-canary", "r2", "http://c", "http://c/f"))
    picks = [split.pick().version for _ in range(4_000)]
    assert picks.count("r2") / len(picks) == pytest.approx(0.30, abs=0.03)
    router.set_weight(target, 100)  # as with replicas: the stable runs no pod at 100 %
    assert kube.replicas == {"credit": 0}
    router.finish(target, promoted=True)
    assert kube.replicas == {"credit": 1}
    assert {split.pick().version for _ in range(100)} == {"v1"}


def test_view_renders_the_whole_loop() -> None:
    snap = Snapshot(
        elapsed_s=42,
        drifting=True,
        request_rate=99.5,
        drift_share=0.71,
        dataset_drift=True,
        features={"age": ("wasserstein", 0.93, True), "channel": ("jensenshannon", 0.02, False)},
        alert_state="firing",
        alert_delivered=True,
        accuracy={"v1": 0.41, "r2": 0.83},
        performance={"v1": {"accuracy": 0.4}},
        job="retrain-credit-abc",
        job_epoch=3,
        job_epochs=10,
        job_outcome="running",
        canary_version="r2",
        canary_phase="progressing",
        canary_weight=25,
        canary_step=1,
        canary_steps=4,
        checks={"performance": "pass", "latency_p99": "inconclusive"},
    )
    console = Console(record=True, width=160)
    console.print(render(snap))
    text = console.export_text()
    assert "DRIFTING" in text and "71% DETECTED" in text and "firing" in text
    assert "age" in text and "0.9300" in text and "DRIFT" in text
    assert "epoch 3/10" in text and "weight 25%" in text and "step 2/4" in text
    assert "performance pass" in text and "0.830" in text
    assert "canary progressing 25%" in progress_line(snap)


def test_report_is_self_contained_html_with_the_plots(tmp_path) -> None:
    stats = TrafficStats(sent=10, ok=10, first_drifted_at=1000.0)
    stats.accuracy[("v1", True)].labelled, stats.accuracy[("v1", True)].correct = 10, 4
    result = DemoResult(
        stats=stats,
        milestones=Milestones(
            first_drifted=1000.0,
            alert_delivered=1020.0,
            retrained=1040.0,
            rollout_finished=1080.0,
            outcome="promoted",
            new_version="r2",
        ),
        timeline=[
            {"t": 5.0, "drifting": False, "drift_share": 0.1, "weight": 0, "accuracy": {"v1": 0.8}},
            {
                "t": 10.0,
                "drifting": True,
                "drift_share": 0.7,
                "weight": 50,
                "accuracy": {"v1": 0.4},
            },
        ],
        lineage=[{"ts": 1.0, "step": "alert", "ref": "fp", "detail": {"status": "firing"}}],
        workdir=tmp_path,
        report=None,
    )
    text = render_report(result)
    assert text.count("<svg") == 3 and "http" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "20.0 s" in text and "80.0 s" in text and "0.400" in text and "promoted" in text
    assert "<b>alert</b>" in text


def test_chart_scales_points_into_the_frame() -> None:
    svg = svg_chart("t", {"a": [(0.0, 0.0), (10.0, 1.0)]}, x_max=10.0)
    assert 'points="40.0,180.0 720.0,40.0"' in svg


def test_lineage_chain_keeps_the_steps_that_made_the_version() -> None:
    def ev(ts: float, step: str, **detail: object) -> dict[str, object]:
        return {"ts": ts, "step": step, "ref": "x", "detail": detail}

    chain, repeats = lineage_chain(
        [
            ev(3, "job_started"),
            ev(1, "alert"),
            ev(2, "decision", decision="launched"),
            ev(4, "alert"),
            ev(5, "decision", decision="in_flight"),
            ev(6, "job_finished"),
            ev(7, "decision", decision="cooldown"),
            ev(8, "rollout_finished", outcome="promoted"),
        ]
    )
    assert [e["step"] for e in chain] == [
        "alert",
        "decision",
        "job_started",
        "job_finished",
        "rollout_finished",
    ]
    assert repeats == {"in_flight": 1, "cooldown": 1}
