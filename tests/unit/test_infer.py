"""`spec infer`: column types as Evidently types them, roles found by name or flag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftwarden.errors import DataFileError
from driftwarden.infer import infer_feature_type, infer_spec


def _frame(n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "n_children": rng.integers(0, 4, n),
            "n_items": rng.integers(0, 1000, n),
            "country": rng.choice(["DE", "FR"], n),
            "vip": rng.random(n) < 0.1,
            "segment": pd.Categorical(rng.choice(["a", "b"], n)),
            "prediction": rng.random(n),
            "target": rng.integers(0, 2, n),
        }
    )


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("age", "numerical"),
        ("n_children", "categorical"),
        ("n_items", "numerical"),
        ("country", "categorical"),
        ("vip", "categorical"),
        ("segment", "categorical"),
    ],
)
def test_feature_types_follow_evidently_rules(column: str, expected: str) -> None:
    assert infer_feature_type(_frame()[column]) == expected


def test_integer_with_exactly_ten_values_is_categorical_and_eleven_numerical() -> None:
    assert infer_feature_type(pd.Series(np.arange(100) % 10)) == "categorical"
    assert infer_feature_type(pd.Series(np.arange(100) % 11)) == "numerical"


def test_roles_found_by_name() -> None:
    spec = infer_spec(_frame(), model="m")
    assert spec.prediction is not None and spec.prediction.column == "prediction"
    assert spec.prediction.type == "probability"
    assert (
        spec.target is not None and spec.target.column == "target" and spec.target.type == "class"
    )
    assert "prediction" not in spec.feature_names and "target" not in spec.feature_names
    assert spec.performance.metrics == [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
    ]


def test_roles_by_flag_and_regression() -> None:
    frame = _frame().rename(columns={"prediction": "yhat", "target": "price"})
    frame["price"] = frame["age"] * 3.5
    spec = infer_spec(frame, model="m", prediction="yhat", target="price")
    assert spec.prediction is not None and spec.prediction.column == "yhat"
    assert spec.target is not None and spec.target.type == "regression"
    assert spec.performance.metrics == ["mae", "rmse", "mape"]


def test_unknown_flag_column_is_one_clear_error() -> None:
    with pytest.raises(DataFileError, match="--target: no column 'nope'"):
        infer_spec(_frame(), model="m", target="nope")


def test_no_roles_means_every_column_is_a_feature() -> None:
    frame = _frame().drop(columns=["prediction", "target"])
    spec = infer_spec(frame, model="m")
    assert spec.prediction is None and spec.target is None
    assert len(spec.features) == frame.shape[1]
