"""Pure parts of the canary controller: verdicts from query answers, manifests and patches,
the router factory, the HTTPRoute weights, the Argo/Flagger templates."""

from __future__ import annotations

import copy

import jsonpatch
import pytest

from retrain_trigger.canary import manifests as mf
from retrain_trigger.canary.machine import Verdict
from retrain_trigger.canary.queries import QueryContext, build_queries, judge, selector
from retrain_trigger.canary.routers import RouterError, make_router
from retrain_trigger.canary.templates import (
    ARGO_CANARY,
    FLAGGER_CANARY,
    argo_analysis_template,
    flagger_metric_templates,
)
from retrain_trigger.policy import CanaryPolicy, CanaryThresholds

T = CanaryThresholds(min_requests=100, min_labelled_rows=200)
Q = build_queries(QueryContext.of("fraud", "v2", "v1", window_s=60, lookback_s=1860), T)


def values(judged, canary=0.1, stable=0.1, gates=(1000.0,)):
    out = {"judged": judged, "canary": canary, "stable": stable}
    out.update({f"gate{i}": g for i, g in enumerate(gates)})
    return out


@pytest.mark.parametrize(
    ("check", "answers", "verdict", "reason"),
    [
        ("error_rate", values(0.005), Verdict.PASS, "share 0.005 <= 0.01"),
        ("error_rate", values(0.02), Verdict.FAIL, "error_rate: share 0.02 > 0.01"),
        ("error_rate", values(0.0, gates=(99.0,)), Verdict.INCONCLUSIVE, "canary requests"),
        ("error_rate", values(0.0, gates=(None,)), Verdict.INCONCLUSIVE, "no data for canary"),
        ("latency_p99", values(1.3), Verdict.FAIL, "ratio 1.3 > 1.25"),
        ("latency_p99", values(float("nan")), Verdict.INCONCLUSIVE, "not computable"),
        ("performance", values(0.01, gates=(500.0, 500.0)), Verdict.PASS, ""),
        ("performance", values(0.05, gates=(500.0, 500.0)), Verdict.FAIL, "worse by 0.05"),
        (
            "performance",
            values(0.0, gates=(500.0, 150.0)),
            Verdict.INCONCLUSIVE,
            "stable labelled rows: 150 < 200",
        ),
        (
            "performance",
            values(0.0, stable=None, gates=(500.0, 500.0)),
            Verdict.INCONCLUSIVE,
            "no stable series",
        ),
        ("prediction", values(0.5, canary=None), Verdict.INCONCLUSIVE, "no canary series"),
        ("prediction", values(0.5), Verdict.FAIL, "distance 0.5 > 0.2"),
        ("prediction_spread", values(0.3), Verdict.PASS, "spread lost 0.3 <= 0.75"),
        ("prediction_spread", values(1.0), Verdict.FAIL, "spread lost 1 > 0.75"),
        ("prediction_spread", values(0.2, gates=(0.0,)), Verdict.INCONCLUSIVE, "rows: 0 < 1"),
        ("data_quality", values(None), Verdict.INCONCLUSIVE, "no common series"),
    ],
)
def test_judge(check, answers, verdict, reason) -> None:
    r = judge(Q[check], answers)
    assert r.verdict is verdict
    assert reason in r.reason
    assert r.limit == Q[check].limit


def test_queries_compare_by_version_and_escape_label_values() -> None:
    assert selector("m", model='a"b\\c', code="~5..") == 'm{model="a\\"b\\\\c",code=~"5.."}'
    err = Q["error_rate"]
    assert 'version="v2"' in err.canary and 'version="v1"' in err.stable
    assert err.stable.startswith("last_over_time((") and err.stable.endswith(")[1860s:15s])")
    assert "[60s]" in err.canary and 'code=~"5..|aborted"' in err.canary
    perf = Q["performance"]
    assert perf.judged == f"({perf.stable}) - ({perf.canary})"  # accuracy: higher is better
    loss = build_queries(
        QueryContext.of("fraud", "v2", "v1", window_s=60, lookback_s=60),
        CanaryThresholds(performance_metric="log_loss"),
    )["performance"]
    assert loss.judged == f"({loss.canary}) - ({loss.stable})"
    assert Q["prediction"].canary.count("jensenshannon") == 1
    spread = Q["prediction_spread"]
    assert spread.judged == f"(({spread.stable}) - ({spread.canary})) / ({spread.stable})"
    assert "driftwarden_prediction_spread" in spread.canary and 'version="v2"' in spread.canary
    assert Q["error_rate"].gated().endswith(">= 100)")


