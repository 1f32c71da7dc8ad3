"""`driftwarden demo`: the whole loop on one machine, drift → alert → retraining → canary → promotion."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live


def demo(
    duration: float = typer.Option(
        480.0,
        min=10,
        help="Seconds of traffic at most (the demo ends earlier once the loop is done).",
    ),
    no_drift: bool = typer.Option(
        False, "--no-drift", help="Reference-like traffic only: no alert, no retraining."
    ),
    seed: int = typer.Option(11, help="Seed of the traffic (rows, labels, traffic split)."),
    fast: bool = typer.Option(
        False,
        "--fast",
        help="CI's short mode: faster windows, 5s `for:`, fewer epochs, two canary steps.",
    ),
    worse_model: bool = typer.Option(
        False,
        "--worse-model",
        help="Corrupt the retrained model after its gate (a constant predictor): the canary must "
        "roll it back.",
    ),
    live: bool = typer.Option(True, help="Live terminal view (off: a progress line every 5s)."),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the work folder (logs, configs, artifacts) afterwards."
    ),
    workdir: Path = typer.Option(None, help="Work folder (default: a new temporary folder)."),
    cache_dir: Path = typer.Option(
        Path(".cache/demo"), help="Where the first model version is cached between runs."
    ),
    report: Path = typer.Option(
        Path("out/demo-report.html"), help="The self-contained HTML report written at the end."
    ),
    secure_kafka: bool = typer.Option(
        False,
        "--secure-kafka",
        help="Kafka over SASL_SSL (its own CA), one SCRAM user per component with only its "
        "least ACLs (docs/security.md), as in production.",
    ),
    kubeconfig: Path = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="A real Kubernetes API server: the trigger and the canary controller act on it "
        "(Jobs, Deployments, Events), and the demo's pods run on a node the demo registers "
        "there and runs on this machine (no image needed). Needs rights to create a namespace "
        "and a node; use a test cluster (`make k8s-up` starts one).",
    ),
    namespace: str = typer.Option(
        "driftwarden-demo",
        help="With --kubeconfig: the namespace the demo creates (it must not exist) and deletes "
        "at the end unless --keep.",
    ),
) -> None:
    """Drift → alert → retraining → canary → promotion, with real processes on 127.0.0.1.

    Trains (once, then cached) a torch model on reference data and serves it behind the
    collector; starts Kafka, Prometheus with driftwarden's generated rules, Alertmanager
    routing to the retrain trigger, the detectors and the canary controller. Traffic drifts
    after 30 s; the alert makes the trigger launch a retraining Job (a local subprocess
    running the reference trainer), the new version is rolled out as a canary over
    10/25/50/100 % of traffic, judged on labelled accuracy, errors, latency and predictions,
    and promoted. Ends with the time from the first drifted request to each step, the
    accuracy on drifted traffic before and after, and an HTML report. Ctrl-C stops everything.

    With --kubeconfig the same loop runs against a real API server: the retraining Job, the
    canary Deployment and the rollout's scaling are Kubernetes objects.
    """
    from driftwarden.demo.runner import DemoOptions, run_demo
    from driftwarden.demo.view import Snapshot, progress_line, render

    console = Console()
    options = DemoOptions(
        duration_s=duration,
        profile="fast" if fast else "normal",
        drift=not no_drift,
        worse_model=worse_model,
        seed=seed,
        live=live and console.is_terminal,
        keep=keep,
        workdir=workdir,
        cache_dir=cache_dir,
        report=report,
        secure_kafka=secure_kafka,
        kubeconfig=kubeconfig,
        namespace=namespace,
    )

    def say(message: str) -> None:
        console.print(
            f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False, soft_wrap=True
        )

    last_line = [0.0]
    live_view = (
        Live(console=console, refresh_per_second=2, transient=False) if options.live else None
    )

    def show(snap: Snapshot) -> None:
        if live_view is not None:
            live_view.update(render(snap))
        elif snap.elapsed_s - last_line[0] >= 5:
            last_line[0] = snap.elapsed_s
            say(progress_line(snap))

    # SIGTERM stops the demo as Ctrl-C does: every process it started is stopped first.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if live_view is not None:
        live_view.start()
    try:
        result = run_demo(options, say, show)
    finally:
        if live_view is not None:
            live_view.stop()

    m = result.milestones
    console.rule("summary")
    console.print(
        f"requests sent {result.stats.sent} (ok {result.stats.ok}), labels sent {result.stats.labels_sent}",
        highlight=False,
    )
    for label, ts in (
        ("alert at the retrain trigger", m.alert_delivered),
        ("retrained model", m.retrained),
        (m.outcome or "end of the rollout", m.rollout_finished),
    ):
        since = result.since_drift(ts)
        if since is not None:
            console.print(f"first drifted request → {label}: [bold]{since:.1f}s[/]")
    before = result.drifted_accuracy("v1")
    if before is not None:
        console.print(f"accuracy on drifted traffic: v1 {before:.3f}", highlight=False)
    if m.new_version and result.drifted_accuracy(m.new_version) is not None:
        console.print(
            f"accuracy on drifted traffic: {m.new_version} {result.drifted_accuracy(m.new_version):.3f}",
            highlight=False,
        )
    console.print(f"outcome: {m.outcome or 'none'}; job {m.job or '-'} {m.job_outcome or ''}")
    if result.report is not None:
        console.print(f"report: {result.report}", highlight=False)
    if keep:
        console.print(f"logs, configs and artifacts kept in {result.workdir}", highlight=False)
    expected = None if no_drift else ("rolled_back" if worse_model else "promoted")
    if no_drift:
        if m.alert_delivered is not None or m.job is not None:
            console.print("[bold red]an alert or a retrain happened without drift[/]")
            raise typer.Exit(1)
    elif m.outcome != expected:
        console.print(f"[bold red]the loop did not end {expected}[/] before the demo ended")
        raise typer.Exit(1)
