"""The model monitoring spec: one YAML document per model (DESIGN.md, "Model monitoring spec").

`load_spec` turns a file into a validated `ModelSpec`; every rejection names the field and
the problem in one line (`SpecError`). Relative paths inside a spec (the reference data)
are resolved against the spec file's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from driftwarden.config import parse_model, read_yaml
from driftwarden.errors import SpecError

FeatureType = Literal["numerical", "categorical"]
PredictionType = Literal["class", "probability", "regression"]
TargetType = Literal["class", "regression"]
MultiOutput = Literal["positive_class", "argmax", "list"]
PerformanceMetric = Literal[
    "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "mape"
]

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One input feature. `test`/`threshold` override the drift test for this feature only."""

    name: str = Field(min_length=1, max_length=256)
    type: FeatureType
    test: str | None = None
    threshold: float | None = None


class PredictionSpec(_Strict):
    """Where the prediction is and how a multi-output prediction is reduced to one value."""

    column: str = "prediction"
    type: PredictionType = "probability"
    # For a list of class probabilities: take the positive class's probability, the arg-max
    # label, or keep the list (no prediction drift test then).
    output: MultiOutput = "positive_class"
    positive_class: int = Field(default=1, ge=0, description="index of the positive class")
    classes: list[str] | None = None
    # The prediction drift test and threshold, as a feature's `test`/`threshold`.
    test: str | None = None
    threshold: float | None = None


class TargetSpec(_Strict):
    column: str = "target"
    type: TargetType = "class"
    positive_label: int | str = 1


class ReferenceSpec(_Strict):
    """Reference data: a parquet or CSV file, relative to the spec file's folder."""

    path: Path

    @field_validator("path")
    @classmethod
    def _known_format(cls, v: Path) -> Path:
        if v.suffix.lower() not in {".parquet", ".pq", ".csv"}:
            raise ValueError(f"must be a .parquet or .csv file, got {v.name!r}")
        return v


