"""PromQL for the canary analysis, and the verdicts reached from its answers. Pure.

Every check compares the canary with the stable version by the `version` label and is one
`CheckQueries`: a `judged` expression whose value must stay at or below `limit`, the two
sides it is made of (`canary`, `stable`, shown in the status and the Events), and `gates`:
sample counts that must reach a minimum before the check may pass or fail. A gate below its
minimum, a missing series or a NaN makes the check **inconclusive** — never a pass.

| check | judged | limit | gate |
|---|---|---|---|
| `error_rate` | canary error share − stable's (codes 5xx and `aborted`) | `max_error_rate_increase` | canary requests in the window ≥ `min_requests` |
| `latency_p99` | canary p99 / stable p99 (`driftwarden_collector_request_duration_seconds`) | `max_p99_latency_ratio` | same |
| `performance` | stable − canary (higher-is-better metric) or canary − stable (error metric) | `performance_tolerance` | `driftwarden_performance_window_rows` (labelled rows) of both ≥ `min_labelled_rows` |
| `prediction` | canary − stable prediction drift distance (distance tests only) | `max_prediction_drift` | the canary has a closed window |
| `prediction_spread` | spread lost: (stable − canary) / stable `driftwarden_prediction_spread` | `max_prediction_spread_loss` | the canary has a closed window |
| `data_quality` | largest increase, per (feature, check), of the failing share over stable's | `max_data_quality_share` | the canary has a closed window |

The stable side is read through `last_over_time(...[lookback])`: while the stable version
serves traffic that is its current value on the same traffic; once the canary takes all
of it (the 100 % step) it is the stable's last value before that.

The same builders render the Argo Rollouts / Flagger templates (`templates.py`), with the
version strings replaced by the tools' placeholders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from driftwarden import metrics_catalogue as mc
from retrain_trigger.canary.machine import CheckResult, Verdict
from retrain_trigger.policy import CanaryPolicy, CanaryThresholds

__all__ = [
    "CHECKS",
    "DISTANCE_TESTS",
    "ERROR_CODES",
    "LOWER_IS_BETTER",
    "CheckQueries",
    "QueryContext",
    "build_queries",
    "judge",
    "selector",
]

CHECKS = (
    "error_rate",
    "latency_p99",
    "performance",
    "prediction",
    "prediction_spread",
    "data_quality",
)
#: Status codes counted as the model's errors (`aborted`: the model closed the connection).
#: 499 (the client went away) is not the model's fault.
ERROR_CODES = "5..|aborted"
#: Prediction drift tests whose score is a distance (larger = further from the reference);
#: p-value tests cannot be subtracted meaningfully and are left out.
DISTANCE_TESTS = ("jensenshannon", "wasserstein", "hellinger", "psi", "kl_div")
#: Performance metrics where smaller is better (DESIGN.md, "Statistics").
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "mape"})


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(metric_name: str, /, **labels: str) -> str:
    """`metric{a="x",b=~"y"}`; a value starting with `~` is a regex match."""
    parts = []
    for key, value in labels.items():
        if value.startswith("~"):
            parts.append(f'{key}=~"{_escape(value[1:])}"')
        else:
            parts.append(f'{key}="{_escape(value)}"')
    return f"{metric_name}{{{','.join(parts)}}}"


@dataclass(frozen=True)
class QueryContext:
    """What the queries are about and over which windows."""

    model: str
    canary: str  # version label of the canary (or a template placeholder)
    stable: str
    window: str  # range of rate()/increase(), e.g. "60s" (the analysis interval)
    lookback: str  # how far back the stable's last value is looked for, e.g. "1800s"
    resolution: str  # subquery step for the stable's rate-based values, e.g. "15s"

    @classmethod
    def for_policy(cls, model: str, canary: str, stable: str, policy: CanaryPolicy) -> QueryContext:
        """The windows the controller analyses with: rates over one check interval; the
        stable's last value looked for over a step's deadline plus one interval."""
        return cls.of(
            model,
            canary,
            stable,
            window_s=policy.check_interval_s,
            lookback_s=policy.step_deadline_s + policy.check_interval_s,
        )

    @classmethod
    def of(
        cls, model: str, canary: str, stable: str, *, window_s: int, lookback_s: int
    ) -> QueryContext:
        resolution_s = max(1, window_s // 4)
        return cls(
            model,
            canary,
            stable,
            f"{window_s}s",
            f"{max(lookback_s, window_s)}s",
            f"{resolution_s}s",
        )


@dataclass(frozen=True)
class Gate:
    expr: str
    minimum: float
    what: str  # "canary requests", "stable labelled rows", ...


@dataclass(frozen=True)
class CheckQueries:
    check: str
    judged: str
    limit: float
    canary: str
    stable: str
    gates: tuple[Gate, ...]
    unit: str = ""  # how `judged` reads: "share", "ratio", "distance", ...

    def expressions(self) -> dict[str, str]:
        """Every expression the controller evaluates, by name."""
        out = {"judged": self.judged, "canary": self.canary, "stable": self.stable}
        out.update({f"gate{i}": g.expr for i, g in enumerate(self.gates)})
        return out

    def gated(self) -> str:
        """`judged`, present only when every gate is met: the one query an external tool
        (Argo Rollouts, Flagger) evaluates; no result there means inconclusive."""
        parts = [f"({self.judged})"]
        parts += [f"on() ({g.expr} >= {_num(g.minimum)})" for g in self.gates]
        return " and ".join(parts)


def _num(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() else repr(x)


def _stable(expr: str, ctx: QueryContext, *, subquery: bool) -> str:
    """The stable's latest value within the lookback (see the module docstring).

    NaN samples (a stable still running but given no traffic: 0/0) are dropped first
    (`> -Inf` is false for NaN), so the last value is the last one computed from traffic."""
    if subquery:
        return f"last_over_time((({expr}) > -Inf)[{ctx.lookback}:{ctx.resolution}])"
    return expr


def _error_share(ctx: QueryContext, version: str) -> str:
    req = mc.COLLECTOR_REQUESTS_TOTAL.name
    errors = selector(req, model=ctx.model, version=version, code="~" + ERROR_CODES)
    total = selector(req, model=ctx.model, version=version)
    return f"(sum(rate({errors}[{ctx.window}])) or vector(0)) / sum(rate({total}[{ctx.window}]))"


def _p99(ctx: QueryContext, version: str) -> str:
    bucket = mc.COLLECTOR_REQUEST_DURATION.name + "_bucket"
    sel = selector(bucket, model=ctx.model, version=version)
    return f"histogram_quantile(0.99, sum by (le) (rate({sel}[{ctx.window}])))"


def _requests(ctx: QueryContext, version: str) -> str:
    sel = selector(mc.COLLECTOR_REQUESTS_TOTAL.name, model=ctx.model, version=version)
    return f"sum(increase({sel}[{ctx.window}]))"


def _rows(ctx: QueryContext, version: str, *, stable: bool) -> str:
    sel = selector(mc.WINDOW_ROWS.name, model=ctx.model, version=version)
    if stable:
        return f"max(last_over_time({sel}[{ctx.lookback}]))"
    return f"max({sel})"


def _labelled_rows(ctx: QueryContext, version: str, *, stable: bool) -> str:
    sel = selector(mc.PERFORMANCE_WINDOW_ROWS.name, model=ctx.model, version=version)
    if stable:
        return f"max(last_over_time({sel}[{ctx.lookback}]))"
    return f"max({sel})"


def _gauge(
    name: str,
    ctx: QueryContext,
    version: str,
    stable: bool,
    by: str = "",
    labels: Mapping[str, str] | None = None,
) -> str:
    sel = selector(name, model=ctx.model, version=version, **(labels or {}))
    inner = f"last_over_time({sel}[{ctx.lookback}])" if stable else sel
    return f"max{f' by ({by})' if by else ''}({inner})"


def build_queries(ctx: QueryContext, t: CanaryThresholds) -> dict[str, CheckQueries]:
    """The checks' queries, keyed by check name (in `CHECKS` order)."""
    out: dict[str, CheckQueries] = {}

    c_err, s_err = (
        _error_share(ctx, ctx.canary),
        _stable(_error_share(ctx, ctx.stable), ctx, subquery=True),
    )
    requests = Gate(_requests(ctx, ctx.canary), t.min_requests, "canary requests in the window")
    out["error_rate"] = CheckQueries(
        "error_rate",
        f"({c_err}) - ({s_err})",
        t.max_error_rate_increase,
        c_err,
        s_err,
        (requests,),
        "share",
    )

    c_p99, s_p99 = _p99(ctx, ctx.canary), _stable(_p99(ctx, ctx.stable), ctx, subquery=True)
    out["latency_p99"] = CheckQueries(
        "latency_p99",
        f"({c_p99}) / ({s_p99})",
        t.max_p99_latency_ratio,
        c_p99,
        s_p99,
        (requests,),
        "ratio",
    )

    metric = t.performance_metric
    perf = mc.MODEL_PERFORMANCE.name
    c_perf = _gauge(perf, ctx, ctx.canary, False, labels={"metric": metric})
    s_perf = _gauge(perf, ctx, ctx.stable, True, labels={"metric": metric})
    judged = f"({c_perf}) - ({s_perf})" if metric in LOWER_IS_BETTER else f"({s_perf}) - ({c_perf})"
    out["performance"] = CheckQueries(
        "performance",
        judged,
        t.performance_tolerance,
        c_perf,
        s_perf,
        (
            Gate(
                _labelled_rows(ctx, ctx.canary, stable=False),
                t.min_labelled_rows,
                "canary labelled rows",
            ),
            Gate(
                _labelled_rows(ctx, ctx.stable, stable=True),
                t.min_labelled_rows,
                "stable labelled rows",
            ),
        ),
        f"{metric} worse by",
    )

    tests = "~" + "|".join(DISTANCE_TESTS)
    pred = mc.PREDICTION_DRIFT_SCORE.name
    c_pred = _gauge(pred, ctx, ctx.canary, False, labels={"test": tests})
    s_pred = _gauge(pred, ctx, ctx.stable, True, labels={"test": tests})
    out["prediction"] = CheckQueries(
        "prediction",
        f"({c_pred}) - ({s_pred})",
        t.max_prediction_drift,
        c_pred,
        s_pred,
        (Gate(_rows(ctx, ctx.canary, stable=False), 1, "canary window rows"),),
        "distance",
    )

    spread = mc.PREDICTION_SPREAD.name
    c_spread = _gauge(spread, ctx, ctx.canary, False)
    s_spread = _gauge(spread, ctx, ctx.stable, True)
    out["prediction_spread"] = CheckQueries(
        "prediction_spread",
        f"(({s_spread}) - ({c_spread})) / ({s_spread})",
        t.max_prediction_spread_loss,
        c_spread,
        s_spread,
        (Gate(_rows(ctx, ctx.canary, stable=False), 1, "canary window rows"),),
        "spread lost",
    )

    dq = mc.DATA_QUALITY_SHARE.name
    c_dq = _gauge(dq, ctx, ctx.canary, False, by="feature, check")
    s_dq = _gauge(dq, ctx, ctx.stable, True, by="feature, check")
    out["data_quality"] = CheckQueries(
        "data_quality",
        f"max(({c_dq}) - on(feature, check) ({s_dq}))",
        t.max_data_quality_share,
        f"max({c_dq})",
        f"max({s_dq})",
        (Gate(_rows(ctx, ctx.canary, stable=False), 1, "canary window rows"),),
        "share",
    )
    return out


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


