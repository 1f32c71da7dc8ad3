"""What the demo shows: a snapshot of the loop, rendered as rich tables. Pure."""

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
    performance: dict[str, dict[str, float]] = field(default_factory=dict)  # version -> metric
    alert_state: str = "inactive"  # inactive | pending | firing
    alert_delivered: bool = False  # the retrain trigger received it
    accuracy: dict[str, float | None] = field(default_factory=dict)  # version -> last 15 s
    served: dict[str, int] = field(default_factory=dict)  # version -> requests answered
    job: str | None = None
    job_epoch: int = 0
    job_epochs: int = 0
    job_outcome: str = ""
    canary_version: str | None = None
    canary_phase: str | None = None
    canary_weight: int = 0
    canary_step: int = 0
    canary_steps: int = 0
    checks: dict[str, str] = field(default_factory=dict)  # check -> pass | fail | inconclusive


def snapshot_from_prometheus(query, snap: Snapshot) -> Snapshot:  # query: promql -> list[dict]
    """Fill `snap` from instant queries (the same series Grafana's dashboards show)."""

    def scalar(expr: str) -> float | None:
        result = query(expr)
        return float(result[0]["value"][1]) if result else None

    snap.request_rate = scalar("sum(rate(driftwarden_collector_requests_total[10s]))") or 0.0
    snap.windows = scalar("sum(driftwarden_windows_total)") or 0.0
    snap.drift_share = scalar("max(driftwarden_dataset_drift_share)")
    snap.dataset_drift = (scalar("max(driftwarden_dataset_drift_detected)") or 0.0) >= 1
    detected = {
        r["metric"].get("feature"): float(r["value"][1]) >= 1
        for r in query("max by (feature) (driftwarden_feature_drift_detected)")
    }
    snap.features = {
        r["metric"]["feature"]: (
            r["metric"].get("test", "?"),
            float(r["value"][1]),
            detected.get(r["metric"]["feature"], False),
        )
        for r in query("max by (feature, test) (driftwarden_feature_drift_score)")
    }
    performance: dict[str, dict[str, float]] = {}
    for r in query("driftwarden_model_performance"):
        version = r["metric"].get("version", "?")
        performance.setdefault(version, {})[r["metric"]["metric"]] = float(r["value"][1])
    snap.performance = performance
    return snap


_VERDICT_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow"}


def _loop_table(snap: Snapshot) -> Table:
    t = Table(title="the loop", expand=False, show_header=False)
    t.add_column("step")
    t.add_column("state")
    alert_style = {"firing": "bold red", "pending": "yellow"}.get(snap.alert_state, "dim")
    t.add_row(
        "alert",
        Text.assemble(
            Text(snap.alert_state, style=alert_style),
            "  " if snap.alert_delivered else "",
            Text("delivered to the retrain trigger", style="bold") if snap.alert_delivered else "",
        ),
    )
    if snap.job is None:
        t.add_row("retraining", Text("no Job", style="dim"))
    else:
        bar = ""
        if snap.job_epochs:
            done = round(20 * snap.job_epoch / snap.job_epochs)
            bar = f" [{'#' * done}{'.' * (20 - done)}] epoch {snap.job_epoch}/{snap.job_epochs}"
        style = {"succeeded": "green", "failed": "bold red"}.get(snap.job_outcome, "")
        t.add_row("retraining", Text(f"Job {snap.job}{bar} {snap.job_outcome}", style=style))
    if snap.canary_phase is None:
        t.add_row("canary", Text("no rollout", style="dim"))
    else:
        t.add_row(
            "canary",
            f"{snap.canary_version}: {snap.canary_phase}, step {snap.canary_step + 1}/"
            f"{snap.canary_steps}, weight {snap.canary_weight}%",
        )
        t.add_row(
            "checks",
            Text.assemble(
                *(
                    Text(f"{name} {verdict}  ", style=_VERDICT_STYLE.get(verdict, ""))
                    for name, verdict in sorted(snap.checks.items())
                )
            )
            if snap.checks
            else Text("waiting for the first analysis", style="dim"),
        )
    return t


def _versions_table(snap: Snapshot) -> Table:
    t = Table(title="labelled accuracy per version", expand=False)
    t.add_column("version")
    t.add_column("served", justify="right")
    t.add_column("last 15 s", justify="right")
    t.add_column("detectors' last window", justify="right")
    for version in sorted(set(snap.accuracy) | set(snap.performance)):
        acc = snap.accuracy.get(version)
        window = snap.performance.get(version, {}).get("accuracy")
        t.add_row(
            version,
            str(snap.served.get(version, 0)),
            "-" if acc is None else f"{acc:.3f}",
            "-" if window is None else f"{window:.3f}",
        )
    return t


def render(snap: Snapshot) -> Group:
    head = Table.grid(padding=(0, 3))
    phase = (
        Text("DRIFTING", style="bold red")
        if snap.drifting
        else Text("reference-like", style="green")
    )
    share = "-" if snap.drift_share is None else f"{snap.drift_share:.0%}"
    style = "bold red" if snap.dataset_drift else "green"
    head.add_row(
        f"t = {snap.elapsed_s:5.0f}s",
        Text.assemble("traffic: ", phase),
        f"{snap.request_rate:6.1f} req/s ({snap.requests_sent} sent)",
        f"windows: {snap.windows:.0f}",
        Text.assemble(
            "dataset drift: ",
            Text(f"{share} {'DETECTED' if snap.dataset_drift else 'no'}", style=style),
        ),
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
    row = Table.grid(padding=(0, 2))
    row.add_row(table, Group(_loop_table(snap), _versions_table(snap)))
    return Group(head, row)


def progress_line(snap: Snapshot) -> str:
    """One line for terminals without the live view (CI logs)."""
    share = "-" if snap.drift_share is None else f"{snap.drift_share:.0%}"
    drifted = sorted(n for n, (_, _, d) in snap.features.items() if d)
    acc = ", ".join(f"{v} {a:.2f}" for v, a in sorted(snap.accuracy.items()) if a is not None)
    canary = f", canary {snap.canary_phase} {snap.canary_weight}%" if snap.canary_phase else ""
    return (
        f"t={snap.elapsed_s:.0f}s {'DRIFTING' if snap.drifting else 'normal'} "
        f"{snap.request_rate:.0f} req/s, drift share {share}, drifted {drifted or 'none'}, "
        f"alert {snap.alert_state}, accuracy {acc or '-'}{canary}"
    )
