"""(d) Pipeline health: collector sent / dropped / spooled, spool size, detector consumer lag,
events processed and invalid, scrape status."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import (
    dashboard,
    datasource_variable,
    label_variable,
    query,
    timeseries_panel,
)
from driftwarden import metrics_catalogue as mc
from driftwarden import metrics_catalogue as rec

UID = "driftwarden-pipeline-health"
M = 'model=~"$model"'


def _or_zero(expr: str, like: str) -> str:
    """`expr`, or 0 for each model that has `like` but no `expr` series yet: counters such
    as drops only appear with their first event, and 'no data' should mean 'no target'."""
    return f"{expr}\nor\n0 * {like}"


def build() -> db.Dashboard:
    sent = f"{rec.COLLECTOR_SENT_RATE}{{{M}}}"
    return (
        dashboard(
            UID,
            "driftwarden / Pipeline health",
            "Is every prediction captured, delivered to Kafka and consumed by the detectors?",
            ["pipeline"],
        )
        .with_variable(datasource_variable())
        .with_variable(label_variable("model", "model", mc.EVENTS_PROCESSED_TOTAL.name))
        .with_row(db.Row("Collector"))
        .with_panel(
            timeseries_panel(
                "Events sent to Kafka/s",
                "Events acknowledged by Kafka (5m rate).",
                [query(sent, "{{model}}")],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Events dropped/s",
                "Events lost, by reason (spool full, queue full, ...): any drop means "
                "monitoring sees less than the model serves.",
                [
                    query(
                        _or_zero(f"{rec.COLLECTOR_DROPPED_RATE}{{{M}}}", sent),
                        "{{model}} {{reason}}",
                    )
                ],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Events spooled/s",
                "Events written to the disk spool because Kafka was unreachable or slow.",
                [query(_or_zero(f"{rec.COLLECTOR_SPOOLED_RATE}{{{M}}}", sent), "{{model}}")],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Spool size",
                "Bytes waiting in each collector's on-disk spool.",
                [query(mc.COLLECTOR_SPOOL_BYTES.name, "{{instance}}")],
                unit="bytes",
            )
        )
        .with_panel(
            timeseries_panel(
                "Requests/s by status code",
                "Requests proxied to the model (5m rate).",
                [query(f"{rec.COLLECTOR_REQUESTS_RATE}{{{M}}}", "{{model}} {{code}}")],
                unit="reqps",
            )
        )
        .with_row(db.Row("Detectors"))
        .with_panel(
            timeseries_panel(
                "Consumer lag by topic",
                "Messages not yet consumed (each partition counted once).",
                [query(rec.CONSUMER_LAG_SUM, "{{topic}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Consumer lag by partition",
                "Per partition, as each detector replica reports it.",
                [query(mc.CONSUMER_LAG.name, "{{topic}}/{{partition}} {{instance}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Events processed/s",
                "Valid events consumed (5m rate).",
                [query(f"{rec.EVENTS_PROCESSED_RATE}{{{M}}}", "{{model}}")],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Invalid events/s by reason",
                "Events sent to the dead-letter topic (5m rate).",
                [
                    query(
                        _or_zero(
                            f"{rec.EVENTS_INVALID_RATE}{{{M}}}",
                            f"{rec.EVENTS_PROCESSED_RATE}{{{M}}}",
                        ),
                        "{{model}} {{reason}}",
                    )
                ],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Labels joined/s",
                "Feedback labels joined to their prediction (5m rate).",
                [
                    query(
                        f"sum by (model) (rate({mc.LABELS_JOINED_TOTAL.name}{{{M}}}"
                        "[$__rate_interval]))",
                        "{{model}}",
                    )
                ],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Scrape targets up",
                "1 when Prometheus could scrape the target at the last attempt.",
                [query('up{job=~".*driftwarden.*"}', "{{job}} {{instance}}")],
                min_=0,
                max_=1,
                width=24,
                height=6,
            )
        )
    )
