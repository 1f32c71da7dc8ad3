"""The canary analysis against a real Prometheus scraping synthetic canary and stable series:
a good canary is promoted, a bad one rolled back, a silent one is inconclusive and rolled
back at the step deadline. The Argo/Flagger template queries answer what the controller
judged."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from driftwarden.errors import GiveUp, RetryLater
from retrain_trigger.canary import machine as sm
from retrain_trigger.canary.machine import Phase, Verdict
from retrain_trigger.canary.prometheus import Analyzer, PrometheusClient
from retrain_trigger.canary.queries import QueryContext, build_queries
from retrain_trigger.canary.templates import argo_analysis_template
from retrain_trigger.policy import CanaryPolicy
from tests.kits.canary import BAD, GOOD, SyntheticExporter, VersionProfile

pytestmark = pytest.mark.integration

MODEL = "fraud"
POLICY = CanaryPolicy(
    steps=[25, 100],
    check_interval_s=5,
    step_deadline_s=30,
    thresholds={"min_requests": 50, "min_labelled_rows": 200},
)


@pytest.fixture(scope="module")
def exporter() -> Iterator[SyntheticExporter]:
    exp = SyntheticExporter(
        MODEL,
        {
            "v1": GOOD,
            "v2-good": VersionProfile(accuracy=0.905, prediction_js=0.06, prediction_spread=0.24),
            "v3-bad": BAD,
            # plenty of traffic but too few labelled rows for performance: inconclusive,
            # never a pass
            "v5-few-labels": VersionProfile(labelled_rows=20),
        },
    )
    try:
        yield exp
    finally:
        exp.close()


@pytest.fixture
def prom(prometheus_factory, exporter):
    server = prometheus_factory(scrape_targets=[exporter.target], scrape_interval="1s")
    # wait until the analysis window (5s) is full of samples: 50 req/s -> ~250 requests
    server.wait_for(
        'sum(increase(driftwarden_collector_requests_total{version="v1"}[5s])) > 200', timeout=30
    )
    return server


def rollout(analyzer: Analyzer, canary: str) -> tuple[sm.RolloutState, list[list[sm.CheckResult]]]:
    """Drive the machine with real analyses; the machine's clock is fake (one check interval
    per analysis), so the deadline is reached after step_deadline_s / check_interval_s tries."""
    now = 0.0
    state = sm.begin(
        model=MODEL,
        version=canary,
        stable_version="v1",
        artifact="",
        job="",
        stable_replicas=4,
        now=now,
    ).state
    state = sm.on_canary_ready(state, POLICY, now).state
    seen = []
    while state.phase is Phase.PROGRESSING:
        now += POLICY.check_interval_s
        results = analyzer.analyse(
            model=MODEL,
            canary=canary,
            stable="v1",
            thresholds=POLICY.thresholds,
            window_s=POLICY.check_interval_s,
            lookback_s=60,
        )
        seen.append(results)
        state = sm.on_analysis(state, POLICY, now, results).state
    return state, seen


def by_check(results: list[sm.CheckResult]) -> dict[str, sm.CheckResult]:
    return {r.check: r for r in results}


def test_good_canary_passes_every_check_and_is_promoted(prom) -> None:
    state, seen = rollout(Analyzer(PrometheusClient(prom.url)), "v2-good")
    assert state.phase is Phase.PROMOTING, state.reason
    first = by_check(seen[0])
    assert {c: r.verdict for c, r in first.items()} == dict.fromkeys(first, Verdict.PASS)
    assert first["error_rate"].canary == pytest.approx(0.005, abs=0.002)
    assert first["latency_p99"].value == pytest.approx(1.0, rel=0.05)
    assert first["performance"].canary == pytest.approx(0.905)
    assert first["performance"].value == pytest.approx(-0.005, abs=1e-9)
    assert first["prediction"].value == pytest.approx(0.01, abs=1e-9)
    assert first["prediction_spread"].value == pytest.approx(0.2, abs=1e-9)  # (0.3 - 0.24) / 0.3


def test_bad_canary_fails_with_the_numbers_and_is_rolled_back(prom) -> None:
    state, seen = rollout(Analyzer(PrometheusClient(prom.url)), "v3-bad")
    assert state.phase is Phase.ROLLING_BACK
    assert len(seen) == 1 and state.step == 0
    checks = by_check(seen[0])
    failed = {c for c, r in checks.items() if r.verdict is Verdict.FAIL}
    assert failed == {"error_rate", "latency_p99", "performance", "prediction", "prediction_spread"}
    assert checks["data_quality"].verdict is Verdict.PASS
    assert checks["error_rate"].value == pytest.approx(0.195, abs=0.01)
    assert checks["latency_p99"].canary > 0.25 and checks["latency_p99"].value > 5
    assert checks["performance"].value == pytest.approx(0.2)
    assert checks["prediction_spread"].value == 1.0 and checks["prediction_spread"].canary == 0.0
    assert "error_rate" in state.reason


def test_silent_canary_is_inconclusive_then_rolled_back_at_the_deadline(prom) -> None:
    state, seen = rollout(Analyzer(PrometheusClient(prom.url)), "v4-silent")
    assert state.phase is Phase.ROLLING_BACK
    assert "deadline" in state.reason
    assert len(seen) == POLICY.step_deadline_s // POLICY.check_interval_s
    for results in seen:
        assert {r.verdict for r in results} == {Verdict.INCONCLUSIVE}
    assert "no data" in by_check(seen[0])["error_rate"].reason


def test_too_few_labelled_rows_is_inconclusive_not_a_pass(prom) -> None:
    results = by_check(
        Analyzer(PrometheusClient(prom.url)).analyse(
            model=MODEL,
            canary="v5-few-labels",
            stable="v1",
            thresholds=POLICY.thresholds,
            window_s=5,
            lookback_s=60,
        )
    )
    perf = results["performance"]
    assert perf.verdict is Verdict.INCONCLUSIVE
    assert perf.reason == "canary labelled rows: 20 < 200"
    assert results["error_rate"].verdict is Verdict.PASS


def test_template_queries_answer_what_the_controller_judged(prom) -> None:
    """The Argo AnalysisTemplate's query, with its placeholders filled, evaluates to the value
    the controller judged (the same builders)."""
    client = PrometheusClient(prom.url)
    doc = argo_analysis_template(MODEL, POLICY)
    ctx = QueryContext.for_policy(MODEL, "v3-bad", "v1", POLICY)
    queries = build_queries(ctx, POLICY.thresholds)
    for metric in doc["spec"]["metrics"]:
        query = (
            metric["provider"]["prometheus"]["query"]
            .replace("{{args.canary-version}}", "v3-bad")
            .replace("{{args.stable-version}}", "v1")
        )
        q = queries[metric["name"]]
        assert query == q.gated()
        templated, judged = client.value(query), client.value(q.judged)
        assert templated is not None and judged is not None
        assert math.isclose(templated, judged, rel_tol=0.05, abs_tol=1e-9), metric["name"]


def test_prometheus_errors_map_to_retry_later_and_give_up(prom) -> None:
    with pytest.raises(GiveUp, match="HTTP 400"):
        PrometheusClient(prom.url).value("sum(")
    with pytest.raises(RetryLater):
        PrometheusClient("http://127.0.0.1:1", timeout_s=2).value("vector(1)")
    assert PrometheusClient(prom.url).value("vector(2)") == 2.0


def test_the_stable_baseline_skips_nan_samples(prom) -> None:
    """A stable that still runs but gets no traffic has an error share of 0/0 = NaN; the
    stable's last value must be the last one computed from traffic, not that NaN."""
    from retrain_trigger.canary.queries import QueryContext, _stable

    ctx = QueryContext(
        model=MODEL, canary="c", stable="s", window="5s", lookback="60s", resolution="5s"
    )
    nan_only = _stable("vector(0) / vector(0)", ctx, subquery=True)
    assert prom.query(nan_only) == []
    number = _stable("vector(0.25)", ctx, subquery=True)
    assert float(prom.query(number)[0]["value"][1]) == 0.25
