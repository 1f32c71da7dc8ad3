"""Model performance metrics on joined (prediction, label) pairs, vectorised numpy.

Classification: ``accuracy``, ``precision``, ``recall``, ``f1`` (from predicted labels),
``roc_auc``, ``log_loss`` (from scores/probabilities). Regression: ``mae``, ``rmse``, ``mape``.
The values equal scikit-learn's (``tests/unit/test_performance.py`` checks them to 1e-12
relative), with these conventions:

- ``average="binary"`` scores the class ``pos_label`` (default 1) and needs at most two
  distinct labels; ``average="macro"`` is the unweighted mean over the classes present in
  ``y_true`` or ``y_pred``.
- **Undefined is NaN, never a warning**: any metric of an empty window; precision with no
  predicted positives; recall with no actual positives; F1 when there are neither;
  ``roc_auc`` when ``y_true`` holds only one class (or a score is NaN). A macro average
  skips the classes where the metric is undefined, and is NaN only when every class is
  (scikit-learn's ``zero_division=np.nan``). F1 is ``2 tp / (2 tp + fp + fn)``, so it is 0,
  not NaN, when there are actual positives but no predicted ones.
- ``roc_auc`` is binary: the Mann-Whitney statistic with average ranks for ties, which is the
  area under the ROC curve with tied scores counted one half, as scikit-learn computes it.
- ``log_loss`` clips probabilities to ``[eps, 1 - eps]`` with ``eps`` the float64 machine
  epsilon, as scikit-learn >= 1.5 does. A 1-D score is the probability of ``pos_label``; an
  ``n x k`` matrix has one column per entry of ``labels`` (default: the sorted distinct
  values of ``y_true``). Rows are not renormalised. Probabilities outside [0, 1] are an
  error.
- ``mape`` is a fraction, not a percentage, with ``|y_true|`` floored at float64 epsilon as
  in scikit-learn (huge, not undefined, when a true value is 0).
- NaN in scores or regression values gives NaN.

:func:`compute_metrics` computes a list of metrics by name; :func:`get_metric` is the
factory, and rejects unknown names with :class:`UnknownMetricError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from driftwarden.errors import DriftwardenError

__all__ = [
    "CLASSIFICATION_METRICS",
    "METRICS",
    "REGRESSION_METRICS",
    "Metric",
    "UnknownMetricError",
    "accuracy",
    "compute_metrics",
    "f1",
    "get_metric",
    "log_loss",
    "mae",
    "mape",
    "precision",
    "recall",
    "rmse",
    "roc_auc",
]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "mape")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS

Average = Literal["binary", "macro"]
_EPS = float(np.finfo(np.float64).eps)
_NAN = float("nan")


class UnknownMetricError(DriftwardenError, ValueError):
    """A metric name that is not in :data:`METRICS`."""


# -- input checks ----------------------------------------------------------------------------


def _pair(y_true: Any, y_other: Any, other: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true)
    o = np.asarray(y_other)
    if t.ndim != 1:
        raise ValueError(f"y_true: expected one column (1-D), got shape {t.shape}")
    if o.shape[:1] != t.shape:
        raise ValueError(f"{other} has {o.shape[0] if o.ndim else 0} rows, y_true has {len(t)}")
    return t, o


def _labels_1d(t: np.ndarray, p: np.ndarray) -> None:
    if p.ndim != 1:
        raise ValueError(f"y_pred: expected one label per row (1-D), got shape {p.shape}")


def _binary_truth(t: np.ndarray, pos_label: Any, *others: np.ndarray) -> np.ndarray:
    """``t == pos_label`` after checking the labels allow a binary reading."""
    present = np.unique(np.concatenate([t, *others])) if t.size else t
    if len(present) > 2:
        raise ValueError(
            f"average='binary' needs at most 2 classes, got {len(present)}; "
            "use average='macro' for multiclass"
        )
    if len(present) == 2 and pos_label not in present.tolist():
        raise ValueError(f"pos_label={pos_label!r} is not one of the labels {present.tolist()}")
    return t == pos_label


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else _NAN


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else _NAN


# -- classification from labels --------------------------------------------------------------


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of rows whose predicted label equals the true one (NaN when empty)."""
    t, p = _pair(y_true, y_pred, "y_pred")
    _labels_1d(t, p)
    return float(np.count_nonzero(t == p)) / t.size if t.size else _NAN


