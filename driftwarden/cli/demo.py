"""`driftwarden demo`: the whole monitoring loop on one machine."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live


def demo(
    duration: float = typer.Option(120.0, min=10, help="Seconds of traffic before the demo stops."),
    rate: float = typer.Option(
        100.0, min=1, max=2000, help="Requests per second sent to the model."
    ),
    drift_after: float = typer.Option(
        30.0, min=0, help="Seconds of normal traffic before drift starts."
    ),
    window_rows: int = typer.Option(500, min=100, help="Rows per detector window."),
    alert_for: str = typer.Option("10s", help="`for:` duration of every alert rule in the demo."),
    short: bool = typer.Option(
        False, "--short", help="Stop as soon as the drift alert arrives (CI)."
    ),
    live: bool = typer.Option(True, help="Live terminal view (off: a progress line every 5s)."),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the work folder (logs, configs) afterwards."
    ),
    workdir: Path = typer.Option(None, help="Work folder (default: a new temporary folder)."),
) -> None:
    """Run a model behind the collector, inject drift, and watch it reach Alertmanager.

    Starts Kafka, Prometheus (with driftwarden's generated alert rules), Alertmanager, a
    small model server, the collector sidecar in front of it and the streaming detectors,
    all on 127.0.0.1; sends traffic that drifts after --drift-after seconds; shows request
    rate, per-feature drift scores, dataset drift and the alert's state; ends with the time
    from the first drifted request to the alert's delivery. Ctrl-C stops everything.
    """
    from driftwarden.demo.runner import DemoOptions, run_demo
    from driftwarden.demo.view import Snapshot, render

    console = Console()
    options = DemoOptions(
        duration_s=duration,
        rate=rate,
        drift_after_s=drift_after,
        window_rows=window_rows,
        alert_for=alert_for,
        stop_on_alert=short,
        live=live and console.is_terminal,
        keep=keep,
        workdir=workdir,
    )

    def say(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")

    last_line = [0.0]
    live_view = (
        Live(console=console, refresh_per_second=2, transient=False) if options.live else None
    )

    def show(snap: Snapshot) -> None:
        if live_view is not None:
            live_view.update(render(snap))
        elif snap.elapsed_s - last_line[0] >= 5 or snap.alert_delivered:
            last_line[0] = snap.elapsed_s
            share = "-" if snap.drift_share is None else f"{snap.drift_share:.0%}"
            drifted = sorted(n for n, (_, _, d) in snap.features.items() if d)
            say(
                f"t={snap.elapsed_s:.0f}s {'DRIFTING' if snap.drifting else 'normal'} "
                f"{snap.request_rate:.0f} req/s, windows {snap.windows:.0f}, drift share {share}, "
                f"drifted {drifted or 'none'}, alert {snap.alert_state}"
                + (" (delivered)" if snap.alert_delivered else "")
            )

    if live_view is not None:
        live_view.start()
    try:
        result = run_demo(options, say, show)
    finally:
        if live_view is not None:
            live_view.stop()

    console.rule("summary")
    console.print(
        f"requests sent {result.requests_sent} (ok {result.requests_ok}), labels sent {result.labels_sent}"
    )
    if result.seconds_to_alert is not None:
        labels = (result.alert or {}).get("labels", {})
        console.print(
            f"[bold]{labels.get('alertname')}[/] for model {labels.get('model')} "
            f"(driftwarden_action={labels.get('driftwarden_action')}) reached the webhook "
            f"[bold]{result.seconds_to_alert:.1f}s[/] after the first drifted request"
        )
    else:
        console.print("[bold red]the drift alert did not arrive[/] before the demo ended")
    if keep:
        console.print(f"logs and configs kept in {result.workdir}")
    if result.seconds_to_alert is None and (short or result.first_drifted_at is not None):
        raise typer.Exit(1)