class WindowSpec(_Strict):
    """A window closes after `rows` rows or `duration_s` seconds, whichever comes first."""

    rows: int | None = Field(default=10_000, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    mode: Literal["tumbling", "sliding"] = "tumbling"
    # Sliding windows: evaluate every `step_rows` rows over the last `rows` rows.
    step_rows: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _some_bound(self) -> WindowSpec:
        if self.rows is None and self.duration_s is None:
            raise ValueError("needs rows or duration_s (or both)")
        if self.mode == "sliding" and (self.rows is None or self.step_rows is None):
            raise ValueError("a sliding window needs rows and step_rows")
        return self


class MultivariateOptions(_Strict):
    enabled: bool = False
    permutations: int = Field(default=200, ge=10)
    max_rows: int = Field(default=5_000, ge=10, description="rows sampled from each side")
    threshold: Probability = 0.05


class CalibrationOptions(_Strict):
    """How calibrated thresholds are set (docs/statistics.md, "Calibrated thresholds")."""

    false_alarm_rate: float = Field(
        default=0.01, gt=0.0, lt=1.0, description="share of model-days with any false flag"
    )
    windows_per_day: float | None = Field(
        default=None, gt=0, description="default: 86400 / window.duration_s, else 288"
    )
    replicates: int = Field(default=200, ge=20, le=5000)
    seed: int = Field(default=0, ge=0)


class SequentialOptions(_Strict):
    """CUSUM over each feature's per-window tail probabilities (needs calibrated thresholds)."""

    enabled: bool = False
    allowance: float = Field(default=1.5, gt=1.0, le=10.0)


class DriftOptions(_Strict):
    """Defaults reproduce Evidently 0.7's data-drift preset; every other option is opt-in."""

    numerical_test: str = "auto"
    categorical_test: str = "auto"
    threshold: float | None = None
    drift_share: Probability = 0.5
    fdr_alpha: Probability | None = None
    min_rows: int = Field(default=0, ge=0)
    missing_share_drift: bool = False
    unseen_category_drift: bool = False
    chisquare_min_expected: float | None = Field(default=None, gt=0)
    # Report an effect size (KS D, Cramér's V) next to every p-value (docs/statistics.md).
    effect_size: bool = False
    multivariate: MultivariateOptions = MultivariateOptions()
    # "evidently": each test's default (or `threshold`); "calibrated": from the reference.
    thresholds: Literal["evidently", "calibrated"] = "evidently"
    calibration: CalibrationOptions = CalibrationOptions()
    sequential: SequentialOptions = SequentialOptions()

    @model_validator(mode="after")
    def _calibrated_alone(self) -> DriftOptions:
        if self.thresholds == "calibrated":
            if self.threshold is not None:
                raise ValueError("threshold cannot be set with thresholds: calibrated")
            if self.fdr_alpha is not None:
                raise ValueError("fdr_alpha cannot be set with thresholds: calibrated")
        elif self.sequential.enabled:
            raise ValueError("sequential.enabled needs thresholds: calibrated")
        return self


class PerformanceSpec(_Strict):
    metrics: list[PerformanceMetric] = Field(default_factory=list)


class LabelsSpec(_Strict):
    join_ttl_s: float = Field(
        default=86_400.0, gt=0, description="how long a prediction waits for its label"
    )
    max_pending: int = Field(
        default=1_000_000, ge=1, description="bound on predictions waiting for a label"
    )


class ModelSpec(_Strict):
    model: str
    version: str | None = None
    features: list[FeatureSpec] = Field(min_length=1)
    prediction: PredictionSpec | None = None
    target: TargetSpec | None = None
    reference: ReferenceSpec | None = None
    window: WindowSpec = WindowSpec()
    drift: DriftOptions = DriftOptions()
    performance: PerformanceSpec = PerformanceSpec()
    labels: LabelsSpec = LabelsSpec()

    @field_validator("model")
    @classmethod
    def _model_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 1-128 characters of letters, digits, '_', '.', ':' or '-'")
        return v

    @model_validator(mode="after")
    def _unique_columns(self) -> ModelSpec:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features: duplicate name(s) {', '.join(dupes)}")
        for role, part in (("prediction", self.prediction), ("target", self.target)):
            if part is not None and part.column in names:
                raise ValueError(f"{role}.column: {part.column!r} is also listed as a feature")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)


def parse_spec(data: object, *, source: str = "spec", base_dir: Path | None = None) -> ModelSpec:
    """Validate an already-parsed YAML/JSON document."""
    spec = parse_model(data, ModelSpec, source=source, error=SpecError)
    if (
        spec.reference is not None
        and base_dir is not None
        and not spec.reference.path.is_absolute()
    ):
        spec = spec.model_copy(
            update={"reference": ReferenceSpec(path=(base_dir / spec.reference.path).resolve())}
        )
    return spec


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate one spec file."""
    p = Path(path)
    data = read_yaml(p, what="spec", error=SpecError)
    return parse_spec(data, source=str(p), base_dir=p.parent)


def load_specs(directory: str | Path) -> dict[str, ModelSpec]:
    """Every `*.yaml`/`*.yml` spec in a folder, keyed by model name (duplicates rejected)."""
    d = Path(directory)
    if not d.is_dir():
        raise SpecError(f"{d}: not a directory of spec files")
    specs: dict[str, ModelSpec] = {}
    for p in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
        spec = load_spec(p)
        if spec.model in specs:
            raise SpecError(f"{p}: model {spec.model!r} is already defined by another spec file")
        specs[spec.model] = spec
    return specs


def dump_spec(spec: ModelSpec) -> str:
    """YAML text of a spec, ready to edit: roles in full, tuning blocks only where changed."""
    data = spec.model_dump(mode="json", exclude_none=True)
    data["features"] = [
        {k: v for k, v in f.items() if k in ("name", "type") or v is not None}
        for f in data["features"]
    ]
    for block in ("drift", "performance", "labels"):
        changed = getattr(spec, block).model_dump(mode="json", exclude_defaults=True)
        if changed:
            data[block] = changed
        else:
            data.pop(block, None)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