def _counts(
    y_true: Any, y_pred: Any, average: Average, pos_label: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, predicted, actual) counts: scalars-as-arrays for binary, per class for macro."""
    t, p = _pair(y_true, y_pred, "y_pred")
    _labels_1d(t, p)
    if average == "binary":
        ti = _binary_truth(t, pos_label, p)
        pi = p == pos_label
        return (
            np.array([np.count_nonzero(ti & pi)]),
            np.array([np.count_nonzero(pi)]),
            np.array([np.count_nonzero(ti)]),
        )
    if average != "macro":
        raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")
    classes, idx = np.unique(np.concatenate([t, p]), return_inverse=True)
    k = len(classes)
    ti, pi = idx[: t.size], idx[t.size :]
    tp = np.bincount(ti[ti == pi], minlength=k)
    return tp, np.bincount(pi, minlength=k), np.bincount(ti, minlength=k)


def _prf(which: str, y_true: Any, y_pred: Any, average: Average, pos_label: Any) -> float:
    tp, predicted, actual = _counts(y_true, y_pred, average, pos_label)
    if which == "precision":
        num, den = tp, predicted
    elif which == "recall":
        num, den = tp, actual
    else:
        num, den = 2 * tp, predicted + actual
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    if average == "binary":
        return float(per_class[0]) if per_class.size else _NAN
    return _nanmean(per_class)


def precision(
    y_true: Any, y_pred: Any, *, average: Average = "binary", pos_label: Any = 1
) -> float:
    """``tp / (tp + fp)``; NaN without predicted positives."""
    return _prf("precision", y_true, y_pred, average, pos_label)


def recall(y_true: Any, y_pred: Any, *, average: Average = "binary", pos_label: Any = 1) -> float:
    """``tp / (tp + fn)``; NaN without actual positives."""
    return _prf("recall", y_true, y_pred, average, pos_label)


def f1(y_true: Any, y_pred: Any, *, average: Average = "binary", pos_label: Any = 1) -> float:
    """``2 tp / (2 tp + fp + fn)``; NaN when there are neither actual nor predicted positives."""
    return _prf("f1", y_true, y_pred, average, pos_label)


# -- classification from scores --------------------------------------------------------------


def roc_auc(y_true: Any, y_score: Any, *, pos_label: Any = 1) -> float:
    """Binary ROC AUC of ``y_score`` (higher = more likely ``pos_label``), ties counted 1/2.

    NaN when ``y_true`` has a single class, the window is empty, or a score is NaN.
    """
    t, s = _pair(y_true, y_score, "y_score")
    if s.ndim != 1:
        raise ValueError("roc_auc: y_score must be one score per row (the positive class's)")
    positive = _binary_truth(t, pos_label)
    n_pos = int(np.count_nonzero(positive))
    n_neg = t.size - n_pos
    s = s.astype(np.float64)
    if n_pos == 0 or n_neg == 0 or np.isnan(s).any():
        return _NAN
    # Average ranks are multiples of 1/2, so the rank sum is exact in float64 (n < ~1e7).
    rank_sum = float(rankdata(s)[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(
    y_true: Any, y_proba: Any, *, pos_label: Any = 1, labels: Sequence[Any] | None = None
) -> float:
    """Mean negative log-likelihood of the true labels, probabilities clipped to [eps, 1-eps].

    ``y_proba`` is the probability of ``pos_label`` (1-D), or ``n x k`` with one column per
    entry of ``labels`` (default: the sorted distinct values of ``y_true``).
    """
    t, prob = _pair(y_true, y_proba, "y_proba")
    prob = prob.astype(np.float64)
    if prob.ndim not in (1, 2):
        raise ValueError(f"y_proba: expected 1-D or 2-D, got shape {prob.shape}")
    finite = prob[~np.isnan(prob)]
    if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
        raise ValueError("y_proba: probabilities must lie in [0, 1]")
    if t.size == 0:
        return _NAN
    with np.errstate(invalid="ignore"):
        if prob.ndim == 1:
            positive = _binary_truth(t, pos_label)
            p_true = np.where(positive, prob, 1.0 - prob)
        else:
            classes = pd.Index(np.unique(t) if labels is None else list(labels), dtype=object)
            if not classes.is_unique:
                raise ValueError("labels must be unique")
            if len(classes) != prob.shape[1]:
                raise ValueError(
                    f"y_proba has {prob.shape[1]} columns but there are {len(classes)} labels "
                    f"{classes.tolist()}; pass labels= in column order"
                )
            column = classes.get_indexer(t.astype(object))
            if (column < 0).any():
                unknown = np.unique(t[column < 0]).tolist()
                raise ValueError(f"y_true has labels {unknown} that are not in labels")
            p_true = prob[np.arange(t.size), column]
        return float(-np.log(np.clip(p_true, _EPS, 1.0 - _EPS)).mean())


# -- regression ------------------------------------------------------------------------------


def _errors(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _pair(y_true, y_pred, "y_pred")
    if p.ndim != 1:
        raise ValueError(f"y_pred: expected one value per row (1-D), got shape {p.shape}")
    t, p = t.astype(np.float64), p.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return t, p - t


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error (NaN when empty)."""
    _, err = _errors(y_true, y_pred)
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.abs(err).mean()) if err.size else _NAN


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error (NaN when empty)."""
    _, err = _errors(y_true, y_pred)
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sqrt((err * err).mean())) if err.size else _NAN


def mape(y_true: Any, y_pred: Any) -> float:
    """Mean of ``|y_pred - y_true| / max(|y_true|, eps)``, a fraction (NaN when empty)."""
    t, err = _errors(y_true, y_pred)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return float((np.abs(err) / np.maximum(np.abs(t), _EPS)).mean()) if err.size else _NAN


# -- names, factory, batch -------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A performance metric by name: what it needs and how to compute it."""

    name: str
    task: Literal["classification", "regression"]
    needs: Literal["y_pred", "y_score"]
    """Which prediction input it reads: labels/values, or scores/probabilities."""
    func: Callable[..., float]

    def __call__(
        self,
        y_true: Any,
        *,
        y_pred: Any = None,
        y_score: Any = None,
        average: Average = "binary",
        pos_label: Any = 1,
        labels: Sequence[Any] | None = None,
    ) -> float:
        given = y_pred if self.needs == "y_pred" else y_score
        if given is None:
            raise ValueError(f"metric {self.name!r} needs {self.needs}")
        if self.name in ("precision", "recall", "f1"):
            return self.func(y_true, given, average=average, pos_label=pos_label)
        if self.name == "roc_auc":
            return self.func(y_true, given, pos_label=pos_label)
        if self.name == "log_loss":
            return self.func(y_true, given, pos_label=pos_label, labels=labels)
        return self.func(y_true, given)


_REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "classification", "y_pred", accuracy),
        Metric("precision", "classification", "y_pred", precision),
        Metric("recall", "classification", "y_pred", recall),
        Metric("f1", "classification", "y_pred", f1),
        Metric("roc_auc", "classification", "y_score", roc_auc),
        Metric("log_loss", "classification", "y_score", log_loss),
        Metric("mae", "regression", "y_pred", mae),
        Metric("rmse", "regression", "y_pred", rmse),
        Metric("mape", "regression", "y_pred", mape),
    )
}


def get_metric(name: str) -> Metric:
    """The metric called ``name``; :class:`UnknownMetricError` lists the valid names."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownMetricError(
            f"unknown performance metric {name!r}; choose from {', '.join(METRICS)}"
        ) from None


def compute_metrics(
    names: Sequence[str],
    y_true: Any,
    *,
    y_pred: Any = None,
    y_score: Any = None,
    average: Average = "binary",
    pos_label: Any = 1,
    labels: Sequence[Any] | None = None,
) -> dict[str, float]:
    """``{name: value}`` for the requested metrics, in the order given.

    All names are checked before anything is computed; classification and regression
    metrics cannot be mixed in one call. ``y_pred`` holds predicted labels (classification)
    or values (regression); ``y_score`` the positive-class score or class probabilities.
    """
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown:
        raise UnknownMetricError(
            f"unknown performance metric(s) {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(METRICS)}"
        )
    metrics = [_REGISTRY[n] for n in names]
    tasks = {m.task for m in metrics}
    if len(tasks) > 1:
        raise ValueError("cannot mix classification and regression metrics in one call")
    return {
        m.name: m(
            y_true,
            y_pred=y_pred,
            y_score=y_score,
            average=average,
            pos_label=pos_label,
            labels=labels,
        )
        for m in metrics
    }
