"""Zero loss when Kafka goes away: the broker SIGKILLed mid-traffic and restarted, a
collector restarted with a non-empty spool, and SIGTERM draining the CLI process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from collector.settings import CollectorSettings, parse_config
from driftwarden.schema import decode_prediction
from driftwarden.services import KafkaBroker
from driftwarden.services.ports import free_port
from tests.kits.collector import CollectorThread, ModelServer, read_topic

pytestmark = pytest.mark.integration


class Traffic(threading.Thread):
    """Sends single-row predictions with unique X-Request-IDs at about `rate` per second."""

    def __init__(self, port: int, prefix: str, rate: float = 150.0) -> None:
        super().__init__(daemon=True)
        self.port, self.prefix, self.interval = port, prefix, 1.0 / rate
        self.sent: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            rid = f"{self.prefix}-{i}"
            conn.request(
                "POST",
                "/v1/models/m:predict",
                body=json.dumps({"instances": [{"i": i, "x": 0.5}]}),
                headers={"X-Request-ID": rid},
            )
            resp = conn.getresponse()
            resp.read()
            self.statuses[resp.status] += 1
            self.sent.append(rid)
            i += 1
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.close()

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.sent) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.sent) >= n, f"only {len(self.sent)} requests sent"


def _settings(bootstrap: str, model: ModelServer, spool: Path, prefix: str) -> CollectorSettings:
    return CollectorSettings(
        model="m",
        model_port=model.port,
        port=0,
        admin_port=0,
        host="127.0.0.1",
        bootstrap=bootstrap,
        spool_dir=spool,
        config=parse_config(
            {"topic_prefix": prefix, "delivery": {"slow_after_s": 1.0, "linger_ms": 20}}
        ),
    )


def _ids(bootstrap: str, topic: str, n: int) -> list[str]:
    return [
        decode_prediction(v).id for _, v, _ in read_topic(bootstrap, topic, at_least=n, timeout=90)
    ]


def test_broker_killed_mid_traffic_loses_nothing(
    kafka_factory: Callable[[], KafkaBroker], tmp_path: Path
) -> None:
    broker = kafka_factory()
    prefix = f"out{uuid.uuid4().hex[:8]}"
    broker.create_topic(f"{prefix}.predictions", partitions=1)
    with (
        ModelServer() as model,
        CollectorThread(_settings(broker.bootstrap, model, tmp_path / "spool", prefix)) as c,
    ):
        traffic = Traffic(c.port, prefix)
        traffic.start()
        try:
            traffic.wait_for(200)
            broker.kill()  # SIGKILL: an outage as the producer sees it
            killed_at = len(traffic.sent)
            traffic.wait_for(killed_at + 300)
            assert c.service.delivery.mode == "spooling"
            spooled_during_outage = sum(c.service.stats.spooled().values())
            broker.restart()  # same port, same data; traffic keeps flowing meanwhile
            restarted_at = len(traffic.sent)
            traffic.wait_for(restarted_at + 200)
        finally:
            traffic.stop_flag.set()
            traffic.join(30)
        assert c.service.delivery.wait_idle(90), "spool not replayed"
        stats = c.service.stats
        sent_metric = sum(stats.sent().values())
    got = _ids(broker.bootstrap, f"{prefix}.predictions", len(traffic.sent))
    counts = Counter(got)
    lost = set(traffic.sent) - set(counts)
    duplicates = len(got) - len(counts)
    print(
        f"\noutage test: sent {len(traffic.sent)} (broker killed at {killed_at}, restarted at "
        f"{restarted_at}), received {len(got)}, unique {len(counts)}, lost {len(lost)}, "
        f"duplicates {duplicates}, spooled during the outage {spooled_during_outage}, "
        f"acknowledged {sent_metric}"
    )
    assert traffic.statuses == Counter({200: len(traffic.sent)}), "the model's answers changed"
    assert spooled_during_outage > 0
    assert not lost, f"{len(lost)} events lost, e.g. {sorted(lost)[:5]}"
    assert set(counts) == set(traffic.sent)


def _librdkafka_cpu_s() -> float:
    """CPU seconds of this process's librdkafka broker threads (the collector runs here)."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name, rest = stat.split("(", 1)[1].rsplit(")", 1)
        if name.startswith("rdk:broker"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def test_hung_broker_spools_without_spinning_and_loses_nothing(
    kafka_factory: Callable[[], KafkaBroker], tmp_path: Path
) -> None:
    """SIGSTOP: the broker keeps its connections but answers nothing (slow, not down)."""
    broker = kafka_factory()
    prefix = f"hung{uuid.uuid4().hex[:8]}"
    broker.create_topic(f"{prefix}.predictions", partitions=1)
    assert broker.pid is not None
    with (
        ModelServer() as model,
        CollectorThread(_settings(broker.bootstrap, model, tmp_path / "spool", prefix)) as c,
    ):
        traffic = Traffic(c.port, prefix, rate=300)
        traffic.start()
        try:
            traffic.wait_for(300)
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                deadline = time.monotonic() + 30
                while c.service.delivery.mode != "spooling" and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert c.service.delivery.mode == "spooling"
                time.sleep(0.5)  # the purge of librdkafka's queue has run
                cpu0, t0 = _librdkafka_cpu_s(), time.monotonic()
                traffic.wait_for(len(traffic.sent) + 600)
                spin = (_librdkafka_cpu_s() - cpu0) / (time.monotonic() - t0)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            traffic.wait_for(len(traffic.sent) + 300)
        finally:
            traffic.stop_flag.set()
            traffic.join(30)
        assert c.service.delivery.wait_idle(90)
        deadline = time.monotonic() + 10
        while c.service.delivery.mode != "direct" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.service.delivery.mode == "direct"
    got = _ids(broker.bootstrap, f"{prefix}.predictions", len(traffic.sent))
    print(
        f"\nhung broker: sent {len(traffic.sent)}, received {len(got)}, unique {len(set(got))}, librdkafka CPU while hung {spin:.0%} of a core"
    )
    assert traffic.statuses == Counter({200: len(traffic.sent)})
    assert set(got) == set(traffic.sent)
    assert spin < 0.5, f"librdkafka used {spin:.0%} of a core while the broker hung"


def test_collector_restart_replays_the_spool_in_order(
    kafka_factory: Callable[[], KafkaBroker], tmp_path: Path
) -> None:
    broker = kafka_factory()
    prefix = f"rs{uuid.uuid4().hex[:8]}"
    broker.create_topic(f"{prefix}.predictions", partitions=1)
    broker.kill()  # Kafka is away for the first collector's whole life
    spool = tmp_path / "spool"
    with ModelServer() as model:
        first = CollectorThread(_settings(broker.bootstrap, model, spool, prefix)).start()
        conn = http.client.HTTPConnection("127.0.0.1", first.port, timeout=10)
        ids = [f"{prefix}-{i}" for i in range(150)]
        for i, rid in enumerate(ids):
            conn.request(
                "POST",
                "/v1/models/m:predict",
                body=json.dumps({"instances": [{"i": i}]}),
                headers={"X-Request-ID": rid},
            )
            assert conn.getresponse().read()
        conn.close()
        deadline = time.monotonic() + 30
        while (
            sum(first.service.stats.spooled().values()) < len(ids) and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        report = first.stop()  # SIGTERM-like drain: nothing can reach Kafka
        assert report.left_in_spool_bytes > 0
        assert sum(first.service.stats.sent().values()) == 0

        broker.restart()
        with CollectorThread(_settings(broker.bootstrap, model, spool, prefix)) as second:
            assert second.service.delivery.wait_idle(60)
            assert sum(second.service.stats.sent().values()) == len(ids)
    got = _ids(broker.bootstrap, f"{prefix}.predictions", len(ids))
    assert got == ids  # every event, once, in the order it was served


def test_sigterm_drains_and_exits_cleanly(kafka: KafkaBroker, tmp_path: Path) -> None:
    prefix = f"term{uuid.uuid4().hex[:8]}"
    port, admin = free_port(), free_port()
    config = tmp_path / "collector.yaml"
    config.write_text(f"topic_prefix: {prefix}\n")
    with ModelServer() as model:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "driftwarden", "collector", "run",
                "--model", "m", "--model-port", str(model.port), "--host", "127.0.0.1",
                "--port", str(port), "--admin-port", str(admin), "--bootstrap", kafka.bootstrap,
                "--spool-dir", str(tmp_path / "spool"), "--config", str(config),
                "--log-format", "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "POD_NAME": "pod-7", "POD_NAMESPACE": "ml"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.1)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            ids = [f"{prefix}-{i}" for i in range(100)]
            for rid in ids:
                conn.request(
                    "POST",
                    "/v1/models/m:predict",
                    body=b'{"instances": [{"a": 1}]}',
                    headers={"X-Request-ID": rid},
                )
                assert conn.getresponse().read()
            conn.close()
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any("draining" in entry["msg"] for entry in logs)
    events = [
        decode_prediction(v)
        for _, v, _ in read_topic(kafka.bootstrap, f"{prefix}.predictions", at_least=100)
    ]
    assert sorted(e.id for e in events) == sorted(ids)
    assert events[0].meta == {"namespace": "ml", "pod": "pod-7"}
