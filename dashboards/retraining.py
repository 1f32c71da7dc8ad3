"""(e) Retraining and rollouts: what the retrain trigger did with the alerts it received
(decisions, Jobs launched, running, finished) and how the canary controller rolled the new
versions out (traffic weight, analysis verdicts, promoted or rolled back)."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, statushistory

from dashboards.panels import (
    dashboard,
    datasource_variable,
    label_variable,
    query,
    stat_panel,
    state_panel,
    timeseries_panel,
)
from driftwarden import metrics_catalogue as mc

UID = "driftwarden-retraining"
M = 'model=~"$model"'

#: `driftwarden_canary_check` values (DESIGN.md): the verdict of the last analysis.
VERDICTS = (
    ("1", "pass", "green"),
    ("0", "fail", "red"),
    ("-1", "inconclusive", "orange"),
)


def _per_minute(metric: str, by: str, selector: str = M) -> str:
    """Events per minute of a counter, summed by `by`: retrains and rollouts are rare, so a
    per-second rate would read as 0.00."""
    series = f"{metric}{{{selector}}}" if selector else metric
    return f"sum by ({by}) (60 * rate({series}[$__rate_interval]))"


def _in_range(metric: str, by: str) -> str:
    """How many times a counter grew over the dashboard's time range."""
    return f"sum by ({by}) (increase({metric}{{{M}}}[$__range]))"


def verdict_panel(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    width: int = 24,
    height: int = 8,
) -> statushistory.Panel:
    """A (model, check) x time grid coloured by the check's verdict."""
    return state_panel(
        title,
        description,
        queries,
        VERDICTS,
        ((None, "orange"), (0, "red"), (1, "green")),
        width=width,
        height=height,
    )


def build() -> db.Dashboard:
    decisions = mc.RETRAIN_DECISIONS_TOTAL.name
    jobs = mc.RETRAIN_JOBS_TOTAL.name
    running = mc.RETRAIN_JOBS_RUNNING.name
    weight = mc.CANARY_WEIGHT.name
    rollouts = mc.ROLLOUTS_TOTAL.name
    return (
        dashboard(
            UID,
            "driftwarden / Retraining and rollouts",
            "What the retrain trigger did with the alerts it received, and how the canary "
            "controller rolled the retrained versions out (docs/retrain-trigger.md).",
            ["retraining", "canary"],
        )
        .with_variable(datasource_variable())
        .with_variable(label_variable("model", "model", decisions))
        .with_row(db.Row("Now"))
        .with_panel(
            stat_panel(
                "Retrains launched",
                "Retraining Jobs the trigger created over the time range (decision 'launched').",
                [query(f'sum(increase({decisions}{{{M},decision="launched"}}[$__range]))')],
                width=4,
            )
        )
        .with_panel(
            stat_panel(
                "Retrain Jobs running",
                "Jobs that have neither completed nor failed, as the trigger's watcher sees them.",
                [query(f"sum({running}{{{M}}})")],
                thresholds=((None, "green"), (1, "blue")),
                width=4,
            )
        )
        .with_panel(
            stat_panel(
                "Retrain Jobs finished, by outcome",
                "Over the time range; a failed Job also raises DriftwardenRetrainFailed "
                "(docs/alerts.md).",
                [query(_in_range(jobs, "outcome"), "{{outcome}}")],
            )
        )
        .with_panel(
            stat_panel(
                "Rollouts finished, by outcome",
                "Canary rollouts promoted or rolled back over the time range.",
                [query(_in_range(rollouts, "outcome"), "{{outcome}}")],
            )
        )
        .with_panel(
            stat_panel(
                "Canary weight",
                "Share of traffic the canary version gets now (0 when no rollout is running).",
                [query(f"{weight}{{{M}}}", "{{model}}")],
                unit="percentunit",
                thresholds=((None, "green"), (0.01, "blue")),
                width=4,
            )
        )
        .with_row(db.Row("Retraining"))
        .with_panel(
            timeseries_panel(
                "Alerts received per minute, by status",
                "Alertmanager alerts the trigger received (every alert of a notification, "
                "firing or resolved), by alert name; not filtered by model.",
                [
                    query(
                        _per_minute(mc.ALERTS_RECEIVED_TOTAL.name, "alertname, status", ""),
                        "{{alertname}} {{status}}",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Retrain decisions per minute, by decision",
                "One decision per received alert: launched, in_flight (a retrain of the model "
                "runs), cooldown, over_capacity (global cap), no_policy, not_retrain, resolved.",
                [query(_per_minute(decisions, "model, decision"), "{{model}} {{decision}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Retrain Jobs finished per minute, by outcome",
                "Jobs the watcher saw complete (succeeded) or fail (backoff limit, deadline).",
                [query(_per_minute(jobs, "model, outcome"), "{{model}} {{outcome}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Retrain Jobs running",
                "Per model; the policy's max_concurrent and the trigger's --max-in-flight cap it.",
                [query(f"{running}{{{M}}}", "{{model}}")],
                min_=0,
            )
        )
        .with_row(db.Row("Canary rollouts"))
        .with_panel(
            timeseries_panel(
                "Canary weight",
                "Share of traffic routed to the canary version, step by step; back to 0 when "
                "the rollout is promoted or rolled back.",
                [query(f"{weight}{{{M}}}", "{{model}}")],
                unit="percentunit",
                min_=0,
                max_=1,
            )
        )
        .with_panel(
            timeseries_panel(
                "Rollouts finished per minute, by outcome",
                "Canary rollouts promoted or rolled back.",
                [query(_per_minute(rollouts, "model, outcome"), "{{model}} {{outcome}}")],
            )
        )
        .with_panel(
            verdict_panel(
                "Canary check verdicts",
                "Each row a (model, check), coloured by the last analysis' verdict while a "
                "rollout runs: green pass, red fail, orange inconclusive (too little traffic "
                "or labels). Checks: error_rate, latency_p99, performance, prediction, "
                "prediction_spread, data_quality.",
                [query(f"{mc.CANARY_CHECK.name}{{{M}}}", "{{model}} {{check}}")],
            )
        )
    )
