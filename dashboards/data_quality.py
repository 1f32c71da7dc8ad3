"""(c) Data quality: shares of rows missing, out of range, of an unseen category or of the
wrong type, per feature; invalid events by reason."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import (
    dashboard,
    datasource_variable,
    instant_table,
    label_variable,
    query,
    table_panel,
    timeseries_panel,
)
from driftwarden import metrics_catalogue as mc
from driftwarden import metrics_catalogue as rec

UID = "driftwarden-data-quality"
M = 'model=~"$model"'
MV = 'model=~"$model",version=~"$version"'
MVF = 'model=~"$model",version=~"$version",feature=~"$feature"'

CHECKS = (
    ("missing", "Missing values", "Share of rows where the feature is null or absent."),
    (
        "out_of_range",
        "Out of range",
        "Share of rows of a numerical feature outside the reference's range.",
    ),
    (
        "unseen_category",
        "Unseen categories",
        "Share of rows of a categorical feature with a value the reference never had.",
    ),
    ("type_error", "Type errors", "Share of rows whose value has the wrong type."),
)


def build() -> db.Dashboard:
    share = mc.DATA_QUALITY_SHARE.name
    board = (
        dashboard(
            UID,
            "driftwarden / Data quality",
            "Data quality checks of each closed window, per feature.",
            ["data-quality"],
        )
        .with_variable(datasource_variable())
        .with_variable(label_variable("model", "model", share))
        .with_variable(label_variable("version", "version", f"{share}{{{M}}}"))
        .with_variable(label_variable("feature", "feature", f"{share}{{{MV}}}"))
        .with_panel(
            table_panel(
                "Worst features, now",
                "The 20 highest failing shares of the last window, any check.",
                [instant_table(f"topk(20, {share}{{{MVF}}})")],
                unit="percentunit",
                rename={"Value": "share of rows"},
                height=8,
            )
        )
    )
    for check, title, description in CHECKS:
        board = board.with_panel(
            timeseries_panel(
                title,
                description,
                [query(f'{share}{{{MVF},check="{check}"}}', "{{feature}} {{version}}")],
                unit="percentunit",
                min_=0,
            )
        )
    return board.with_panel(
        timeseries_panel(
            "Invalid events/s by reason",
            "Events that did not parse or did not match the spec, sent to the "
            "dead-letter topic (5m rate).",
            [query(f"{rec.EVENTS_INVALID_RATE}{{{M}}}", "{{model}} {{reason}}")],
            unit="reqps",
        )
    ).with_panel(
        timeseries_panel(
            "Rows per window",
            "Quality shares of small windows are noisy; alerts ignore windows below the minimum.",
            [query(f"{mc.WINDOW_ROWS.name}{{{MV}}}", "{{model}} {{version}}")],
        )
    )
