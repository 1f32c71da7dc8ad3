"""Grafana dashboards as code, built with Grafana's typed SDK (grafana-foundation-sdk).

    from dashboards import all_dashboards, write_dashboards
    write_dashboards("out/")            # <uid>.json per dashboard

`python -m dashboards` regenerates the committed copies in dashboards/generated/;
`driftwarden dashboards export|upload` are the user-facing commands (docs/dashboards.md).
"""

from dashboards.generate import BUILDERS, GENERATED_DIR, all_dashboards, render, write_dashboards
from dashboards.queries import PanelQuery, VariableQuery, panel_queries, variable_queries
from dashboards.upload import DashboardUploadError, Uploaded, upload_dashboards

__all__ = [
    "BUILDERS",
    "GENERATED_DIR",
    "DashboardUploadError",
    "PanelQuery",
    "Uploaded",
    "VariableQuery",
    "all_dashboards",
    "panel_queries",
    "render",
    "upload_dashboards",
    "variable_queries",
    "write_dashboards",
]
