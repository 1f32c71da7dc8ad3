"""Model monitoring spec: valid files load; every invalid one names the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwarden.errors import SpecError
from driftwarden.spec import ModelSpec, dump_spec, load_spec, load_specs, parse_spec

VALID = {
    "model": "credit-risk",
    "features": [{"name": "age", "type": "numerical"}, {"name": "country", "type": "categorical"}],
    "prediction": {"column": "score", "type": "probability"},
    "target": {"column": "defaulted"},
    "reference": {"path": "data/ref.parquet"},
    "window": {"rows": 5000, "duration_s": 300},
    "drift": {"drift_share": 0.3, "fdr_alpha": 0.05},
    "performance": {"metrics": ["accuracy", "roc_auc"]},
    "labels": {"join_ttl_s": 3600},
}


def _write(tmp_path: Path, doc: object, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return p


def test_a_valid_spec_loads_with_paths_resolved_against_its_folder(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, VALID))
    assert spec.model == "credit-risk"
    assert spec.feature_names == ["age", "country"]
    assert spec.feature("country").type == "categorical"
    assert spec.reference is not None
    assert spec.reference.path == (tmp_path / "data/ref.parquet").resolve()
    assert spec.window.rows == 5000 and spec.window.duration_s == 300
    assert spec.drift.drift_share == 0.3 and spec.drift.fdr_alpha == 0.05
    assert spec.performance.metrics == ["accuracy", "roc_auc"]


def test_defaults_are_evidently_compatible() -> None:
    spec = parse_spec({"model": "m", "features": [{"name": "a", "type": "numerical"}]})
    assert spec.drift.numerical_test == "auto" and spec.drift.categorical_test == "auto"
    assert spec.drift.drift_share == 0.5 and spec.drift.threshold is None
    assert spec.drift.fdr_alpha is None and spec.drift.min_rows == 0
    assert not spec.drift.missing_share_drift and not spec.drift.unseen_category_drift
    assert spec.drift.chisquare_min_expected is None and not spec.drift.multivariate.enabled


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model": "bad name!"}, "model: must be 1-128 characters"),
        ({"features": []}, "features: List should have at least 1 item"),
        (
            {"features": [{"name": "age", "type": "text"}]},
            "features[0] (age).type: Input should be 'numerical' or 'categorical'",
        ),
        (
            {
                "features": [
                    {"name": "a", "type": "numerical"},
                    {"name": "a", "type": "categorical"},
                ]
            },
            "duplicate name(s) a",
        ),
        ({"prediction": {"column": "age"}}, "prediction.column: 'age' is also listed as a feature"),
        (
            {"prediction": {"type": "ranking"}},
            "prediction.type: Input should be 'class', 'probability' or 'regression'",
        ),
        ({"reference": {"path": "ref.json"}}, "reference.path: must be a .parquet or .csv file"),
        ({"window": {"rows": None}}, "window: needs rows or duration_s"),
        ({"window": {"rows": 0}}, "window.rows: Input should be greater than or equal to 1"),
        ({"window": {"mode": "sliding"}}, "a sliding window needs rows and step_rows"),
        (
            {"drift": {"drift_share": 1.5}},
            "drift.drift_share: Input should be less than or equal to 1",
        ),
        ({"drift": {"fdr": 0.05}}, "drift.fdr: Extra inputs are not permitted"),
        (
            {"performance": {"metrics": ["accuracy", "bleu"]}},
            "performance.metrics[1]: Input should be",
        ),
        ({"labels": {"join_ttl_s": -5}}, "labels.join_ttl_s: Input should be greater than 0"),
        ({"feature": []}, "feature: Extra inputs are not permitted"),
    ],
)
def test_invalid_specs_name_the_field_and_the_problem(
    tmp_path: Path, change: dict, expected: str
) -> None:
    doc = {**VALID, **change}
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, doc))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "spec.yaml"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: [unclosed", "invalid YAML at line"),
        ("- just\n- a list\n", "expected a mapping at the top level, got list"),
        ("", "expected a mapping at the top level, got NoneType"),
    ],
)
def test_unparseable_files_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        load_spec(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")


def test_load_specs_reads_a_folder_and_rejects_duplicate_models(tmp_path: Path) -> None:
    _write(tmp_path, VALID, "a.yaml")
    _write(tmp_path, {**VALID, "model": "other"}, "b.yml")
    assert sorted(load_specs(tmp_path)) == ["credit-risk", "other"]
    _write(tmp_path, VALID, "c.yaml")
    with pytest.raises(SpecError, match="already defined"):
        load_specs(tmp_path)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
            st.sampled_from(["numerical", "categorical"]),
        ),
        min_size=1,
        max_size=10,
        unique_by=lambda t: t[0],
    ),
    st.integers(min_value=1, max_value=10**6),
)
def test_dump_then_parse_is_the_same_spec(features: list[tuple[str, str]], rows: int) -> None:
    spec = parse_spec(
        {
            "model": "m",
            "features": [{"name": n, "type": t} for n, t in features],
            "window": {"rows": rows},
        }
    )
    again = parse_spec(yaml.safe_load(dump_spec(spec)))
    assert again == spec
    assert isinstance(again, ModelSpec)