STABLE = {
    "metadata": {
        "name": "fraud",
        "namespace": "ml",
        "labels": {"app": "fraud", "version": "v1"},
        "annotations": {"driftwarden.io/artifact": "/a/fraud/v1"},
        "resourceVersion": "7",
    },
    "spec": {
        "replicas": 4,
        "selector": {"matchLabels": {"app": "fraud"}},
        "strategy": {"type": "RollingUpdate"},
        "template": {
            "metadata": {"labels": {"app": "fraud", "version": "v1"}},
            "spec": {
                "containers": [
                    {
                        "name": "model",
                        "image": "m:1",
                        "args": ["--artifact=/a/fraud/v1"],
                        "env": [{"name": "ARTIFACT", "value": "/a/fraud/v1"}],
                    }
                ]
            },
        },
    },
}


def test_canary_deployment_from_the_stable_one() -> None:
    c = mf.canary_deployment(STABLE, version="v2", artifact="/a/fraud/v2", replicas=1)
    assert c["metadata"]["name"] == "fraud-canary" and c["spec"]["replicas"] == 1
    assert c["spec"]["selector"] == {"matchLabels": {"app": "fraud", "version": "v2"}}
    tpl = c["spec"]["template"]
    assert tpl["metadata"]["labels"] == {"app": "fraud", "version": "v2"}
    assert tpl["metadata"]["annotations"]["driftwarden.io/model-version"] == "v2"
    assert tpl["spec"]["containers"][0]["args"] == ["--artifact=/a/fraud/v2"]
    assert tpl["spec"]["containers"][0]["env"][0]["value"] == "/a/fraud/v2"
    assert c["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert STABLE["spec"]["template"]["metadata"]["labels"]["version"] == "v1"  # not mutated


def test_promote_patch_applies_the_canary_template() -> None:
    c = mf.canary_deployment(STABLE, version="v2", artifact="/a/fraud/v2", replicas=1)
    promoted = jsonpatch.apply_patch(copy.deepcopy(STABLE), mf.promote_patch(STABLE, c, replicas=4))
    assert promoted["spec"]["template"] == c["spec"]["template"]
    assert (
        promoted["spec"]["replicas"] == 4
        and promoted["spec"]["selector"] == STABLE["spec"]["selector"]
    )
    assert promoted["metadata"]["labels"]["version"] == "v2"
    assert promoted["metadata"]["annotations"]["driftwarden.io/artifact"] == "/a/fraud/v2"
    assert mf.template_version(promoted) == "v2"


def test_stable_preconditions_are_one_line_errors() -> None:
    bad = copy.deepcopy(STABLE)
    bad["spec"]["selector"]["matchLabels"]["version"] = "v1"
    with pytest.raises(mf.RolloutError, match="selector uses the 'version' label"):
        mf.canary_deployment(bad, version="v2", artifact="", replicas=1)
    unversioned = copy.deepcopy(STABLE)
    del unversioned["spec"]["template"]["metadata"]["labels"]["version"]
    del unversioned["metadata"]["labels"]["version"]
    with pytest.raises(mf.RolloutError, match="cannot tell the stable version apart"):
        mf.check_stable(unversioned)


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [
        (4, 25, (3, 1)),
        (4, 50, (2, 2)),
        (4, 100, (0, 4)),
        (10, 10, (9, 1)),
        (1, 10, (1, 1)),
        (3, 90, (1, 2)),
        (4, 0, (4, 0)),
    ],
)
def test_replica_split(total, weight, split) -> None:
    assert mf.replica_split(total, weight) == split


