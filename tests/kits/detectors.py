"""Synthetic models and event streams with drift injected at a known point, for tests,
benchmarks and the demo; plus small helpers to produce them to Kafka and to run the
detectors service as a subprocess.

    model = SyntheticModel("churn", n_numerical=4, n_categorical=2)
    spec_path = model.write(specs_dir, reference_rows=5000, window_rows=1000)
    stream = model.stream(4000, drift_from=2000, drifted={"num_0", "cat_0"})
    produce(bootstrap, "driftwarden.predictions", stream.records())
    produce(bootstrap, "driftwarden.feedback", stream.feedback_records())

A drifted numerical feature is shifted by `shift` reference standard deviations; a drifted
categorical feature puts most of its mass on its last category. Undrifted features keep the
reference distribution exactly (same generator), so their drift scores stay below the
default thresholds for windows of a few hundred rows or more.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import yaml

from driftwarden.schema import FEEDBACK_SCHEMA, PREDICTION_SCHEMA

__all__ = [
    "EventStream",
    "ServiceProcess",
    "SyntheticModel",
    "consume_all",
    "produce",
    "read_results",
]

_encoder = msgspec.json.Encoder()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


@dataclass
class EventStream:
    """Prediction events (and their labels) of one model version, in order."""

    model: str
    version: str
    ids: list[str]
    ts: np.ndarray
    frame: pd.DataFrame  # features, prediction, target per event
    drift_from: int | None
    payloads: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def records(self) -> list[tuple[bytes, bytes]]:
        """(key, value) of every prediction event; key = model name."""
        key = self.model.encode()
        return [(key, v) for v in self.payloads]

    def feedback_records(
        self,
        *,
        fraction: float = 1.0,
        delay_s: float = 60.0,
        seed: int = 0,
        flip: float = 0.0,
        start: int = 0,
        stop: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Feedback events labelling `fraction` of the predictions, `delay_s` later (event
        time), in prediction order. With `flip`, that share of labels is wrong on purpose.
        `start`/`stop` restrict them to predictions [start, stop) (the choice of which
        predictions get a label does not depend on the range)."""
        rng = np.random.default_rng(seed)
        key = self.model.encode()
        target = self.frame["target"].to_numpy()
        n = len(self.ids)
        chosen = np.flatnonzero(rng.random(n) < fraction)
        flips = rng.random(n) < flip if flip else np.zeros(n, dtype=bool)
        stop = n if stop is None else stop
        out = []
        for i in chosen.tolist():
            if not start <= i < stop:
                continue
            label = int(target[i])
            if flips[i]:
                label = 1 - label
            ev = {
                "schema": FEEDBACK_SCHEMA,
                "id": self.ids[i],
                "model": self.model,
                "ts": float(self.ts[i]) + delay_s,
                "label": label,
            }
            out.append((key, _encoder.encode(ev)))
        return out


