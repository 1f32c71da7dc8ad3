"""Argo Rollouts `AnalysisTemplate` and Flagger `MetricTemplate`s from the controller's own
query builders (`queries.build_queries`), for teams that already run one of those. Pure.

Each check becomes one metric whose query is `CheckQueries.gated()`: the judged value,
present only when the check's sample gates are met, so "too little data" is an empty
result. Argo Rollouts reads an empty result as neither success nor failure (inconclusive,
bounded by `inconclusiveLimit`); Flagger counts "no values found" as a failed check, so
with Flagger too little data halts the canary rather than passing it.
"""

from __future__ import annotations

from typing import Any

from retrain_trigger.canary.queries import QueryContext, build_queries
from retrain_trigger.policy import CanaryPolicy

__all__ = [
    "ARGO_CANARY",
    "ARGO_STABLE",
    "FLAGGER_CANARY",
    "FLAGGER_STABLE",
    "argo_analysis_template",
    "flagger_metric_templates",
]

ARGO_CANARY = "{{args.canary-version}}"
ARGO_STABLE = "{{args.stable-version}}"
FLAGGER_CANARY = "{{ variables.canary_version }}"
FLAGGER_STABLE = "{{ variables.stable_version }}"
DEFAULT_PROMETHEUS = "http://prometheus.monitoring:9090"


def _ctx(model: str, policy: CanaryPolicy, canary: str, stable: str) -> QueryContext:
    return QueryContext.for_policy(model, canary, stable, policy)


def _name(model: str) -> str:
    return "driftwarden-" + "".join(c if c.isalnum() else "-" for c in model.lower()).strip("-")


def argo_analysis_template(
    model: str, policy: CanaryPolicy, prometheus: str = DEFAULT_PROMETHEUS
) -> dict[str, Any]:
    """One AnalysisTemplate with a metric per check."""
    queries = build_queries(_ctx(model, policy, ARGO_CANARY, ARGO_STABLE), policy.thresholds)
    tries = max(1, policy.step_deadline_s // policy.check_interval_s)
    metrics = []
    for name, q in queries.items():
        limit = repr(q.limit)
        metrics.append(
            {
                "name": name,
                "interval": f"{policy.check_interval_s}s",
                "successCondition": f"len(result) > 0 && result[0] <= {limit}",
                "failureCondition": f"len(result) > 0 && result[0] > {limit}",
                "failureLimit": 0,
                "inconclusiveLimit": tries,
                "provider": {
                    "prometheus": {"address": "{{args.prometheus-address}}", "query": q.gated()}
                },
            }
        )
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": _name(model)},
        "spec": {
            "args": [
                {"name": "canary-version"},
                {"name": "stable-version"},
                {"name": "prometheus-address", "value": prometheus},
            ],
            "metrics": metrics,
        },
    }


def flagger_metric_templates(
    model: str, policy: CanaryPolicy, prometheus: str = DEFAULT_PROMETHEUS
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(MetricTemplates, the Canary's `spec.analysis.metrics` entries that use them)."""
    queries = build_queries(_ctx(model, policy, FLAGGER_CANARY, FLAGGER_STABLE), policy.thresholds)
    templates, refs = [], []
    for name, q in queries.items():
        tname = f"{_name(model)}-{name.replace('_', '-')}"
        templates.append(
            {
                "apiVersion": "flagger.app/v1beta1",
                "kind": "MetricTemplate",
                "metadata": {"name": tname},
                "spec": {
                    "provider": {"type": "prometheus", "address": prometheus},
                    "query": q.gated(),
                },
            }
        )
        refs.append(
            {
                "name": name.replace("_", "-"),
                "templateRef": {"name": tname},
                "templateVariables": {"canary_version": "<new>", "stable_version": "<current>"},
                "thresholdRange": {"max": q.limit},
                "interval": f"{policy.check_interval_s}s",
            }
        )
    return templates, refs
