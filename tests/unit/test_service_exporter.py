"""The Prometheus collector: state read at scrape time into the catalogue's names and
labels, a fresh registry per test, the per-feature series cap reported."""

from __future__ import annotations

import logging

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from detectors.service.exporter import (
    OTHER_FEATURES,
    DetectorsCollector,
    ExportSnapshot,
    ModelExport,
    VersionExport,
)
from detectors.service.results import FeatureResult, WindowResult
from driftwarden import metrics_catalogue as mc


def _drift(n_features: int = 3, drifted: tuple[int, ...] = (1,), seq: int = 2) -> WindowResult:
    features = [
        FeatureResult(
            f"f{i}", "numerical", "wasserstein", 0.5 if i in drifted else 0.01, 0.1, i in drifted
        )
        for i in range(n_features)
    ]
    return WindowResult(
        model="m",
        version="v1",
        kind="drift",
        seq=seq,
        rows=1000,
        partition=0,
        end_ts=10.0,
        features=features,
        drift_share=len(drifted) / n_features,
        dataset_drift=False,
        prediction=FeatureResult("prediction", "numerical", "wasserstein", 0.2, 0.1, True),
        quality={"f0": {"missing": 0.25, "out_of_range": 0.0, "type_error": None}},
        prediction_spread=0.31,
        multivariate_pvalue=0.04,
    )


def _perf() -> WindowResult:
    return WindowResult(
        model="m", version="v1", kind="performance", seq=1, rows=500, partition=0,
        performance={"accuracy": 0.9, "roc_auc": None},
    )  # fmt: skip


def _registry(
    snapshot: ExportSnapshot, cap: int = 200
) -> tuple[CollectorRegistry, DetectorsCollector]:
    registry = CollectorRegistry()
    collector = DetectorsCollector(lambda: snapshot, max_feature_series=cap)
    registry.register(collector)
    return registry, collector


def _snapshot(drift: WindowResult | None) -> ExportSnapshot:
    m = ModelExport(
        "m",
        processed=1234,
        invalid={"malformed_json": 2},
        labels_joined=500,
        versions={"v1": VersionExport(windows_total=2, drift=drift, performance=_perf())},
    )
    return ExportSnapshot(
        models={"m": m}, unknown_invalid={"unknown_model": 3}, lag={("t.predictions", 0): 7}
    )


def test_every_metric_with_catalogue_labels() -> None:
    registry, _ = _registry(_snapshot(_drift()))
    v = registry.get_sample_value
    base = {"model": "m", "version": "v1"}
    assert v(mc.FEATURE_DRIFT_SCORE.name, {**base, "feature": "f1", "test": "wasserstein"}) == 0.5
    assert v(mc.FEATURE_DRIFT_DETECTED.name, {**base, "feature": "f1"}) == 1.0
    assert v(mc.FEATURE_DRIFT_DETECTED.name, {**base, "feature": "f0"}) == 0.0
    assert v(mc.DATASET_DRIFT_SHARE.name, base) == pytest.approx(1 / 3)
    assert v(mc.DATASET_DRIFT_DETECTED.name, base) == 0.0
    assert v(mc.PREDICTION_DRIFT_SCORE.name, {**base, "test": "wasserstein"}) == 0.2
    assert v(mc.PREDICTION_SPREAD.name, base) == 0.31
    assert v(mc.MULTIVARIATE_DRIFT_PVALUE.name, base) == 0.04
    assert v(mc.MODEL_PERFORMANCE.name, {**base, "metric": "accuracy"}) == 0.9
    assert v(mc.MODEL_PERFORMANCE.name, {**base, "metric": "roc_auc"}) is None  # undefined: absent
    assert v(mc.DATA_QUALITY_SHARE.name, {**base, "feature": "f0", "check": "missing"}) == 0.25
    assert v(mc.DATA_QUALITY_SHARE.name, {**base, "feature": "f0", "check": "type_error"}) is None
    assert v(mc.WINDOW_ROWS.name, base) == 1000
    assert v(mc.WINDOWS_TOTAL.name, base) == 2
    assert v(mc.EVENTS_PROCESSED_TOTAL.name, {"model": "m"}) == 1234
    assert v(mc.EVENTS_INVALID_TOTAL.name, {"model": "m", "reason": "malformed_json"}) == 2
    assert v(mc.EVENTS_INVALID_TOTAL.name, {"model": "unknown", "reason": "unknown_model"}) == 3
    assert v(mc.LABELS_JOINED_TOTAL.name, {"model": "m"}) == 500
    assert v(mc.CONSUMER_LAG.name, {"topic": "t.predictions", "partition": "0"}) == 7
    for family in registry.collect():
        definition = mc.CATALOGUE.get(family.name) or mc.CATALOGUE[family.name + "_total"]
        assert family.type == definition.type
        for sample in family.samples:
            assert set(sample.labels) == set(definition.labels)


