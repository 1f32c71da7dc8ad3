"""Holdout metrics and the evaluation gate of the reference trainer. Pure numpy, no I/O.

The gate compares the new model with the current one (when there is one) and with a
constant baseline (class priors / the training mean) on the same holdout rows:

- the new model must beat the baseline (a model that learnt nothing never ships), and
- it must not be worse than the current model by more than `tolerance`, a fraction of the
  current model's metric (0.01: at most 1 % worse), judged on one metric: `log_loss` for
  classifiers (a proper scoring rule: it sees calibration, which drift breaks first) and
  `rmse` for regressors unless the caller names another.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Final

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "GATE_METRICS",
    "LOWER_IS_BETTER",
    "GateResult",
    "baseline_classification",
    "baseline_regression",
    "classification_metrics",
    "default_gate_metric",
    "evaluate_gate",
    "regression_metrics",
]

LOWER_IS_BETTER: Final = frozenset({"log_loss", "rmse", "mae"})
GATE_METRICS: Final = {
    "class": ("log_loss", "accuracy", "roc_auc"),
    "regression": ("rmse", "mae"),
}
_EPS = 1e-15


def default_gate_metric(task: str) -> str:
    return "log_loss" if task == "class" else "rmse"


def _roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC with midranks for ties; NaN when one class is absent."""
    n_pos = int(positive.sum())
    n_neg = positive.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    proba: np.ndarray, true_index: np.ndarray, positive_index: int | None
) -> dict[str, float]:
    """Metrics of class probabilities `proba` [N, K] against true class indices (-1: a
    class this model never saw, which it is charged the floor probability for)."""
    n = true_index.shape[0]
    if n == 0:
        return {"log_loss": math.nan, "accuracy": math.nan, "roc_auc": math.nan, "rows": 0}
    known = true_index >= 0
    p_true = np.full(n, _EPS)
    p_true[known] = proba[np.flatnonzero(known), true_index[known]]
    log_loss = float(-np.log(np.clip(p_true, _EPS, 1.0)).mean())
    accuracy = float((proba.argmax(axis=1) == true_index).mean())
    auc = math.nan
    if positive_index is not None and proba.shape[1] == 2:
        auc = _roc_auc(proba[:, positive_index], true_index == positive_index)
    return {"log_loss": log_loss, "accuracy": accuracy, "roc_auc": auc, "rows": int(n)}


def regression_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(actual)
    if not ok.any():
        return {"rmse": math.nan, "mae": math.nan, "rows": 0}
    err = predicted[ok] - actual[ok]
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "rows": int(ok.sum()),
    }


def baseline_classification(
    train_index: np.ndarray, holdout_index: np.ndarray, n_classes: int, positive_index: int | None
) -> dict[str, float]:
    """The constant model that predicts the training class priors for every row."""
    counts = np.bincount(train_index[train_index >= 0], minlength=n_classes).astype(np.float64)
    priors = (counts + 0.5) / (counts.sum() + 0.5 * n_classes)
    proba = np.broadcast_to(priors, (holdout_index.shape[0], n_classes))
    return classification_metrics(proba, holdout_index, positive_index)


def baseline_regression(train: np.ndarray, holdout: np.ndarray) -> dict[str, float]:
    mean = float(np.nanmean(train)) if np.isfinite(train).any() else 0.0
    return regression_metrics(np.full(holdout.shape[0], mean), holdout)


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    metric: str
    new: float
    current: float | None
    baseline: float
    tolerance: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _worse_by(metric: str, new: float, ref: float) -> float:
    """How much worse `new` is than `ref`, as a fraction of |ref| (negative: better)."""
    diff = new - ref if metric in LOWER_IS_BETTER else ref - new
    scale = abs(ref)
    return diff / scale if scale > 0 else diff


def evaluate_gate(
    metric: str,
    new: dict[str, float],
    baseline: dict[str, float],
    current: dict[str, float] | None,
    tolerance: float,
) -> GateResult:
    """Pass or fail the new model on `metric` (see the module docstring)."""
    n, b = float(new[metric]), float(baseline[metric])
    c = float(current[metric]) if current is not None else None

    def result(passed: bool, reason: str) -> GateResult:
        return GateResult(passed, metric, n, c, b, tolerance, reason)

    if not math.isfinite(n):
        return result(False, f"the new model's holdout {metric} is {n} (too few holdout rows?)")
    if math.isfinite(b) and _worse_by(metric, n, b) >= 0:
        return result(
            False,
            f"the new model's holdout {metric} {n:.4f} does not beat the constant "
            f"baseline's {b:.4f}",
        )
    if c is None or not math.isfinite(c):
        why = "no current model" if c is None else f"the current model's {metric} is {c}"
        return result(True, f"{metric} {n:.4f} beats the baseline's {b:.4f} ({why})")
    worse = _worse_by(metric, n, c)
    if worse > tolerance:
        return result(
            False,
            f"the new model's holdout {metric} {n:.4f} is worse than the current model's "
            f"{c:.4f} by {worse:.1%} (tolerance {tolerance:.1%})",
        )
    verdict = "better than" if worse < 0 else "within tolerance of"
    return result(True, f"{metric} {n:.4f} is {verdict} the current model's {c:.4f}")
