"""The model server (`python -m retrain_trigger.serve`) over real HTTP: KServe v1 and Open
Inference v2 answers equal the in-process predictor's, the collector's parser captures
them as the spec says, bad bodies get a 4xx with a reason, and a bounded fuzz finds no 5xx."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.payloads import make_parser, parse_pair
from retrain_trigger.train.artifact import Artifact, load_artifact
from tests.kits.trainer import ServerProcess, credit_frame, train_artifact, write_spec

pytestmark = pytest.mark.integration

FEATURES = ["age", "income", "tenure_months", "utilisation", "n_accounts", "country", "channel"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("serve")
    credit_frame(2_000, seed=21, drifted=True).to_parquet(d / "data.parquet")
    run = train_artifact(
        "--data",
        d / "data.parquet",
        "--spec",
        write_spec(d / "credit.yaml"),
        "--out",
        d / "art",
        "--epochs",
        "8",
        "--model-version",
        "v7",
    )
    assert run.returncode == 0, run.stderr
    return d / "art"


@pytest.fixture(scope="module")
def server(artifact: Path) -> Iterator[ServerProcess]:
    with ServerProcess(artifact, "--max-body-bytes", "1000000") as s:
        yield s


@pytest.fixture(scope="module")
def local(artifact: Path) -> Artifact:
    return load_artifact(artifact)


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def rows(n: int, seed: int = 3) -> list[dict[str, Any]]:
    return credit_frame(n, seed=seed).drop(columns="target").to_dict("records")


def test_kserve_v1_predictions_match_the_model_and_what_the_collector_captures(
    server: ServerProcess, local: Artifact, http: requests.Session
) -> None:
    request = {"instances": rows(50)}
    r = http.post(f"{server.url}/v1/models/credit:predict", json=request, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    preds = r.json()["predictions"]
    expected = local.predictor.predict(
        {f: [row[f] for row in request["instances"]] for f in FEATURES}
    )[:, 1]
    assert np.allclose(preds, expected, atol=1e-6)
    assert all(0.0 < p < 1.0 for p in preds)
    captured = parse_pair(make_parser("kserve-v1", spec=local.spec), request, r.json())
    assert [p for _, p in captured] == preds
    assert captured[0][0]["country"] == request["instances"][0]["country"]
    # positional rows, in the spec's feature order, give the same answers
    positional = {"instances": [[row[f] for f in FEATURES] for row in request["instances"]]}
    r2 = http.post(f"{server.url}/v1/models/credit:predict", json=positional, timeout=10)
    assert r2.json()["predictions"] == preds


def test_open_inference_v2_named_and_positional_tensors(
    server: ServerProcess, local: Artifact, http: requests.Session
) -> None:
    batch = rows(8, seed=4)
    named = {
        "id": "req-1",
        "inputs": [
            {
                "name": f,
                "shape": [8, 1],
                "datatype": "BYTES" if f in ("country", "channel") else "FP64",
                "data": [[row[f]] for row in batch],
            }
            for f in FEATURES
        ],
    }
    r = http.post(f"{server.url}/v2/models/credit/infer", json=named, timeout=10)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model_name"] == "credit" and doc["model_version"] == "v7" and doc["id"] == "req-1"
    (out,) = doc["outputs"]
    assert out["name"] == "prediction" and out["shape"] == [8] and out["datatype"] == "FP64"
    v1 = http.post(f"{server.url}/v1/models/credit:predict", json={"instances": batch}, timeout=10)
    assert np.allclose(out["data"], v1.json()["predictions"], atol=1e-9)
    positional = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [8, 7],
                "datatype": "BYTES",
                "data": [row[f] for row in batch for f in FEATURES],
            }
        ]
    }
    r2 = http.post(f"{server.url}/v2/models/credit/versions/v7/infer", json=positional, timeout=10)
    assert r2.json()["outputs"][0]["data"] == out["data"]
    captured = parse_pair(make_parser("open-inference-v2", spec=local.spec), named, doc)
    assert [p for _, p in captured] == out["data"]


def test_readiness_metadata_and_health(server: ServerProcess, http: requests.Session) -> None:
    assert http.get(f"{server.url}/v1/models/credit", timeout=5).json() == {
        "name": "credit",
        "ready": True,
    }
    assert http.get(f"{server.url}/v2/models/credit/ready", timeout=5).status_code == 200
    meta = http.get(f"{server.url}/v2/models/credit", timeout=5).json()
    assert [i["name"] for i in meta["inputs"]] == FEATURES and meta["versions"] == ["v7"]
    assert http.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert http.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "says"),
    [
        ("POST", "/v1/models/credit:predict", b'{"instances": [', {}, 400, "malformed JSON"),
        ("POST", "/v1/models/credit:predict", b'{"rows": []}', {}, 400, "no 'instances'"),
        (
            "POST",
            "/v1/models/credit:predict",
            b'{"instances": [{"age": "old"}]}',
            {},
            400,
            "feature 'age': expected a number, got 'old'",
        ),
        (
            "POST",
            "/v1/models/credit:predict",
            b'{"instances": [[1, 2]]}',
            {},
            400,
            "has 2 values; the model has 7 features",
        ),
        (
            "POST",
            "/v1/models/credit:predict",
            b'{"instances": [{"country": {"a": 1}}]}',
            {},
            400,
            "feature 'country'",
        ),
        ("POST", "/v2/models/credit/infer", b'{"inputs": []}', {}, 400, "non-empty list"),
        (
            "POST",
            "/v2/models/credit/infer",
            b'{"inputs": [{"name": "age", "shape": [2], "data": [1]}]}',
            {},
            400,
            "needs 2 values, got 1",
        ),
        ("POST", "/v1/models/other:predict", b"{}", {}, 404, "serves 'credit'"),
        ("GET", "/v1/models/credit:predict", b"", {}, 405, "GET is not allowed"),
        (
            "POST",
            "/v1/models/credit:predict",
            gzip.compress(b'{"instances": []}'),
            {"Content-Encoding": "gzip"},
            415,
            "Content-Encoding",
        ),
        (
            "POST",
            "/v1/models/credit:predict",
            b"[" + b"1," * 600_000 + b"1]",
            {},
            413,
            "body over 1000000 bytes",
        ),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(
    server: ServerProcess,
    http: requests.Session,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    says: str,
) -> None:
    r = http.request(method, server.url + path, data=body, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]


def test_more_rows_than_the_limit_is_413(server: ServerProcess, http: requests.Session) -> None:
    body = json.dumps({"instances": {"age": [1] * 100_001}})
    r = http.post(f"{server.url}/v1/models/credit:predict", data=body, timeout=10)
    assert r.status_code == 413 and "100001 rows" in r.json()["error"]


_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_json = st.recursive(
    _scalar,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from([*FEATURES, "instances", "inputs", "name", "shape", "data", "id", "x"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)
_row = st.fixed_dictionaries({}, optional={f: _json for f in FEATURES})
_bodies = st.one_of(
    _json,
    st.builds(lambda r: {"instances": r}, st.lists(st.one_of(_row, _json), max_size=4)),
    st.builds(
        lambda ts: {"inputs": ts},
        st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from([*FEATURES, "input-0"]),
                    "shape": st.lists(st.integers(-1, 4), max_size=3),
                    "data": _json,
                },
                optional={"datatype": st.sampled_from(["FP64", "BYTES", "INT64"])},
            ),
            max_size=3,
        ),
    ),
)


@given(body=_bodies, path=st.sampled_from(["/v1/models/credit:predict", "/v2/models/credit/infer"]))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_fuzz_no_input_yields_a_5xx(
    server: ServerProcess, http: requests.Session, body: Any, path: str
) -> None:
    raw = msgspec.json.encode(body)
    r = http.post(server.url + path, data=raw, timeout=10)
    assert r.status_code < 500, (raw, r.text)
    doc = r.json()
    assert r.status_code == 200 or isinstance(doc.get("error"), str)


def test_sigterm_stops_the_server_cleanly(artifact: Path) -> None:
    with ServerProcess(artifact) as s:
        assert s.proc is not None
        s.proc.terminate()
        assert s.proc.wait(timeout=20) == 0


def test_a_folder_without_a_model_is_one_line_exit_2(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "retrain_trigger.serve", "--artifact", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: --artifact: {tmp_path} has no model.pt (not a trainer artifact, or a model "
        "that failed the gate)"
    )