def judge(q: CheckQueries, values: Mapping[str, float | None]) -> CheckResult:
    """The verdict from the evaluated expressions (name → value, None when no series)."""
    canary, stable = _finite(values.get("canary")), _finite(values.get("stable"))
    judged = _finite(values.get("judged"))

    def result(verdict: Verdict, reason: str) -> CheckResult:
        return CheckResult(q.check, verdict, judged, q.limit, canary, stable, reason)

    for i, gate in enumerate(q.gates):
        got = _finite(values.get(f"gate{i}"))
        if got is None:
            return result(Verdict.INCONCLUSIVE, f"no data for {gate.what}")
        if got < gate.minimum:
            return result(Verdict.INCONCLUSIVE, f"{gate.what}: {got:g} < {gate.minimum:g}")
    if canary is None:
        return result(Verdict.INCONCLUSIVE, "no canary series")
    if stable is None:
        return result(Verdict.INCONCLUSIVE, "no stable series")
    if judged is None:
        return result(Verdict.INCONCLUSIVE, "not computable (no common series)")
    if judged <= q.limit:
        return result(Verdict.PASS, f"{q.unit} {judged:.4g} <= {q.limit:g}")
    return result(
        Verdict.FAIL,
        f"{q.check}: {q.unit} {judged:.4g} > {q.limit:g} (canary {canary:.4g}, stable {stable:.4g})",
    )
