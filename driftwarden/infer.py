"""Drafting a monitoring spec from data (`driftwarden spec infer`). Pure: frame in, spec out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pandas.api import types as ptypes

from driftwarden.errors import DataFileError
from driftwarden.spec import (
    FeatureSpec,
    ModelSpec,
    PredictionSpec,
    ReferenceSpec,
    TargetSpec,
)

# Evidently types an integer column with at most this many distinct values as categorical;
# we draft the same so a spec and an Evidently report agree on the column's type.
INTEGER_CARDINALITY_LIMIT = 10
PREDICTION_NAMES = ("prediction", "predictions", "pred", "y_pred", "score", "proba", "probability")
TARGET_NAMES = ("target", "label", "y", "y_true", "ground_truth", "class")


def infer_feature_type(column: pd.Series) -> str:
    """numerical or categorical, by Evidently 0.7's rules for numbers, bools and strings."""
    if ptypes.is_bool_dtype(column) or isinstance(column.dtype, pd.CategoricalDtype):
        return "categorical"
    if ptypes.is_float_dtype(column):
        return "numerical"
    if ptypes.is_integer_dtype(column):
        return "categorical" if column.nunique() <= INTEGER_CARDINALITY_LIMIT else "numerical"
    return "categorical"


def _find(
    columns: list[str], wanted: str | None, candidates: tuple[str, ...], role: str
) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise DataFileError(f"--{role}: no column {wanted!r} in the data")
        return wanted
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in candidates if n in lowered), None)


def _prediction_type(column: pd.Series) -> str:
    if ptypes.is_float_dtype(column):
        values = column.dropna()
        if len(values) and values.min() >= 0.0 and values.max() <= 1.0:
            return "probability"
        return "regression"
    return "class"


def _default_metrics(target: TargetSpec | None, prediction: pd.Series | None) -> list[str]:
    if target is None or prediction is None:
        return []
    if target.type == "regression":
        return ["mae", "rmse", "mape"]
    metrics = ["accuracy", "precision", "recall", "f1"]
    if _prediction_type(prediction) == "probability":
        metrics += ["roc_auc", "log_loss"]
    return metrics


def infer_spec(
    frame: pd.DataFrame,
    *,
    model: str,
    reference_path: Path | None = None,
    prediction: str | None = None,
    target: str | None = None,
    window_rows: int = 10_000,
) -> ModelSpec:
    """A first draft: every column a feature except the prediction and target columns, with
    calibrated drift thresholds (`drift.thresholds: calibrated`)."""
    columns = [str(c) for c in frame.columns]
    if not columns:
        raise DataFileError("the data has no columns")
    pred_col = _find(columns, prediction, PREDICTION_NAMES, "prediction")
    target_col = _find(columns, target, TARGET_NAMES, "target")
    if pred_col is not None and pred_col == target_col:
        raise DataFileError(f"column {pred_col!r} cannot be both the prediction and the target")
    roles = {pred_col, target_col}
    features = [
        FeatureSpec(name=c, type=infer_feature_type(frame[c])) for c in columns if c not in roles
    ]
    if not features:
        raise DataFileError("the data has no feature columns besides the prediction and target")
    target_spec = None
    if target_col is not None:
        kind = infer_feature_type(frame[target_col])
        target_spec = TargetSpec(
            column=target_col, type="class" if kind == "categorical" else "regression"
        )
    return ModelSpec(
        model=model,
        performance={"metrics": _default_metrics(target_spec, pred_col and frame[pred_col])},
        features=features,
        prediction=PredictionSpec(column=pred_col, type=_prediction_type(frame[pred_col]))
        if pred_col is not None
        else None,
        target=target_spec,
        reference=ReferenceSpec(path=reference_path) if reference_path is not None else None,
        window={"rows": window_rows},
        # New specs get thresholds calibrated on their reference (docs/statistics.md): a
        # false feature flag on at most 1 % of model-days. Without this key a spec keeps
        # Evidently's thresholds and verdicts.
        drift={"thresholds": "calibrated"},
    )
