"""The one mapping from a model monitoring spec to the statistics core's options.

`driftwarden drift --spec` and the streaming service both call `drift_config`, so the same
spec gives the same tests, thresholds, verdicts and effect sizes in both. Pure.
"""

from __future__ import annotations

from detectors.drift import DriftConfig, DriftConfigError
from driftwarden.errors import SpecError
from driftwarden.spec import ModelSpec

__all__ = ["batch_column_types", "drift_config"]


def drift_config(spec: ModelSpec) -> DriftConfig:
    """The `DriftConfig` of a spec's `drift:` block and per-feature `test`/`threshold`.

    "auto" means Evidently's choice (None). An option the core rejects is a `SpecError`
    naming the model.
    """
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