def test_router_factory_rejects_unknown_kinds() -> None:
    assert make_router("none", kube=None).kind == "none"  # type: ignore[arg-type]
    assert make_router("replicas", kube=None).kind == "replicas"  # type: ignore[arg-type]
    assert make_router("gateway-api", kube=None).kind == "gateway-api"  # type: ignore[arg-type]
    with pytest.raises(
        RouterError, match="unknown router kind 'istio'; known: replicas, gateway-api, none"
    ):
        make_router("istio", kube=None)  # type: ignore[arg-type]


ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "fraud", "namespace": "ml"},
    "spec": {
        "parentRefs": [{"name": "gw"}],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                "backendRefs": [{"name": "fraud", "port": 8080}],
            },
            {"backendRefs": [{"name": "other", "port": 80}]},
        ],
    },
}


def _valid_rule(rule: dict) -> None:
    """The HTTPRoute v1 constraints the patch must respect (gateway-api's CRD validation:
    at most 16 backendRefs, weight 0..1,000,000, port required for a Service backend)."""
    refs = rule["backendRefs"]
    assert len(refs) <= 16
    for ref in refs:
        assert 0 <= ref.get("weight", 1) <= mf.MAX_BACKEND_WEIGHT
        assert isinstance(ref["port"], int) and 1 <= ref["port"] <= 65535
        assert set(ref) <= {"group", "kind", "name", "namespace", "port", "weight", "filters"}


def test_httproute_weights_move_and_come_back() -> None:
    rules = mf.httproute_rules(
        ROUTE, stable_service="fraud", canary_service="fraud-canary", weight=25
    )
    assert rules[0]["backendRefs"] == [
        {"name": "fraud", "port": 8080, "weight": 75},
        {"name": "fraud-canary", "port": 8080, "weight": 25},
    ]
    assert rules[1] == ROUTE["spec"]["rules"][1]
    for rule in rules:
        _valid_rule(rule)
    moved = {**ROUTE, "spec": {**ROUTE["spec"], "rules": rules}}
    again = mf.httproute_rules(
        moved, stable_service="fraud", canary_service="fraud-canary", weight=100
    )
    assert [r["weight"] for r in again[0]["backendRefs"]] == [0, 100]
    back = mf.httproute_rules(
        moved, stable_service="fraud", canary_service="fraud-canary", weight=0
    )
    assert back[0]["backendRefs"] == [{"name": "fraud", "port": 8080, "weight": 100}]
    with pytest.raises(mf.RolloutError, match="no rule has a backendRef to Service nope"):
        mf.httproute_rules(ROUTE, stable_service="nope", canary_service="nope-canary", weight=10)


def test_templates_use_the_controllers_queries() -> None:
    p = CanaryPolicy(check_interval_s=30, step_deadline_s=600)
    argo = argo_analysis_template("fraud", p)
    ctx = QueryContext.for_policy("fraud", ARGO_CANARY, "{{args.stable-version}}", p)
    expected = build_queries(ctx, p.thresholds)
    assert [m["name"] for m in argo["spec"]["metrics"]] == list(expected)
    for m in argo["spec"]["metrics"]:
        assert m["provider"]["prometheus"]["query"] == expected[m["name"]].gated()
        assert m["inconclusiveLimit"] == 20 and m["interval"] == "30s"
    templates, refs = flagger_metric_templates("fraud", p)
    fctx = QueryContext.for_policy("fraud", FLAGGER_CANARY, "{{ variables.stable_version }}", p)
    fexpected = build_queries(fctx, p.thresholds)
    assert [t["spec"]["query"] for t in templates] == [q.gated() for q in fexpected.values()]
    assert [r["thresholdRange"]["max"] for r in refs] == [q.limit for q in fexpected.values()]
