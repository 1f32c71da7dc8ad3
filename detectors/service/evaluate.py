"""The thin interface between the streaming service and the statistics core.

`StatsContext` holds what one model's spec and reference give (the reference profile, the
drift configuration, the reference categories that seed the codecs) and turns a closed
window's columns into the column summaries of `detectors.profile`, then calls
`detectors.drift.dataset_drift`, `detectors.quality` and, when enabled,
`detectors.mmd.MMDTest`; a closed window of labelled predictions goes to
`detectors.performance`. The result is one `WindowResult`.

Pure: a spec, a reference profile and window columns in, a `WindowResult` out. Reading
specs and reference files, the profile cache and spec hot-reload live in
`detectors/service/contexts.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from detectors.drift import column_drift, dataset_drift
from detectors.profile import (
    ColumnProfile,
    NumericSample,
    ReferenceProfile,
    label_profile,
    numeric_profile,
)
from detectors.quality import UNSEEN, categorical_quality, numerical_quality
from detectors.service.columns import MISSING, ModelCodec
from detectors.service.labels import LabelledData
from detectors.service.results import FeatureResult, WindowResult
from detectors.service.windows import WindowData
from detectors.spec_options import batch_column_types, drift_config
from detectors.spread import class_spread, numeric_spread
from driftwarden.spec import ModelSpec

__all__ = ["StatsContext", "performance_metrics"]

_log = logging.getLogger(__name__)


def _none_if_nan(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


class StatsContext:
    """Everything needed to evaluate one model's windows (see the module docstring)."""

    def __init__(
        self,
        spec: ModelSpec,
        profile: ReferenceProfile | None,
        *,
        reference_matrix: np.ndarray | None = None,
        max_categories: int = 10_000,
        max_versions: int = 64,
    ) -> None:
        self.spec = spec
        self.profile = profile
        # Calibrated once per profile, for the same columns as `driftwarden drift` (the
        # prediction included), so both give the same thresholds on the same rows.
        self.config = drift_config(spec, profile, column_types=batch_column_types(spec))
        self.numerical = [f.name for f in spec.features if f.type == "numerical"]
        self.categorical = [f.name for f in spec.features if f.type == "categorical"]
        self.column_types = {f.name: f.type for f in spec.features}
        self.max_categories = max_categories
        self.max_versions = max_versions
        self.reference_matrix = reference_matrix
        self.categories: dict[str, list[Any]] = {}
        self.n_reference_categories: list[int] = []
        for name in self.categorical:
            keys: list[Any] = []
            if profile is not None and name in profile:
                keys = profile[name].sample.as_counts().keys.tolist()
            self.categories[name] = keys
            self.n_reference_categories.append(len(keys))
        self.ref_min = np.full(len(self.numerical), np.nan)
        self.ref_max = np.full(len(self.numerical), np.nan)
        for j, name in enumerate(self.numerical):
            if profile is not None and name in profile:
                s = profile[name].sample
                if isinstance(s, NumericSample) and s.n:
                    self.ref_min[j], self.ref_max[j] = s.min, s.max
        self.prediction_column: str | None = None
        self.prediction_type: str | None = None
        self.classes: list[Any] = []
        pred = spec.prediction
        if pred is not None:
            self.prediction_type = "categorical" if pred.type == "class" else "numerical"
            if profile is not None and pred.column in profile and pred.output != "list":
                self.prediction_column = pred.column
                if pred.type == "class":
                    self.classes = profile[pred.column].sample.as_counts().keys.tolist()
        if spec.target is not None and profile is not None and spec.target.column in profile:
            target = profile[spec.target.column]
            if spec.target.type == "class":
                self.classes += [
                    k for k in target.sample.as_counts().keys.tolist() if k not in self.classes
                ]
        self.fingerprint = hashlib.sha256(
            json.dumps(
                [spec.model_dump(mode="json"), self.categories, self.classes],
                sort_keys=True,
                default=str,
            ).encode()
        ).hexdigest()[:16]
        self._mmd_warned = False

    # --- codecs ------------------------------------------------------------------------

    def new_codec(self) -> ModelCodec:
        return ModelCodec(
            self.spec,
            categories=self.categories,
            classes=self.classes,
            max_categories=self.max_categories,
            max_versions=self.max_versions,
        )

    # --- window summaries --------------------------------------------------------------

    def _numeric_profile(
        self, name: str, values: np.ndarray, type_errors: np.ndarray | None
    ) -> ColumnProfile:
        family = "float"
        if self.profile is not None and name in self.profile and self.profile[name].dtype == "int":
            family = "int"
        if type_errors is not None:
            values = values[~type_errors]
        finite = np.isfinite(values)
        n_rows = int(values.shape[0])
        n_missing = int(np.count_nonzero(np.isnan(values)))
        clean = values if finite.all() else values[finite]
        # no sd: a window is only compared against its reference, whose sd the tests use
        return numeric_profile(
            name,
            family,
            clean,
            n_rows,
            n_missing,
            n_rows - n_missing - clean.shape[0],
            with_std=False,
        )

    def _label_profile(
        self, name: str, codes: np.ndarray, vocab_values: list[Any]
    ) -> ColumnProfile:
        ref = self.profile[name] if self.profile is not None and name in self.profile else None
        n_rows = int(codes.shape[0])
        if ref is not None and ref.kind == "numeric":
            # a categorical feature whose reference holds numbers: compare as numbers
            numeric = np.array([_as_float(v) for v in vocab_values] + [np.nan], dtype=np.float64)
            values = numeric[np.where(codes >= 0, codes, len(vocab_values))]
            return self._numeric_profile(name, values, None)
        counts = np.bincount(codes[codes >= 0], minlength=len(vocab_values))
        present = np.flatnonzero(counts)
        keys = np.empty(present.shape[0], dtype=object)
        keys[:] = [vocab_values[i] for i in present.tolist()]
        series = pd.Series(counts[present], index=pd.Index(keys, dtype=object))
        family = ref.dtype if ref is not None else "str"
        return label_profile(name, family, series, n_rows)

    def _current_profiles(self, codec: ModelCodec, data: WindowData) -> dict[str, ColumnProfile]:
        out: dict[str, ColumnProfile] = {}
        for j, name in enumerate(self.numerical):
            te = None if data.type_errors is None else data.type_errors[j]
            out[name] = self._numeric_profile(name, data.num[j], te)
        for j, name in enumerate(self.categorical):
            out[name] = self._label_profile(name, data.cat[j], codec.vocabs[j].values)
        return out

    # --- evaluation --------------------------------------------------------------------

    def evaluate_window(self, codec: ModelCodec, data: WindowData, partition: int) -> WindowResult:
        features: list[FeatureResult] = []
        share: float | None = None
        detected: bool | None = None
        prediction: FeatureResult | None = None
        current = self._current_profiles(codec, data)
        if self.profile is not None:
            names = [n for n in self.spec.feature_names if n in self.profile]
            drift = dataset_drift(
                self.profile, current, self.config, column_types=self.column_types, columns=names
            )
            features = [
                FeatureResult(
                    name=c.column,
                    type=c.type,
                    test=c.test,
                    score=_none_if_nan(c.score),
                    threshold=c.threshold,
                    drift_detected=c.drift_detected,
                    skipped=None if c.tested else c.status,
                    effect_size=_none_if_nan(c.effect_size),
                )
                for c in drift.columns
            ]
            share, detected = drift.drift_share, drift.dataset_drift
            prediction = self._prediction_drift(codec, data)
        return WindowResult(
            model=self.spec.model,
            version=codec.versions.values[data.version],
            kind="drift",
            seq=data.seq,
            rows=data.rows,
            partition=partition,
            first_offset=int(data.offset[0]) if data.rows else -1,
            last_offset=int(data.offset[-1]) if data.rows else -1,
            start_ts=float(data.ts.min()) if data.rows else 0.0,
            end_ts=float(data.ts.max()) if data.rows else 0.0,
            features=features,
            drift_share=share,
            dataset_drift=detected,
            prediction=prediction,
            prediction_spread=self._prediction_spread(data),
            quality=self._quality(data),
            multivariate_pvalue=self._multivariate(data),
        )

    def _prediction_spread(self, data: WindowData) -> float | None:
        pred = self.spec.prediction
        if pred is None or pred.output == "list":
            return None
        if self.prediction_type == "categorical":
            return class_spread(data.label)
        return numeric_spread(data.score)

    def _prediction_drift(self, codec: ModelCodec, data: WindowData) -> FeatureResult | None:
        name = self.prediction_column
        if name is None or self.profile is None:
            return None
        if self.prediction_type == "categorical":
            cur = self._label_profile(name, data.label, codec.classes.values)
        else:
            cur = self._numeric_profile(name, data.score, None)
        ref = self.profile[name]
        if cur.n == 0:
            return FeatureResult(
                name, self.prediction_type or "", "", None, 0.0, False, "no_values"
            )
        try:
            # The spec's drift options (calibrated thresholds included), as `driftwarden
            # drift` applies them to the prediction column.
            c = column_drift(name, self.prediction_type or "numerical", ref, cur, self.config)
        except (ValueError, TypeError) as e:  # a prediction that does not match its reference
            _log.warning("model %s: prediction drift not computed: %s", self.spec.model, e)
            return None
        return FeatureResult(
            name=name,
            type=c.type,
            test=c.test,
            score=_none_if_nan(c.score),
            threshold=c.threshold,
            drift_detected=c.drift_detected,
            skipped=None if c.tested else c.status,
        )

    def _quality(self, data: WindowData) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        if self.numerical:
            te = None if data.type_errors is None else data.type_errors.T
            q = numerical_quality(data.num.T, self.ref_min, self.ref_max, type_errors=te)
            for j, name in enumerate(self.numerical):
                out[name] = {check: _none_if_nan(float(v[j])) for check, v in q.items()}
        if self.categorical:
            codes = data.cat.copy()  # (features, rows): passed transposed, column by column
            if self.profile is not None:
                n_ref = np.asarray(self.n_reference_categories, dtype=np.int32)
                codes[codes >= n_ref[:, None]] = UNSEEN
            q = categorical_quality(codes.T)
            for j, name in enumerate(self.categorical):
                out[name] = {check: _none_if_nan(float(v[j])) for check, v in q.items()}
        return out

    def _multivariate(self, data: WindowData) -> float | None:
        opts = self.spec.drift.multivariate
        if not opts.enabled or self.reference_matrix is None or not self.numerical:
            return None
        try:
            from detectors.mmd import MMDTest
        except ImportError as e:
            if not self._mmd_warned:
                _log.warning("model %s: multivariate drift is enabled but %s", self.spec.model, e)
                self._mmd_warned = True
            return None
        cur = data.num.T
        cur = cur[np.isfinite(cur).all(axis=1)]
        if cur.shape[0] < 2 or self.reference_matrix.shape[0] < 2:
            return None
        if cur.shape[0] > opts.max_rows:
            rng = np.random.default_rng(data.seq)
            cur = cur[np.sort(rng.choice(cur.shape[0], opts.max_rows, replace=False))]
        test = MMDTest(n_permutations=opts.permutations, threshold=opts.threshold, seed=data.seq)
        return float(test.test(self.reference_matrix, cur).p_value)

    def evaluate_labelled(
        self, codec: ModelCodec, data: LabelledData, partition: int
    ) -> WindowResult:
        return WindowResult(
            model=self.spec.model,
            version=codec.versions.values[data.version],
            kind="performance",
            seq=data.seq,
            rows=data.rows,
            partition=partition,
            performance=performance_metrics(self.spec, codec, data),
        )


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def performance_metrics(
    spec: ModelSpec, codec: ModelCodec, data: LabelledData
) -> dict[str, float | None]:
    """The spec's performance metrics over one window of labelled predictions.

    Probability predictions are scored as a binary problem (the spec's positive label
    against the rest; predicted positive when the probability is >= 0.5); class
    predictions compare class codes (binary when at most two classes occur, else macro
    averages); regression compares values.
    """
    from detectors.performance import compute_metrics, get_metric

    names = list(spec.performance.metrics)
    if not names or spec.target is None or data.rows == 0:
        return {}
    out: dict[str, float | None] = {}
    with np.errstate(all="ignore"):
        if spec.target.type == "regression":
            kwargs: dict[str, Any] = {"y_pred": data.score}
            y_true: np.ndarray = data.actual_value
            average = "binary"
            pos: Any = 1
        else:
            known = data.actual != MISSING
            pos_code = codec.positive_code
            score = data.score[known]
            if codec.prediction_type == "probability":
                y_true = (data.actual[known] == pos_code).astype(np.int64)
                kwargs = {"y_pred": (score >= 0.5).astype(np.int64), "y_score": score}
                average, pos = "binary", 1
            else:
                y_true = data.actual[known]
                y_pred = data.predicted[known]
                kwargs = {"y_pred": y_pred, "y_score": score if np.isfinite(score).all() else None}
                classes = np.union1d(y_true, y_pred[y_pred != MISSING])
                average, pos = ("binary" if classes.shape[0] <= 2 else "macro"), pos_code
        for name in names:
            metric = get_metric(name)
            if kwargs.get(metric.needs) is None:
                out[name] = None
                continue
            try:
                value = compute_metrics([name], y_true, average=average, pos_label=pos, **kwargs)[
                    name
                ]
            except ValueError as e:  # e.g. a class metric on a regression target
                _log.warning("model %s: %s not computed: %s", spec.model, name, e)
                value = math.nan
            out[name] = _none_if_nan(value)
    return out
