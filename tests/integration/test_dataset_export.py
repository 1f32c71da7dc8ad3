"""`driftwarden dataset export` against a real Kafka broker: predictions and feedback are
produced with confluent-kafka as the collector does, exported, and the rows checked: labels
on time joined, late and missing labels left out, the first of two labels wins, a repeated
prediction id is replaced, old predictions and other models ignored, bad records counted."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Producer

from driftwarden.kafka import Topics, producer_config
from driftwarden.schema import FeedbackEvent, PredictionEvent, encode_event
from driftwarden.services import KafkaBroker
from driftwarden.spec import parse_spec
from driftwarden.tables import read_table
from retrain_trigger.dataset import ExportSettings, export_dataset
from retrain_trigger.train.trainer import resolve_label_column
from tests.kits.trainer import credit_frame, spec_document, write_spec

pytestmark = pytest.mark.integration

TTL = 60.0
FEATURES = ["age", "income", "tenure_months", "utilisation", "n_accounts", "country", "channel"]


def produce(kafka: KafkaBroker, prefix: str, now: float) -> dict[str, Any]:
    topics = Topics.with_prefix(prefix)
    kafka.create_topic(topics.predictions, partitions=3)
    kafka.create_topic(topics.feedback, partitions=3)
    producer = Producer(producer_config(kafka.bootstrap))
    rows = credit_frame(20, seed=31).drop(columns="target").to_dict("records")

    def pred(i: int, ts: float, version: str = "v1", model: str = "credit", **kw: Any) -> None:
        ev = PredictionEvent(
            id=f"p{i}",
            model=model,
            version=version,
            ts=ts,
            features=kw.get("features", rows[i % 20]),
            prediction=0.1 * (i % 10),
        )
        producer.produce(topics.predictions, encode_event(ev), key=model.encode())

    def label(i: int, ts: float, value: Any, model: str = "credit") -> None:
        ev = FeedbackEvent(id=f"p{i}", model=model, ts=ts, label=value)
        producer.produce(topics.feedback, encode_event(ev), key=model.encode())

    base = now - 100
    for i in range(17):
        pred(i, base + i, version="v1" if i < 10 else "v2")
    pred(16, base + 16.5, version="v3", features={**rows[16], "country": "XX"})  # replaces p16
    pred(99, now - 7_200)  # outside --since 1h
    pred(0, base, model="fraud")  # another model, same id
    producer.produce(topics.predictions, b"{not json", key=b"credit")
    producer.flush(30)
    for i in range(10):
        label(i, base + i + 5, i % 2)  # on time
    label(10, base + 10 + TTL + 10, 1)  # after the TTL
    label(15, base + 20, 1)
    label(15, base + 21, 0)  # a second label: the first wins
    label(16, base + 22, 1)
    label(99, now - 7_100, 1)  # labels the old prediction
    label(0, base + 3, 1, model="fraud")
    label(12345, base, 1)  # no such prediction
    producer.flush(30)
    return {"rows": rows}


@pytest.fixture(scope="module")
def topics(kafka: KafkaBroker) -> dict[str, Any]:
    prefix = f"dsx{uuid.uuid4().hex[:8]}"
    now = time.time()
    data = produce(kafka, prefix, now)
    return {"prefix": prefix, "now": now, **data}


def test_cli_export_joins_like_the_detectors(
    kafka: KafkaBroker, topics: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "data.parquet"
    spec = write_spec(tmp_path / "credit.yaml")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftwarden",
            "dataset",
            "export",
            "--model",
            "credit",
            "--since",
            "1h",
            "-o",
            str(out),
            "--bootstrap",
            kafka.bootstrap,
            "--topic-prefix",
            topics["prefix"],
            "--spec",
            str(spec),
            "--ttl",
            str(TTL),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "12 rows (12 labelled) from 18 predictions" in run.stderr, run.stderr
    assert "1 labels after the TTL" in run.stderr and "1 invalid records" in run.stderr
    frame = read_table(out)
    assert list(frame.columns) == [
        "id",
        "ts",
        "version",
        *FEATURES,
        "prediction",
        "label",
        "label_ts",
    ]
    assert frame["id"].tolist() == [f"p{i}" for i in range(10)] + ["p15", "p16"]
    labels = dict(zip(frame["id"], frame["label"], strict=True))
    assert labels["p15"] == 1 and labels["p3"] == 1 and labels["p4"] == 0
    p16 = frame[frame["id"] == "p16"].iloc[0]
    assert p16["version"] == "v3" and p16["country"] == "XX"  # the later prediction won
    assert frame["age"].dtype == "float64" and str(frame["country"].dtype) in ("string", "object")
    assert frame["age"].tolist()[:3] == [r["age"] for r in topics["rows"][:3]]
    assert (frame["label_ts"] - frame["ts"] <= TTL).all()
    # the trainer reads this file as it is: features by name, labels from `label`
    assert resolve_label_column(frame, parse_spec(spec_document()), None) == "label"


def test_keep_unlabelled_and_csv(
    kafka: KafkaBroker, topics: dict[str, Any], tmp_path: Path
) -> None:
    settings = ExportSettings(
        model="credit",
        since_s=3_600,
        bootstrap=kafka.bootstrap,
        topic_prefix=topics["prefix"],
        ttl_s=TTL,
        keep_unlabelled=True,
        clock=lambda: topics["now"],
    )
    report = export_dataset(settings, tmp_path / "all.csv")
    frame = pd.read_csv(tmp_path / "all.csv")
    # p10 (late label), p11-p14 (no label) are kept without a label; old p99 is not
    assert report.rows == 17 and report.labelled == 12
    assert sorted(frame.loc[frame["label"].isna(), "id"]) == ["p10", "p11", "p12", "p13", "p14"]
    assert "p99" not in set(frame["id"])
    s = report.stats
    assert (s.expired, s.unmatched, s.duplicates, s.unlabelled) == (1, 3, 1, 5)


def test_a_missing_topic_is_one_line(kafka: KafkaBroker, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftwarden",
            "dataset",
            "export",
            "--model",
            "credit",
            "--since",
            "6h",
            "-o",
            str(tmp_path / "x.parquet"),
            "--bootstrap",
            kafka.bootstrap,
            "--topic-prefix",
            f"none{uuid.uuid4().hex[:6]}",
            "--timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "topic does not exist" in lines[0], run.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_the_trainer_exports_a_kafka_data_source_first(
    kafka: KafkaBroker, topics: dict[str, Any], tmp_path: Path
) -> None:
    """`--data kafka:<seconds>s` (what a policy with `data.source: kafka` puts on the Job)
    exports that window from Kafka with the dataset join, then trains on the file."""
    spec = write_spec(tmp_path / "spec.yaml")
    out = tmp_path / "artifacts" / "v9"
    env = {
        **__import__("os").environ,
        "DRIFTWARDEN_BOOTSTRAP": kafka.bootstrap,
        "DRIFTWARDEN_TOPIC_PREFIX": topics["prefix"],
        "DRIFTWARDEN_MODEL": "credit",
    }
    args = [sys.executable, "-m", "retrain_trigger.train", "--data", "kafka:3600s"]
    args += ["--spec", str(spec), "--out", str(out), "--epochs", "2", "--holdout-fraction", "0.3"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    exported = out.parent / "v9.data.parquet"
    assert f"exported rows=13 labelled=13 path={exported}" in done.stdout, done.stderr
    frame = read_table(exported)
    # the spec's label TTL (longer than the CLI test's 60 s) also joins p10's late label
    assert sorted(frame["id"]) == sorted(f"p{i}" for i in [*range(11), 15, 16])
    # it then trained on that file: a finished run (passed or gated), never a user error
    assert done.returncode in (0, 3), done.stderr
    assert (out / "metrics.json").exists()

    missing = {k: v for k, v in env.items() if k != "DRIFTWARDEN_BOOTSTRAP"}
    done = subprocess.run(args, env=missing, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --data kafka:3600s: set DRIFTWARDEN_BOOTSTRAP to the Kafka to export the data from"
    ]
