"""The thin interface between the streaming service and the statistics core.

`StatsContext` holds what one model's spec and reference give (the reference profile, the
drift configuration, the reference categories that seed the codecs) and turns a closed
window's columns into the column summaries of `detectors.profile`, then calls
`detectors.drift.dataset_drift`, `detectors.quality` and, when enabled,
`detectors.mmd.MMDTest`; a closed window of labelled predictions goes to
`detectors.performance`. The result is one `WindowResult`.

`ContextRegistry` loads the specs of a folder, builds each reference profile once (cached
by the reference file's content, in memory and optionally as `.npz` files in a cache
folder) and reloads specs whose files changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detectors.drift import DriftConfig, DriftConfigError, column_drift, dataset_drift
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
from driftwarden.errors import DriftwardenError, SpecError
from driftwarden.spec import ModelSpec, load_spec
from driftwarden.tables import read_table

__all__ = ["ContextRegistry", "ProfileCache", "StatsContext", "drift_config"]

_log = logging.getLogger(__name__)


def drift_config(spec: ModelSpec) -> DriftConfig:
    """The statistics core's configuration for a spec's drift options."""
    d = spec.drift
    try:
        return DriftConfig(
            numerical_test=None if d.numerical_test == "auto" else d.numerical_test,
            categorical_test=None if d.categorical_test == "auto" else d.categorical_test,
            threshold=d.threshold,
            per_column_test={f.name: f.test for f in spec.features if f.test and f.test != "auto"},
            per_column_threshold={
                f.name: f.threshold for f in spec.features if f.threshold is not None
            },
            drift_share=d.drift_share,
            fdr_alpha=d.fdr_alpha,
            min_rows=d.min_rows,
            missing_share_drift=d.missing_share_drift,
            unseen_category_drift=d.unseen_category_drift,
            chisquare_min_expected=d.chisquare_min_expected,
        )
    except DriftConfigError as e:
        raise SpecError(f"model {spec.model!r}: drift: {e}") from e


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
        self.config = drift_config(spec)
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
        return numeric_profile(
            name, family, clean, n_rows, n_missing, n_rows - n_missing - clean.shape[0]
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
            quality=self._quality(data),
            multivariate_pvalue=self._multivariate(data),
        )

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
            config = DriftConfig(drift_share=self.config.drift_share, min_rows=self.config.min_rows)
            c = column_drift(name, self.prediction_type or "numerical", ref, cur, config)
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
            codes = data.cat.T.copy()
            n_ref = np.asarray(self.n_reference_categories, dtype=np.int32)
            if self.profile is not None:
                codes[codes >= n_ref] = UNSEEN
            q = categorical_quality(codes)
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


# --------------------------------------------------------------------------- loading


class ProfileCache:
    """Reference profiles by reference-file content, built once per process; with
    `directory`, also saved as `.npz` files so a restarted process does not rebuild them."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._profiles: dict[str, tuple[ReferenceProfile, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _digest(path: Path, columns: list[str]) -> str:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(json.dumps(columns).encode())
        return h.hexdigest()[:24]

    def get(self, path: Path, columns: list[str]) -> tuple[ReferenceProfile, pd.DataFrame]:
        """(profile, frame of the columns) of a reference file."""
        try:
            key = self._digest(path, columns)
        except OSError as e:
            raise SpecError(f"reference {path}: cannot read ({e})") from e
        with self._lock:
            hit = self._profiles.get(key)
            if hit is not None:
                return hit
            frame = read_table(path)
            frame = frame[[c for c in columns if c in frame.columns]]
            profile = None
            npz = self.directory / f"profile-{key}.npz" if self.directory is not None else None
            if npz is not None and npz.exists():
                try:
                    profile = ReferenceProfile.load(npz)
                except ValueError:
                    profile = None
            if profile is None:
                profile = ReferenceProfile.from_frame(frame)
                if npz is not None:
                    npz.parent.mkdir(parents=True, exist_ok=True)
                    tmp = npz.with_suffix(".tmp")
                    profile.save(tmp)
                    os.replace(tmp, npz)
            self._profiles[key] = (profile, frame)
            return profile, frame


