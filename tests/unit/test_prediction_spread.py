"""The spread of a window's predictions (what the canary's `prediction_spread` check compares)
and the spec's own test for the prediction column."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.spec_options import drift_config
from detectors.spread import class_spread, numeric_spread
from driftwarden.errors import SpecError
from driftwarden.spec import parse_spec


def test_numeric_spread_is_the_standard_deviation_of_the_finite_values() -> None:
    values = np.array([0.1, 0.9, np.nan, 0.5, np.inf])
    assert numeric_spread(values) == pytest.approx(np.std([0.1, 0.9, 0.5]))
    assert numeric_spread(np.full(300, 0.982)) == 0.0
    assert numeric_spread(np.array([np.nan, np.nan])) is None


def test_class_spread_is_one_minus_the_modal_share_of_present_classes() -> None:
    assert class_spread(np.array([0, 1, 1, 1, -1, -1], dtype=np.int32)) == pytest.approx(0.25)
    assert class_spread(np.array([2, 2, 2], dtype=np.int32)) == 0.0
    assert class_spread(np.array([0, 1, 2, 3], dtype=np.int32)) == pytest.approx(0.75)
    assert class_spread(np.array([-1], dtype=np.int32)) is None


SPEC = {
    "model": "credit",
    "features": [{"name": "age", "type": "numerical"}],
    "prediction": {"column": "p", "type": "probability"},
}


def test_the_prediction_column_takes_its_own_test_and_threshold() -> None:
    spec = parse_spec({**SPEC, "prediction": {**SPEC["prediction"], "test": "hellinger"}})
    config = drift_config(spec)
    assert config.test_for("p", "numerical") == "hellinger"
    assert config.test_for("age", "numerical") is None  # Evidently's choice
    spec = parse_spec({**SPEC, "prediction": {"column": "p", "threshold": 0.3}})
    assert drift_config(spec).threshold_for("p") == 0.3


def test_an_unknown_prediction_test_is_one_line_naming_the_model() -> None:
    spec = parse_spec({**SPEC, "prediction": {"column": "p", "test": "nope"}})
    with pytest.raises(SpecError, match="model 'credit'") as e:
        drift_config(spec)
    assert "nope" in str(e.value) and "\n" not in str(e.value)