def test_state_is_read_at_scrape_time() -> None:
    snap = _snapshot(None)
    registry, _ = _registry(snap)
    assert registry.get_sample_value(mc.WINDOW_ROWS.name, {"model": "m", "version": "v1"}) is None
    snap.models["m"].versions["v1"].drift = _drift(seq=3)
    assert registry.get_sample_value(mc.WINDOW_ROWS.name, {"model": "m", "version": "v1"}) == 1000


def test_feature_cap_is_reported_not_silent(caplog: pytest.LogCaptureFixture) -> None:
    registry, collector = _registry(_snapshot(_drift(n_features=5, drifted=(4,))), cap=3)
    base = {"model": "m", "version": "v1"}
    with caplog.at_level(logging.WARNING):
        assert (
            registry.get_sample_value(mc.FEATURE_DRIFT_DETECTED.name, {**base, "feature": "f2"})
            == 0.0
        )
    assert (
        registry.get_sample_value(mc.FEATURE_DRIFT_DETECTED.name, {**base, "feature": "f3"}) is None
    )
    assert (
        registry.get_sample_value(
            mc.FEATURE_DRIFT_DETECTED.name, {**base, "feature": OTHER_FEATURES}
        )
        == 1.0
    )
    assert registry.get_sample_value(mc.DATASET_DRIFT_SHARE.name, base) == pytest.approx(1 / 5)
    assert collector.capped == {"m": 2}
    assert any("series cap" in r.message for r in caplog.records)


def test_merge_of_two_shards_of_one_model() -> None:
    a = ModelExport("m", 10, {"x": 1}, 2, {"v1": VersionExport(1, _drift(seq=1), None)})
    newer = _drift(seq=1)
    newer = WindowResult(
        **{**{f: getattr(newer, f) for f in newer.__struct_fields__}, "end_ts": 20.0, "rows": 7}
    )
    b = ModelExport("m", 5, {"x": 2, "y": 1}, 3, {"v1": VersionExport(1, newer, None)})
    a.merge(b)
    assert (a.processed, a.labels_joined, a.invalid) == (15, 5, {"x": 3, "y": 1})
    assert a.versions["v1"].windows_total == 2
    assert a.versions["v1"].drift.rows == 7


def _with_sequential(r: WindowResult, scores: list[float], dataset: float) -> WindowResult:
    features = [
        msgspec.structs.replace(f, sequential_score=s, sequential_drift=s >= 1.0)
        for f, s in zip(r.features, scores, strict=True)
    ]
    return msgspec.structs.replace(
        r, features=features, sequential_score=dataset, sequential_drift=dataset >= 1.0
    )


def test_sequential_statistics_exported_only_when_present() -> None:
    base = {"model": "m", "version": "v1"}
    plain, _ = _registry(_snapshot(_drift()))
    assert plain.get_sample_value(mc.DATASET_DRIFT_SEQUENTIAL.name, base) is None
    assert (
        plain.get_sample_value(mc.FEATURE_DRIFT_SEQUENTIAL.name, {**base, "feature": "f0"}) is None
    )
    r = _with_sequential(_drift(n_features=5, drifted=()), [0.1, 1.4, 0.0, 0.3, 2.5], 0.6)
    registry, _ = _registry(_snapshot(r), cap=3)
    v = registry.get_sample_value
    assert v(mc.FEATURE_DRIFT_SEQUENTIAL.name, {**base, "feature": "f1"}) == 1.4
    assert v(mc.FEATURE_DRIFT_SEQUENTIAL.name, {**base, "feature": "f3"}) is None
    # past the cap: the largest statistic of the rest, as for the verdict
    assert v(mc.FEATURE_DRIFT_SEQUENTIAL.name, {**base, "feature": OTHER_FEATURES}) == 2.5
    assert v(mc.DATASET_DRIFT_SEQUENTIAL.name, base) == 0.6
    # the window verdict is not folded in: no window test flagged anything
    assert v(mc.FEATURE_DRIFT_DETECTED.name, {**base, "feature": "f1"}) == 0.0
    for family in registry.collect():
        definition = mc.CATALOGUE.get(family.name) or mc.CATALOGUE[family.name + "_total"]
        for sample in family.samples:
            assert set(sample.labels) == set(definition.labels)