class SyntheticModel:
    """A model with `n_numerical` normal features and `n_categorical` categorical ones, a
    probability prediction from the first numerical feature, and a 0/1 target drawn from it."""

    def __init__(
        self,
        name: str = "churn",
        *,
        n_numerical: int = 4,
        n_categorical: int = 2,
        n_categories: int = 5,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.numerical = [f"num_{i}" for i in range(n_numerical)]
        self.categorical = [f"cat_{i}" for i in range(n_categorical)]
        self.levels = [f"c{j}" for j in range(n_categories)]
        self.seed = seed
        probs = 1.0 / np.arange(1, n_categories + 1)
        self._cat_p = probs / probs.sum()
        drifted = np.full(n_categories, 0.02)
        drifted[-1] = 1.0
        self._cat_p_drifted = drifted / drifted.sum()

    @property
    def features(self) -> list[str]:
        return self.numerical + self.categorical

    def rows(
        self, n: int, *, seed: int, drifted: Iterable[str] = (), shift: float = 1.5
    ) -> pd.DataFrame:
        """`n` rows of features, prediction and target; `drifted` features drift."""
        rng = np.random.default_rng(seed)
        drifted = set(drifted)
        cols: dict[str, Any] = {}
        for i, name in enumerate(self.numerical):
            mean = float(i)
            cols[name] = rng.normal(mean + (shift if name in drifted else 0.0), 1.0, n)
        for name in self.categorical:
            p = self._cat_p_drifted if name in drifted else self._cat_p
            cols[name] = np.asarray(self.levels, dtype=object)[rng.choice(len(self.levels), n, p=p)]
        base = cols[self.numerical[0]] if self.numerical else rng.normal(0.0, 1.0, n)
        prob = _sigmoid(1.5 * base)
        cols["prediction"] = prob
        cols["target"] = (rng.random(n) < prob).astype(np.int64)
        return pd.DataFrame(cols)

    def reference(self, rows: int = 5000) -> pd.DataFrame:
        return self.rows(rows, seed=self.seed)

    def spec(
        self,
        reference_path: str,
        *,
        window_rows: int | None = 1000,
        window_duration_s: float | None = None,
        sliding_step: int | None = None,
        performance: Sequence[str] = ("accuracy",),
        join_ttl_s: float = 86_400.0,
        max_pending: int = 1_000_000,
        multivariate: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        window: dict[str, Any] = {"rows": window_rows}
        if window_duration_s is not None:
            window["duration_s"] = window_duration_s
        if sliding_step is not None:
            window.update(mode="sliding", step_rows=sliding_step)
        spec: dict[str, Any] = {
            "model": self.name,
            "features": [{"name": n, "type": "numerical"} for n in self.numerical]
            + [{"name": n, "type": "categorical"} for n in self.categorical],
            "prediction": {"column": "prediction", "type": "probability"},
            "target": {"column": "target", "type": "class", "positive_label": 1},
            "reference": {"path": reference_path},
            "window": window,
            "performance": {"metrics": list(performance)},
            "labels": {"join_ttl_s": join_ttl_s, "max_pending": max_pending},
        }
        if multivariate:
            spec["drift"] = {"multivariate": {"enabled": True, "permutations": 50, "max_rows": 500}}
        if extra:
            spec.update(extra)
        return spec

    def write(
        self, directory: Path | str, *, reference_rows: int = 5000, **spec_kwargs: Any
    ) -> Path:
        """Write `<name>.reference.parquet` and `<name>.yaml` into `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        ref = d / f"{self.name}.reference.parquet"
        self.reference(reference_rows).to_parquet(ref, index=False)
        path = d / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(self.spec(ref.name, **spec_kwargs), sort_keys=False))
        return path

    def stream(
        self,
        n: int,
        *,
        version: str = "v1",
        drift_from: int | None = None,
        drifted: Iterable[str] = (),
        shift: float = 1.5,
        seed: int = 1,
        start_ts: float = 1_700_000_000.0,
        rate: float = 100.0,
        id_prefix: str | None = None,
    ) -> EventStream:
        """`n` prediction events; rows from `drift_from` on have `drifted` features drifted.
        Event times start at `start_ts` and advance by 1/`rate` seconds per event."""
        drifted = set(drifted)
        if drift_from is None or not drifted:
            frame = self.rows(n, seed=seed)
        else:
            k = max(0, min(n, drift_from))
            frame = pd.concat(
                [
                    self.rows(k, seed=seed),
                    self.rows(n - k, seed=seed + 10_000, drifted=drifted, shift=shift),
                ],
                ignore_index=True,
            )
        prefix = id_prefix or f"{self.name}-{version}-{seed}"
        ids = [f"{prefix}-{i}" for i in range(n)]
        ts = start_ts + np.arange(n) / rate
        payloads = _encode_predictions(self, version, ids, ts, frame)
        return EventStream(self.name, version, ids, ts, frame, drift_from, payloads)


def _encode_predictions(
    model: SyntheticModel, version: str, ids: list[str], ts: np.ndarray, frame: pd.DataFrame
) -> list[bytes]:
    names = model.features
    columns = [frame[n].tolist() for n in names]
    preds = frame["prediction"].tolist()
    encode = _encoder.encode
    out = []
    meta = {"namespace": "default", "pod": f"{model.name}-0"}
    for i, pid in enumerate(ids):
        ev = {
            "schema": PREDICTION_SCHEMA,
            "id": pid,
            "model": model.name,
            "version": version,
            "ts": float(ts[i]),
            "features": {n: c[i] for n, c in zip(names, columns, strict=True)},
            "prediction": preds[i],
            "latency_ms": 1.0,
            "meta": meta,
        }
        out.append(encode(ev))
    return out


# --------------------------------------------------------------------------- Kafka


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    partition: int | None = None,
    timeout: float = 60.0,
) -> int:
    """Produce (key, value) records with driftwarden's producer settings; returns the count
    acknowledged. Raises RuntimeError when a record is not delivered in time."""
    from confluent_kafka import Producer

    from driftwarden.kafka import producer_config

    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(producer_config(bootstrap, **{"linger.ms": 20}))
    n = 0
    try:
        for key, value in records:
            while True:
                try:
                    if partition is None:
                        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                    else:
                        producer.produce(
                            topic,
                            value=value,
                            key=key,
                            partition=partition,
                            on_delivery=on_delivery,
                        )
                    break
                except BufferError:
                    producer.poll(0.05)
            n += 1
            if n % 10_000 == 0:
                producer.poll(0)
        left = producer.flush(timeout)
    finally:
        del producer
    if left or errors:
        raise RuntimeError(f"produce to {topic}: {left} undelivered, errors: {errors[:3]}")
    return n


def consume_all(
    bootstrap: str,
    topic: str,
    *,
    timeout: float = 30.0,
    read_committed: bool = True,
    min_count: int = 0,
) -> list[Any]:
    """Every record of `topic` from the beginning (no group), until `min_count` records
    were read and the end of every partition reached, or `timeout`."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"driftwarden-reader-{os.getpid()}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            "enable.partition.eof": True,
        }
    )
    out: list[Any] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return out
        parts = sorted(meta.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        deadline = time.monotonic() + timeout
        at_end: set[int] = set()
        while time.monotonic() < deadline:
            msgs = consumer.consume(1000, 0.2)
            for m in msgs:
                if m.error() is not None:
                    if m.error().code() == -191:  # _PARTITION_EOF
                        at_end.add(m.partition())
                    continue
                at_end.discard(m.partition())
                out.append(m)
            if len(at_end) == len(parts) and len(out) >= min_count:
                break
    finally:
        consumer.close()
    return out


def read_results(
    bootstrap: str, topic: str, *, min_count: int = 0, timeout: float = 30.0
) -> list[Any]:
    """Every committed window result in `topic` (decoded `WindowResult`s, in topic order)."""
    from detectors.service.results import decode_result

    return [
        decode_result(m.value())
        for m in consume_all(bootstrap, topic, timeout=timeout, min_count=min_count)
    ]


# --------------------------------------------------------------------------- subprocess


class ServiceProcess:
    """`python -m detectors.service ...` as a child process (for SIGKILL tests, the alerts
    tests and the demo). Environment and flags as for the CLI.

    `instance_id` names the replica (its Kafka transactional id and static group member);
    by default each `ServiceProcess` gets a unique one, so several can run on one host. To
    restart "the same replica" (fencing the killed one at once), pass the same id again.
    """

    def __init__(
        self,
        *,
        specs: Path,
        bootstrap: str,
        metrics_port: int,
        group_id: str,
        topic_prefix: str = "driftwarden",
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        instance_id: str | None = None,
    ) -> None:
        if "--instance-id" not in extra_args:
            extra_args = [
                *extra_args,
                "--instance-id",
                instance_id or f"proc-{uuid.uuid4().hex[:8]}",
            ]
        self.args = [
            sys.executable,
            "-m",
            "detectors.service",
            "--specs",
            str(specs),
            "--bootstrap",
            bootstrap,
            "--metrics-port",
            str(metrics_port),
            "--group-id",
            group_id,
            "--topic-prefix",
            topic_prefix,
            *extra_args,
        ]
        self.metrics_port = metrics_port
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self) -> ServiceProcess:
        out = subprocess.DEVNULL
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _cleanup
            out = self._log
        self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"detectors exited with {self.proc.returncode}; see {self.log_path}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"detectors not healthy after {timeout}s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no drain, no checkpoint."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._cleanup()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (drain, checkpoint, exit); SIGKILL after `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._cleanup()
        return self.proc.returncode

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def iter_chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
