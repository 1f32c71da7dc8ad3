"""Performance metrics against scikit-learn (test-only reference), to 1e-12 relative."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from detectors.performance import (
    CLASSIFICATION_METRICS,
    METRICS,
    REGRESSION_METRICS,
    UnknownMetricError,
    accuracy,
    compute_metrics,
    f1,
    get_metric,
    log_loss,
    mae,
    mape,
    precision,
    recall,
    rmse,
    roc_auc,
)
from driftwarden.errors import DriftwardenError

skm = pytest.importorskip("sklearn.metrics")

REL = 1e-12


def same(ours: float, theirs: float) -> bool:
    """Equal to 1e-12 relative, NaN equal to NaN."""
    if math.isnan(theirs):
        return math.isnan(ours)
    return ours == pytest.approx(theirs, rel=REL, abs=1e-300)


def _sk_prf(which, y_true, y_pred, average, pos_label=1):
    func = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}
    kwargs = {"average": average, "zero_division": np.nan}
    if average == "binary":
        kwargs["pos_label"] = pos_label
    return float(func[which](y_true, y_pred, **kwargs))


_OURS = {"precision": precision, "recall": recall, "f1": f1}


# -- random data -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [1, 7, 200, 5000])
def test_binary_label_metrics_match_sklearn(seed, n):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, n)
    y_pred = np.where(rng.random(n) < 0.8, y_true, 1 - y_true)
    assert same(accuracy(y_true, y_pred), skm.accuracy_score(y_true, y_pred))
    for which, ours in _OURS.items():
        assert same(ours(y_true, y_pred), _sk_prf(which, y_true, y_pred, "binary"))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 3, 7])
def test_macro_label_metrics_match_sklearn(seed, k):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, k + 1, 300))
    for which, ours in _OURS.items():
        assert same(ours(y_true, y_pred, average="macro"), _sk_prf(which, y_true, y_pred, "macro"))


def test_string_labels_and_pos_label():
    y_true = np.array(["spam", "ham", "spam", "ham", "ham", "spam"])
    y_pred = np.array(["spam", "spam", "ham", "ham", "ham", "spam"])
    for which, ours in _OURS.items():
        got = ours(y_true, y_pred, pos_label="spam")
        assert same(got, _sk_prf(which, y_true, y_pred, "binary", pos_label="spam"))
    score = np.array([0.9, 0.4, 0.35, 0.1, 0.2, 0.8])
    is_spam = (y_true == "spam").astype(int)
    assert same(roc_auc(y_true, score, pos_label="spam"), skm.roc_auc_score(is_spam, score))
    assert same(log_loss(y_true, score, pos_label="spam"), skm.log_loss(is_spam, score))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [2, 50, 2000])
def test_scores_match_sklearn_including_ties(seed, n):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, n)
    y_true[:2] = [0, 1]
    continuous = np.clip(rng.normal(0.5 + 0.2 * (y_true - 0.5), 0.25), 0.0, 1.0)
    tied = np.round(continuous, 1)  # lots of ties, and exact 0 / 1 probabilities
    for score in (continuous, tied):
        assert same(roc_auc(y_true, score), skm.roc_auc_score(y_true, score))
        assert same(log_loss(y_true, score), skm.log_loss(y_true, score))


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_log_loss_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = 4
    y_true = rng.integers(0, k, 400)
    logits = rng.normal(size=(400, k)) * 3
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba[0] = [1.0, 0.0, 0.0, 0.0]  # exercises the clipping
    assert same(log_loss(y_true, proba), skm.log_loss(y_true, proba))
    labels = ["a", "b", "c", "d"]
    named = np.array(labels)[y_true]
    assert same(log_loss(named, proba, labels=labels), skm.log_loss(named, proba, labels=labels))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [1, 30, 5000])
def test_regression_metrics_match_sklearn(seed, n):
    rng = np.random.default_rng(seed)
    y_true = rng.normal(10, 5, n)
    y_true[0] = 0.0  # mape divides by eps there
    y_pred = y_true + rng.normal(0, 2, n)
    assert same(mae(y_true, y_pred), skm.mean_absolute_error(y_true, y_pred))
    assert same(rmse(y_true, y_pred), skm.root_mean_squared_error(y_true, y_pred))
    assert same(mape(y_true, y_pred), skm.mean_absolute_percentage_error(y_true, y_pred))


# -- undefined cases: NaN, no warning (warnings are errors in this suite) ---------------------


def test_undefined_cases_are_nan():
    assert math.isnan(precision([1, 0, 1], [0, 0, 0]))  # nothing predicted positive
    assert math.isnan(recall([0, 0, 0], [1, 0, 1]))  # no actual positive
    assert math.isnan(f1([0, 0], [0, 0]))  # neither
    assert f1([1, 1], [0, 0]) == 0.0  # actual positives, none predicted: 0 as in sklearn
    assert same(f1([1, 1], [0, 0]), _sk_prf("f1", [1, 1], [0, 0], "binary"))
    assert math.isnan(roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))  # one class
    assert math.isnan(roc_auc([0, 1], [0.2, np.nan]))
    for name in METRICS:
        needs = get_metric(name).needs
        assert math.isnan(get_metric(name)([], **{needs: []})), name


def test_macro_skips_undefined_classes_like_sklearn_nan():
    y_true = [0, 0, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 1]  # class 2 never predicted: its precision is undefined
    got = precision(y_true, y_pred, average="macro")
    assert same(got, _sk_prf("precision", y_true, y_pred, "macro"))
    assert got == pytest.approx((1.0 + 2 / 4) / 2)


def test_extreme_values_raise_no_warnings():
    big = np.array([1e308, -1e308, np.inf])
    assert math.isinf(rmse(big, -big))
    assert math.isnan(mae([np.inf], [np.inf]))
    assert math.isnan(mape([np.nan, 1.0], [1.0, 1.0]))
    assert log_loss([1, 0], [0.0, 1.0]) == pytest.approx(-math.log(np.finfo(float).eps))


# -- errors ----------------------------------------------------------------------------------


def test_input_errors():
    with pytest.raises(ValueError, match="macro"):
        precision([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="pos_label"):
        recall(["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="rows"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        log_loss([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="columns"):
        log_loss([0, 1, 2], np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="not in labels"):
        log_loss([0, 5], np.full((2, 2), 0.5), labels=[0, 1])
    with pytest.raises(ValueError, match="average"):
        f1([0, 1], [0, 1], average="micro")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one score"):
        roc_auc([0, 1], np.full((2, 2), 0.5))


# -- factory and batch -----------------------------------------------------------------------


def test_factory_rejects_unknown_names_clearly():
    assert METRICS == CLASSIFICATION_METRICS + REGRESSION_METRICS
    for name in METRICS:
        assert get_metric(name).name == name
    with pytest.raises(UnknownMetricError, match=r"'auc'.*choose from accuracy, precision"):
        get_metric("auc")
    with pytest.raises(DriftwardenError):
        compute_metrics(["mae", "r2", "smape"], [1.0], y_pred=[1.0])
    with pytest.raises(ValueError, match="'r2', 'smape'"):
        compute_metrics(["mae", "r2", "smape"], [1.0], y_pred=[1.0])


def test_compute_metrics():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, 100)
    score = np.clip(y_true * 0.3 + rng.random(100) * 0.7, 0, 1)
    y_pred = (score >= 0.5).astype(int)
    got = compute_metrics(list(CLASSIFICATION_METRICS), y_true, y_pred=y_pred, y_score=score)
    assert list(got) == list(CLASSIFICATION_METRICS)
    assert same(got["roc_auc"], skm.roc_auc_score(y_true, score))
    assert same(got["f1"], skm.f1_score(y_true, y_pred))
    assert compute_metrics("accuracy", y_true, y_pred=y_pred) == {"accuracy": got["accuracy"]}
    with pytest.raises(ValueError, match="needs y_score"):
        compute_metrics(["roc_auc"], y_true, y_pred=y_pred)
    with pytest.raises(ValueError, match="mix"):
        compute_metrics(["accuracy", "mae"], y_true, y_pred=y_pred)
    values = rng.normal(size=100)
    reg = compute_metrics(REGRESSION_METRICS, values, y_pred=values + 1)
    assert reg["mae"] == pytest.approx(1.0) and reg["rmse"] == pytest.approx(1.0)


def test_delayed_labels_replay():
    """Predictions arrive first, labels later and some never: metrics use the joined rows."""
    rng = np.random.default_rng(9)
    n = 1000
    ids = np.arange(n)
    y_true_all = rng.integers(0, 2, n)
    score = np.clip(0.35 * y_true_all + rng.random(n) * 0.65, 0, 1)
    labelled = rng.random(n) < 0.7  # 30% never get a label
    arrival = rng.permutation(ids[labelled])  # labels come back out of order
    for cut in (10, 300, len(arrival)):
        joined = np.sort(arrival[:cut])
        got = compute_metrics(
            ["roc_auc", "log_loss", "accuracy"],
            y_true_all[joined],
            y_pred=(score[joined] >= 0.5).astype(int),
            y_score=score[joined],
        )
        want = skm.roc_auc_score(y_true_all[joined], score[joined])
        assert same(got["roc_auc"], want)


# -- properties ------------------------------------------------------------------------------

_labels = hnp.arrays(np.int64, st.integers(1, 60), elements=st.integers(0, 3))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), y_true=_labels)
def test_property_label_metrics_match_sklearn(data, y_true):
    y_pred = data.draw(hnp.arrays(np.int64, y_true.shape, elements=st.integers(0, 3)))
    assert same(accuracy(y_true, y_pred), skm.accuracy_score(y_true, y_pred))
    for which, ours in _OURS.items():
        got = ours(y_true, y_pred, average="macro")
        assert same(got, _sk_prf(which, y_true, y_pred, "macro"))
        assert math.isnan(got) or 0.0 <= got <= 1.0
    bt, bp = y_true % 2, y_pred % 2
    for which, ours in _OURS.items():
        assert same(ours(bt, bp), _sk_prf(which, bt, bp, "binary"))


_probabilities = st.one_of(
    st.floats(0.0, 1.0, allow_nan=False),
    st.sampled_from([0.0, 0.25, 0.5, 1.0, 1e-17, 1 - 1e-16]),
)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(2, 60))
def test_property_scores_match_sklearn(data, n):
    y_true = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    score = data.draw(hnp.arrays(np.float64, n, elements=_probabilities))
    ours = roc_auc(y_true, score)
    if len(np.unique(y_true)) == 2:
        assert same(ours, skm.roc_auc_score(y_true, score))
        assert 0.0 <= ours <= 1.0
        assert same(log_loss(y_true, score), skm.log_loss(y_true, score))
        # Flipping the scores mirrors the AUC.
        assert roc_auc(y_true, -score) == pytest.approx(1.0 - ours, abs=1e-12)
    else:
        assert math.isnan(ours)
    assert log_loss(y_true, score) >= 0.0


_values = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(1, 60))
def test_property_regression_matches_sklearn(data, n):
    y_true = data.draw(hnp.arrays(np.float64, n, elements=_values))
    y_pred = data.draw(hnp.arrays(np.float64, n, elements=_values))
    assert same(mae(y_true, y_pred), skm.mean_absolute_error(y_true, y_pred))
    assert same(rmse(y_true, y_pred), skm.root_mean_squared_error(y_true, y_pred))
    assert same(mape(y_true, y_pred), skm.mean_absolute_percentage_error(y_true, y_pred))
    # (squares of errors below ~1e-154 underflow to 0, hence the absolute slack)
    assert mae(y_true, y_pred) <= rmse(y_true, y_pred) * (1 + 1e-12) + 1e-150
