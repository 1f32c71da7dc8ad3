"""Small helpers over grafana-foundation-sdk's builders, so that each dashboard module reads
as a list of panels: every panel queries the `$datasource` variable, every query has a
refId, every template variable filters with a regex that also works for 'All'."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import (
    common as common_b,
)
from grafana_foundation_sdk.builders import (
    dashboard as db,
)
from grafana_foundation_sdk.builders import (
    prometheus,
    stat,
    statushistory,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import prometheus as prom_models
from grafana_foundation_sdk.models import text as text_models
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableHide,
    VariableRefresh,
    VariableSort,
)

DATASOURCE_VAR = "datasource"
DS = DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VAR}}}")
REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Regex Grafana sends for 'All', so `label=~"$var"` matches every value, empty included.
ALL = ".*"


def query(expr: str, legend: str | None = None) -> prometheus.Dataquery:
    """A range query (time series)."""
    q = prometheus.Dataquery().expr(expr).range()
    if legend:
        q = q.legend_format(legend)
    return q


def instant_table(expr: str) -> prometheus.Dataquery:
    """An instant query formatted as a table (one row per series)."""
    return prometheus.Dataquery().expr(expr).instant().format(prom_models.PromQueryFormat.TABLE)


def _targets(panel, queries: Sequence[prometheus.Dataquery]):
    for ref, q in zip(REF_IDS, queries, strict=False):
        panel = panel.with_target(q.ref_id(ref))
    return panel.datasource(DS)


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


def timeseries_panel(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    min_: float | None = None,
    max_: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(width)
        .height(height)
        .legend(
            common_b.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    if min_ is not None:
        panel = panel.min(min_)
    if max_ is not None:
        panel = panel.max(max_)
    return _targets(panel, queries)


def stat_panel(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    unit: str = "short",
    width: int = 6,
    height: int = 4,
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(width)
        .height(height)
        .thresholds(_thresholds(thresholds))
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
    )
    return _targets(panel, queries)


def state_panel(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    states: Sequence[tuple[str, str, str]],
    thresholds: Sequence[tuple[float | None, str]],
    *,
    width: int = 24,
    height: int = 10,
) -> statushistory.Panel:
    """A series x time grid coloured by a discrete state: `states` maps each value to its
    text and colour, `thresholds` colours anything else."""
    panel = (
        statushistory.Panel()
        .title(title)
        .description(description)
        .span(width)
        .height(height)
        .show_value(common.VisibilityMode.NEVER)
        .mappings(
            [
                ValueMap(
                    options={
                        value: ValueMappingResult(text=text, color=color, index=i)
                        for i, (value, text, color) in enumerate(states)
                    }
                )
            ]
        )
        .thresholds(_thresholds(thresholds))
    )
    return _targets(panel, queries)


def drift_state_panel(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    width: int = 24,
    height: int = 10,
) -> statushistory.Panel:
    """A feature x time grid, red where the feature drifted (a heatmap of 0/1 verdicts)."""
    return state_panel(
        title,
        description,
        queries,
        (("0", "no drift", "green"), ("1", "drift", "red")),
        ((None, "green"), (1, "red")),
        width=width,
        height=height,
    )


def table_panel(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    width: int = 24,
    height: int = 10,
    unit: str = "short",
    hide: Sequence[str] = ("Time", "__name__", "job", "instance"),
    rename: dict[str, str] | None = None,
) -> table.Panel:
    """Instant queries merged into one table (one row per label set), columns renamed."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .span(width)
        .height(height)
        .unit(unit)
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": dict.fromkeys(hide, True),
                    "renameByName": dict(rename or {}),
                },
            )
        )
    )
    return _targets(panel, queries)


def text_panel(title: str, markdown: str, *, width: int = 24, height: int = 3) -> text.Panel:
    return (
        text.Panel()
        .title(title)
        .span(width)
        .height(height)
        .mode(text_models.TextMode.MARKDOWN)
        .content(markdown)
    )


# --- template variables ---------------------------------------------------------------------


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable(DATASOURCE_VAR).label("Data source").type("prometheus")


def label_variable(
    name: str, label: str, selector: str, *, title: str | None = None
) -> db.QueryVariable:
    """A multi-value variable over `label_values(selector, label)`, with 'All' = `.*`."""
    q = f"label_values({selector}, {label})"
    return (
        db.QueryVariable(name)
        .label(title or name.capitalize())
        .datasource(DS)
        .query({"query": q, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
        .hide(VariableHide.DONT_HIDE)
    )


def dashboard(uid: str, title: str, description: str, tags: Sequence[str]) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["driftwarden", *tags])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
    )