def build_context(
    spec: ModelSpec,
    cache: ProfileCache,
    *,
    max_categories: int = 10_000,
    max_versions: int = 64,
) -> StatsContext:
    """A `StatsContext` for a spec: reads and profiles the reference (cached)."""
    profile = None
    matrix = None
    if spec.reference is not None:
        wanted = list(spec.feature_names)
        for part in (spec.prediction, spec.target):
            if part is not None:
                wanted.append(part.column)
        profile, frame = cache.get(spec.reference.path, wanted)
        missing = [f for f in spec.feature_names if f not in profile]
        if missing:
            raise SpecError(
                f"model {spec.model!r}: reference {spec.reference.path} has no column(s) "
                f"{', '.join(map(repr, missing))}"
            )
        opts = spec.drift.multivariate
        if opts.enabled:
            nums = [f.name for f in spec.features if f.type == "numerical"]
            m = frame[nums].to_numpy(dtype=np.float64, na_value=np.nan)
            m = m[np.isfinite(m).all(axis=1)]
            if m.shape[0] > opts.max_rows:
                rng = np.random.default_rng(0)
                m = m[np.sort(rng.choice(m.shape[0], opts.max_rows, replace=False))]
            matrix = m
    return StatsContext(
        spec,
        profile,
        reference_matrix=matrix,
        max_categories=max_categories,
        max_versions=max_versions,
    )


class ContextRegistry:
    """The models of a folder of spec files, reloaded when a file changes.

    `get(model)` is what the shards call; `reload()` re-reads the folder and returns the
    names of the models whose context changed (added, changed or removed). A spec that
    fails to load keeps the previous version of that model and is logged, so one bad edit
    never stops monitoring of the others.
    """

    def __init__(
        self,
        directory: Path,
        *,
        cache: ProfileCache | None = None,
        max_categories: int = 10_000,
        max_versions: int = 64,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.cache = cache or ProfileCache()
        self.max_categories = max_categories
        self.max_versions = max_versions
        self._on_error = on_error or (lambda msg: _log.error("%s", msg))
        self._files: dict[Path, tuple[int, int, str | None]] = {}  # path -> (mtime, size, model)
        self._contexts: dict[str, StatsContext] = {}
        self.errors: dict[str, str] = {}  # file -> last error

    def get(self, model: str) -> StatsContext | None:
        return self._contexts.get(model)

    @property
    def models(self) -> Mapping[str, StatsContext]:
        return self._contexts

    def load(self) -> None:
        """First load: any invalid spec is an error (the service refuses to start)."""
        if not self.directory.is_dir():
            raise SpecError(f"{self.directory}: not a directory of spec files")
        self.reload(strict=True)

    def reload(self, *, strict: bool = False) -> set[str]:
        changed: set[str] = set()
        seen: set[Path] = set()
        paths = sorted([*self.directory.glob("*.yaml"), *self.directory.glob("*.yml")])
        for p in paths:
            seen.add(p)
            try:
                st = p.stat()
            except OSError:
                continue
            prev = self._files.get(p)
            if prev is not None and prev[:2] == (st.st_mtime_ns, st.st_size):
                continue
            try:
                spec = load_spec(p)
                owner = next(
                    (q for q, (_, _, m) in self._files.items() if m == spec.model and q != p), None
                )
                if owner is not None and owner in paths:
                    raise SpecError(f"{p}: model {spec.model!r} is already defined by {owner}")
                ctx = build_context(
                    spec,
                    self.cache,
                    max_categories=self.max_categories,
                    max_versions=self.max_versions,
                )
                self._log_notes(spec)
            except DriftwardenError as e:
                if strict:
                    raise
                self.errors[str(p)] = str(e)
                self._on_error(f"spec {p} not (re)loaded: {e}")
                self._files[p] = (st.st_mtime_ns, st.st_size, prev[2] if prev else None)
                continue
            self.errors.pop(str(p), None)
            if prev is not None and prev[2] and prev[2] != spec.model:
                self._contexts.pop(prev[2], None)
                changed.add(prev[2])
            old = self._contexts.get(spec.model)
            if old is None or old.fingerprint != ctx.fingerprint:
                changed.add(spec.model)
            self._contexts[spec.model] = ctx
            self._files[p] = (st.st_mtime_ns, st.st_size, spec.model)
        for p in list(self._files):
            if p not in seen:
                model = self._files.pop(p)[2]
                if model is not None and model in self._contexts:
                    del self._contexts[model]
                    changed.add(model)
        return changed

    @staticmethod
    def _log_notes(spec: ModelSpec) -> None:
        w = spec.window
        if w.mode == "sliding" and w.duration_s is not None:
            _log.warning(
                "model %s: window.duration_s is ignored for sliding windows (they slide by rows)",
                spec.model,
            )
        if spec.reference is None:
            _log.warning("model %s: no reference data; only data quality is measured", spec.model)
