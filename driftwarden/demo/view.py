"""What the demo shows: a snapshot read from Prometheus, rendered as a rich table. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text


@dataclass
class Snapshot:
    elapsed_s: float = 0.0
    drifting: bool = False
    request_rate: float = 0.0
    requests_sent: int = 0
    windows: float = 0.0
    window_rows: float = 0.0
    drift_share: float | None = None
    dataset_drift: bool = False
    features: dict[str, tuple[str, float, bool]] = field(
        default_factory=dict
    )  # name -> (test, score, drifted)
    performance: dict[str, float] = field(default_factory=dict)
    alert_state: str = "inactive"  # inactive | pending | firing
    alert_delivered: bool = False


def snapshot_from_prometheus(query, snap: Snapshot) -> Snapshot:  # query: promql -> list[dict]
    """Fill `snap` from instant queries (the same series Grafana's dashboards show)."""

    def scalar(expr: str) -> float | None:
        result = query(expr)
        return float(result[0]["value"][1]) if result else None

    snap.request_rate = scalar("sum(rate(driftwarden_collector_requests_total[10s]))") or 0.0
    snap.windows = scalar("sum(driftwarden_windows_total)") or 0.0
    snap.window_rows = scalar("max(driftwarden_window_rows)") or 0.0
    snap.drift_share = scalar("max(driftwarden_dataset_drift_share)")
    snap.dataset_drift = (scalar("max(driftwarden_dataset_drift_detected)") or 0.0) >= 1
    detected = {
        r["metric"].get("feature"): float(r["value"][1]) >= 1
        for r in query("driftwarden_feature_drift_detected")
    }
    snap.features = {
        r["metric"]["feature"]: (
            r["metric"].get("test", "?"),
            float(r["value"][1]),
            detected.get(r["metric"]["feature"], False),
        )
        for r in query("driftwarden_feature_drift_score")
    }
    snap.performance = {
        r["metric"]["metric"]: float(r["value"][1]) for r in query("driftwarden_model_performance")
    }
    return snap


def render(snap: Snapshot) -> Group:
    head = Table.grid(padding=(0, 3))
    phase = (
        Text("DRIFTING", style="bold red")
        if snap.drifting
        else Text("reference-like", style="green")
    )
    head.add_row(
        f"t = {snap.elapsed_s:5.0f}s",
        Text.assemble("traffic: ", phase),
        f"{snap.request_rate:6.1f} req/s ({snap.requests_sent} sent)",
        f"windows: {snap.windows:.0f} of {snap.window_rows:.0f} rows",
    )
    share = "-" if snap.drift_share is None else f"{snap.drift_share:.0%}"
    style = "bold red" if snap.dataset_drift else "green"
    alert_style = {"firing": "bold red", "pending": "yellow"}.get(snap.alert_state, "dim")
    head.add_row(
        Text.assemble(
            "dataset drift: ",
            Text(f"{share} {'DETECTED' if snap.dataset_drift else 'no'}", style=style),
        ),
        Text.assemble("alert: ", Text(snap.alert_state, style=alert_style)),
        Text(
            "delivered to the webhook" if snap.alert_delivered else "not delivered",
            style="bold red" if snap.alert_delivered else "dim",
        ),
        "  ".join(f"{k} {v:.3f}" for k, v in sorted(snap.performance.items()))
        or "performance: waiting for labels",
    )
    table = Table(title="per-feature drift (last closed window)", expand=False)
    table.add_column("feature")
    table.add_column("test")
    table.add_column("score", justify="right")
    table.add_column("drift")
    for name, (test, score, drifted) in sorted(snap.features.items()):
        table.add_row(
            name,
            test,
            f"{score:.4f}",
            Text("DRIFT", style="bold red") if drifted else Text("ok", style="green"),
        )
    return Group(head, table)
