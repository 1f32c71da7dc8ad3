"""The one mapping from a model monitoring spec to the statistics core's options.

`driftwarden drift --spec` and the streaming service both call `drift_config`, so the same
spec gives the same tests, thresholds, verdicts and effect sizes in both. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from detectors.drift import DriftConfig, DriftConfigError, default_test_name
from driftwarden.errors import SpecError
from driftwarden.spec import ModelSpec

if TYPE_CHECKING:
    from detectors.calibration import CalibrationSettings
    from detectors.profile import ReferenceProfile

__all__ = ["batch_column_types", "calibration_settings", "drift_config"]

#: Windows a model closes per day when the spec gives neither `calibration.windows_per_day`
#: nor `window.duration_s` (one every 5 minutes).
DEFAULT_WINDOWS_PER_DAY = 288.0


def calibration_settings(spec: ModelSpec) -> CalibrationSettings:
    """The calibration a spec asks for: its window size, its false-alarm budget per model-day
    shared by its features (and by the sequential detector, when enabled)."""
    from detectors.calibration import CalibrationSettings

    d, w = spec.drift, spec.window
    per_day = d.calibration.windows_per_day
    if per_day is None:
        per_day = 86_400.0 / w.duration_s if w.duration_s else DEFAULT_WINDOWS_PER_DAY
    return CalibrationSettings(
        window_rows=w.rows or 10_000,
        false_alarm_rate=d.calibration.false_alarm_rate,
        windows_per_day=per_day,
        n_features=len(spec.features),
        share=0.5 if d.sequential.enabled else 1.0,
        replicates=d.calibration.replicates,
        seed=d.calibration.seed,
    )


def drift_config(
    spec: ModelSpec,
    profile: ReferenceProfile | None = None,
    *,
    column_types: Mapping[str, str] | None = None,
    workers: int = 1,
) -> DriftConfig:
    """The `DriftConfig` of a spec's `drift:` block and per-feature `test`/`threshold`.

    "auto" means Evidently's choice (None). An option the core rejects is a `SpecError`
    naming the model. With `thresholds: calibrated` and a reference `profile`, the columns
    of `column_types` (default: the features) are calibrated once per profile (cached in
    it); without a profile the thresholds stay the tests' defaults.
    """
    config = _base_config(spec)
    if spec.drift.thresholds != "calibrated" or profile is None:
        return config
    from detectors.calibration import CalibrationError, cached_calibration

    types = dict(column_types or {f.name: f.type for f in spec.features})
    columns: dict[str, tuple[str, str]] = {}
    for name, ctype in types.items():
        if name not in profile or name in config.per_column_threshold:
            continue
        test = config.test_for(name, ctype) or default_test_name(
            ctype, profile[name], profile[name]
        )
        columns[name] = (ctype, test)
    try:
        cal = cached_calibration(profile, columns, calibration_settings(spec), workers=workers)
    except CalibrationError as e:
        raise SpecError(f"model {spec.model!r}: drift.calibration: {e}") from e
    return replace(config, calibration=cal)


class _Column(NamedTuple):
    column: str
    test: str | None
    threshold: float | None


def _base_config(spec: ModelSpec) -> DriftConfig:
    d = spec.drift
    columns = [_Column(f.name, f.test, f.threshold) for f in spec.features]
    if spec.prediction is not None:
        p = spec.prediction
        columns.append(_Column(p.column, p.test, p.threshold))
    try:
        return DriftConfig(
            numerical_test=None if d.numerical_test == "auto" else d.numerical_test,
            categorical_test=None if d.categorical_test == "auto" else d.categorical_test,
            threshold=d.threshold,
            per_column_test={c.column: c.test for c in columns if c.test and c.test != "auto"},
            per_column_threshold={
                c.column: c.threshold for c in columns if c.threshold is not None
            },
            drift_share=d.drift_share,
            fdr_alpha=d.fdr_alpha,
            min_rows=d.min_rows,
            effect_size=d.effect_size,
            missing_share_drift=d.missing_share_drift,
            unseen_category_drift=d.unseen_category_drift,
            chisquare_min_expected=d.chisquare_min_expected,
        )
    except DriftConfigError as e:
        raise SpecError(f"model {spec.model!r}: drift: {e}") from e


def batch_column_types(spec: ModelSpec) -> dict[str, str]:
    """Column -> "numerical"/"categorical" for a batch comparison of two files: the features,
    then the prediction (unless it is a list of probabilities) and the target. The streaming
    service tests the features as the dataset and the prediction on its own."""
    types = {f.name: f.type for f in spec.features}
    if spec.prediction is not None and spec.prediction.output != "list":
        types[spec.prediction.column] = (
            "categorical" if spec.prediction.type == "class" else "numerical"
        )
    if spec.target is not None:
        types[spec.target.column] = "categorical" if spec.target.type == "class" else "numerical"
    return types
