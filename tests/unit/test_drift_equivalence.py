"""`driftwarden drift --spec` and the streaming service's evaluator give the same per-feature
results (test, score, threshold, verdict, effect size) for the same spec and rows: both map
the spec with `detectors.spec_options.drift_config`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detectors.service.contexts import ContextRegistry
from detectors.service.results import WindowResult
from detectors.service.state import ConsumedRecord, ShardState
from driftwarden.cli import main
from tests.kits.detectors import SyntheticModel

ROWS = 1500


def _spec_extra() -> dict:
    # Options that change per-feature output: effect sizes, per-feature test and threshold,
    # a global threshold, unseen-category and missing-share checks, min_rows.
    return {
        "drift": {
            "effect_size": True,
            "threshold": 0.08,
            "unseen_category_drift": True,
            "missing_share_drift": True,
            "min_rows": 10,
        },
    }


@pytest.mark.parametrize(
    "extra_drift", [{}, {"numerical_test": "ks", "categorical_test": "chisquare"}]
)
def test_cli_and_service_agree_per_feature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra_drift: dict
) -> None:
    model = SyntheticModel("eq", n_numerical=3, n_categorical=2, seed=7)
    extra = _spec_extra()
    extra["drift"].update(extra_drift)
    spec_path = model.write(tmp_path, reference_rows=3000, window_rows=ROWS, extra=extra)
    spec_text = spec_path.read_text()
    spec_text = spec_text.replace(
        "- name: num_1\n  type: numerical\n",
        "- name: num_1\n  type: numerical\n  test: wasserstein\n  threshold: 0.2\n",
    )
    assert "test: wasserstein" in spec_text
    spec_path.write_text(spec_text)

    stream = model.stream(ROWS, drift_from=ROWS // 3, drifted={"num_0", "cat_1"}, seed=11)

    # the streaming service: records through one shard until the window closes
    registry = ContextRegistry(tmp_path)
    registry.load()
    shard = ShardState(0, registry)
    records = [ConsumedRecord(i, k, v, 1000 + i) for i, (k, v) in enumerate(stream.records())]
    results, dead = shard.process_predictions(records)
    assert dead == []
    windows = [r for r in results if isinstance(r, WindowResult) and r.kind == "drift"]
    assert len(windows) == 1 and windows[0].rows == ROWS
    service = {f.name: f for f in windows[0].features}

    # the batch command on the same rows
    current = tmp_path / "current.parquet"
    stream.frame.to_parquet(current, index=False)
    with pytest.raises(SystemExit) as exc:
        main(["drift", "--spec", str(spec_path), "--current", str(current), "--format", "json"])
    out, err = capsys.readouterr()
    assert exc.value.code in (0, None), err
    batch = {c["column"]: c for c in json.loads(out)["columns"]}

    assert sorted(service) == sorted(model.features)
    assert any(f.drift_detected for f in service.values())
    assert any(not f.drift_detected for f in service.values())
    assert service["num_1"].test == "wasserstein" and service["num_1"].threshold == 0.2
    for name, f in service.items():
        b = batch[name]
        assert f.skipped is None and b["status"] == "ok", name
        assert (f.type, f.test) == (b["type"], b["test"]), name
        assert f.score == pytest.approx(b["score"], rel=1e-9, abs=1e-12), name
        assert f.threshold == b["threshold"], name
        assert f.drift_detected == b["drift_detected"], name
        if b["effect_size"] is None:
            assert f.effect_size is None, name
        else:
            assert f.effect_size == pytest.approx(b["effect_size"], rel=1e-9, abs=1e-12), name
    # effect sizes come with p-value tests only (KS D, Cramér's V), not with distances
    with_effect = {n for n, f in service.items() if f.effect_size is not None}
    assert with_effect == (set(model.features) - {"num_1"} if extra_drift else set())


def test_cli_and_service_agree_with_calibrated_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`drift.thresholds: calibrated`: both calibrate the same features on the same reference
    (seeded per column, budget shared by the spec's features) and give the same thresholds
    and verdicts; the thresholds are not Evidently's."""
    model = SyntheticModel("cal", n_numerical=3, n_categorical=2, seed=5)
    extra = {"drift": {"thresholds": "calibrated", "calibration": {"replicates": 60}}}
    spec_path = model.write(tmp_path, reference_rows=4000, window_rows=ROWS, extra=extra)
    stream = model.stream(ROWS, drift_from=ROWS // 3, drifted={"num_0", "cat_1"}, seed=3)

    registry = ContextRegistry(tmp_path)
    registry.load()
    shard = ShardState(0, registry)
    records = [ConsumedRecord(i, k, v, 1000 + i) for i, (k, v) in enumerate(stream.records())]
    results, dead = shard.process_predictions(records)
    assert dead == []
    (window,) = [r for r in results if r.kind == "drift"]
    service = {f.name: f for f in window.features}

    current = tmp_path / "current.parquet"
    stream.frame.to_parquet(current, index=False)
    with pytest.raises(SystemExit) as exc:
        main(["drift", "--spec", str(spec_path), "--current", str(current), "--format", "json"])
    out, err = capsys.readouterr()
    assert exc.value.code in (0, None), err
    batch = {c["column"]: c for c in json.loads(out)["columns"]}

    assert service["num_0"].drift_detected and service["cat_1"].drift_detected
    assert any(not f.drift_detected for f in service.values())
    for name, f in service.items():
        b = batch[name]
        assert (f.type, f.test) == (b["type"], b["test"]), name
        assert f.score == pytest.approx(b["score"], rel=1e-9, abs=1e-12), name
        assert f.threshold == pytest.approx(b["threshold"], rel=1e-12), name
        assert f.threshold not in (0.05, 0.1), name  # calibrated, not a test's default
        assert f.drift_detected == b["drift_detected"], name
