"""pytest fixtures that start real Kafka, Prometheus and Alertmanager servers on free
loopback ports (enabled in tests/conftest.py with
`pytest_plugins = ["tests.kits.services"]`).

    kafka                  session: one shared KRaft broker (KafkaBroker)
    kafka_factory()        function: a fresh, dedicated broker per call (kill/restart)
    prometheus_factory(…)  function: a Prometheus scraping the given targets (PrometheusServer)
    alertmanager_factory(…) function: an Alertmanager (AlertmanagerServer)
    webhook_listener       function: an HTTP server collecting POSTed JSON (WebhookListener)

A missing binary or a failed start fails the test with the service's log tail; nothing is
ever skipped. Every server is stopped at teardown (and by an atexit hook, and by the kernel
if pytest itself dies), pass or fail.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from driftwarden.errors import ServiceError
from driftwarden.services.alertmanager import AlertmanagerServer, render_alertmanager_config
from driftwarden.services.kafka import KafkaBroker
from driftwarden.services.prometheus import PrometheusServer, render_prometheus_config
from driftwarden.services.webhook import WebhookListener

# Start-up seconds of every server the fixtures started, shown in the terminal summary.
_STARTUPS: dict[str, list[float]] = defaultdict(list)
_counter = itertools.count(1)


class _Startable(Protocol):
    startup_seconds: float | None

    def start(self) -> Any: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Startable)


def _start(kind: str, service: S) -> S:
    """Start `service` or fail the test (never skip) with the reason and its log tail."""
    error: ServiceError | None = None
    try:
        service.start()
    except ServiceError as e:
        error = e
    if error is not None:  # outside `except`: one clear message, no chained traceback
        service.stop()
        pytest.fail(f"{kind} did not start: {error}", pytrace=False)
    _STARTUPS[kind].append(service.startup_seconds or 0.0)
    return service


# --- Kafka ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One KRaft broker shared by the session: `.bootstrap` ("127.0.0.1:PORT"),
    `.create_topic(name, partitions=1)`, `.stop()`. Use unique topic and group names."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:
        yield _start("kafka", broker)
    finally:
        broker.stop()


@pytest.fixture
def kafka_factory(tmp_path: Path) -> Iterator[Callable[..., KafkaBroker]]:
    """`kafka_factory()` starts a dedicated broker with its own data dir and returns it:
    `.bootstrap`, `.create_topic()`, `.kill()` (SIGKILL, an outage), `.restart()` (same
    port and data, waits until ready), `.stop()`. All are stopped at teardown."""
    brokers: list[KafkaBroker] = []

    def factory(**kwargs: Any) -> KafkaBroker:
        broker = KafkaBroker(tmp_path / f"kafka-{next(_counter)}", **kwargs)
        brokers.append(broker)
        return _start("kafka", broker)

    try:
        yield factory
    finally:
        for broker in brokers:
            broker.kill()


# --- Prometheus and Alertmanager -------------------------------------------------------------


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """`prometheus_factory(scrape_targets=["127.0.0.1:PORT"], rule_files=[path],
    alertmanager_url=None, scrape_interval="1s", evaluation_interval="1s")` starts a
    Prometheus and returns it: `.url`, `.query(promql)`, `.wait_for(promql, predicate=None,
    timeout=30)`, `.alerts()`, `.targets()`, `.rules()`, `.reload()`, `.stop()`.
    Other keyword arguments go to `render_prometheus_config`; `config_yaml=` replaces it."""
    servers: list[PrometheusServer] = []

    def factory(
        scrape_targets: Sequence[str] = (),
        rule_files: Sequence[Path | str] = (),
        alertmanager_url: str | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        *,
        config_yaml: str | None = None,
        **render_kwargs: Any,
    ) -> PrometheusServer:
        if config_yaml is None:
            config_yaml = render_prometheus_config(
                scrape_targets=scrape_targets,
                rule_files=rule_files,
                alertmanager_url=alertmanager_url,
                scrape_interval=scrape_interval,
                evaluation_interval=evaluation_interval,
                **render_kwargs,
            )
        server = PrometheusServer(
            tmp_path / f"prometheus-{next(_counter)}", config_yaml=config_yaml
        )
        servers.append(server)
        return _start("prometheus", server)

    try:
        yield factory
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., AlertmanagerServer]]:
    """`alertmanager_factory(webhook_url=None, config_yaml=None)` starts an Alertmanager
    and returns it (`.url`, `.alerts()`, `.post_alerts()`, `.stop()`). With `webhook_url`
    every alert goes to that webhook, group_wait/group_interval 1s; other keyword
    arguments go to `render_alertmanager_config`; `config_yaml=` replaces it."""
    servers: list[AlertmanagerServer] = []

    def factory(
        webhook_url: str | None = None, config_yaml: str | None = None, **render_kwargs: Any
    ) -> AlertmanagerServer:
        if config_yaml is None:
            config_yaml = render_alertmanager_config(webhook_url, **render_kwargs)
        server = AlertmanagerServer(
            tmp_path / f"alertmanager-{next(_counter)}", config_yaml=config_yaml
        )
        servers.append(server)
        return _start("alertmanager", server)

    try:
        yield factory
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def webhook_listener() -> Iterator[WebhookListener]:
    """An HTTP server on a free loopback port recording POSTed JSON bodies: `.url`,
    `.received` (list), `.wait_for(n=1, timeout=30, predicate=None)`."""
    with WebhookListener() as listener:
        yield listener


# --- reporting ------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _STARTUPS:
        return
    parts = []
    for kind in ("kafka", "prometheus", "alertmanager"):
        times = _STARTUPS.get(kind)
        if times:
            parts.append(
                f"{kind} {len(times)}x, first {times[0]:.1f}s, max {max(times):.1f}s, "
                f"mean {sum(times) / len(times):.1f}s"
            )
    terminalreporter.write_line("driftwarden services start-up: " + "; ".join(parts))
