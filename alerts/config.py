"""The thresholds and durations the alert rules are generated from.

One YAML file (`alerts/config.yaml`) holds the defaults that apply to every model and, under
`models:`, per-model overrides of the minimum window size and the performance floors and
ceilings. `load_config` validates it; a problem is reported as one line naming the field.

Durations are Prometheus durations (`30s`, `15m`, `1h`, `7d`); shares and thresholds are
plain numbers. Every default below says why it is what it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from driftwarden.errors import DriftwardenError

DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.yaml")

_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_MODEL = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

#: Performance metrics where higher is better (a floor applies) and lower is better (a
#: ceiling applies). Names as `driftwarden_model_performance{metric}` exports them.
HIGHER_IS_BETTER: tuple[str, ...] = ("accuracy", "f1", "precision", "recall", "roc_auc")
LOWER_IS_BETTER: tuple[str, ...] = ("log_loss", "mae", "mape", "rmse")
PerformanceMetric = Literal[
    "accuracy", "f1", "precision", "recall", "roc_auc", "log_loss", "mae", "mape", "rmse"
]
QualityCheck = Literal["missing", "out_of_range", "unseen_category", "type_error"]


def _duration(v: str) -> str:
    if not _DURATION.match(v):
        raise ValueError(f"{v!r} is not a Prometheus duration (e.g. 30s, 15m, 1h, 7d)")
    return v


Duration = Annotated[str, AfterValidator(_duration)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class AlertsConfigError(DriftwardenError):
    """The alert configuration file is missing or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DriftAlert(_Strict):
    """Dataset drift: the detectors' verdict stayed 'drifted' for `for` (sustained).
    15m is several scrapes and, for short windows, several windows: one noisy window does
    not retrain a model."""

    for_: Duration = Field("15m", alias="for")


class SequentialDriftAlert(_Strict):
    """Sequential (CUSUM) alarm: the dataset statistic or any feature's statistic reached its
    alarm limit (`driftwarden_*_drift_sequential` >= 1). CUSUM already accumulates evidence
    over windows, so a short hold (5m: a few scrapes) only rides out a restart or a reset."""

    for_: Duration = Field("5m", alias="for")


class FeatureDriftAlert(_Strict):
    """A feature flagged as drifted in at least `min_fraction` of the samples over
    `range`. 80% of an hour tolerates a window or two of flapping but not a coin toss."""

    range: Duration = "1h"
    min_fraction: Share = 0.8
    for_: Duration = Field("15m", alias="for")


class PredictionDriftAlert(_Strict):
    """The prediction drift score (no 0/1 verdict is exported for it) judged like
    Evidently judges a column: p-value tests drift at p <= `pvalue_threshold`, distance
    tests at distance >= `distance_threshold`. Tests not listed in `pvalue_tests` are
    treated as distances."""

    pvalue_tests: tuple[str, ...] = (
        "anderson",
        "chisquare",
        "cramer_von_mises",
        "epps_singleton",
        "fisher_exact",
        "g_test",
        "ks",
        "mannw",
        "t_test",
        "z",
    )
    pvalue_threshold: Share = 0.05
    distance_threshold: float = Field(0.1, gt=0)
    for_: Duration = Field("15m", alias="for")


class PerformanceThresholds(_Strict):
    """Absolute bounds per metric: a floor for higher-is-better metrics, a ceiling for
    error metrics. A `null` in a model's override switches the default off for it."""

    floors: dict[PerformanceMetric, float | None] = Field(default_factory=dict)
    ceilings: dict[PerformanceMetric, float | None] = Field(default_factory=dict)

    @field_validator("floors")
    @classmethod
    def _floor_metrics(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        bad = sorted(set(v) - set(HIGHER_IS_BETTER))
        if bad:
            raise ValueError(f"floors apply to {', '.join(HIGHER_IS_BETTER)}, not {bad}")
        return v

    @field_validator("ceilings")
    @classmethod
    def _ceiling_metrics(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        bad = sorted(set(v) - set(LOWER_IS_BETTER))
        if bad:
            raise ValueError(f"ceilings apply to {', '.join(LOWER_IS_BETTER)}, not {bad}")
        return v


class PerformanceAlert(PerformanceThresholds):
    """Defaults: only scale-free metrics get a floor (ROC AUC 0.7 is 'barely useful';
    accuracy depends on class balance, so no default). Error metrics have units, so no
    default ceilings: set them per model."""

    floors: dict[PerformanceMetric, float | None] = Field(default_factory=lambda: {"roc_auc": 0.7})
    for_: Duration = Field("15m", alias="for")


class PerformanceDropAlert(_Strict):
    """Current window worse than the model version's own average over `baseline_range`
    ending `baseline_offset` ago, by more than `max_relative_drop` (relative). The offset
    keeps the drop itself out of its baseline."""

    max_relative_drop: Share = 0.1
    baseline_range: Duration = "7d"
    baseline_offset: Duration = "1h"
    #: How often the (expensive, slowly changing) baseline is recomputed.
    baseline_interval: Duration = "1m"
    for_: Duration = Field("30m", alias="for")


class DataQualityAlert(_Strict):
    """Share of rows failing a check, per feature. Missing values are common in real data
    (10%); out-of-range and unseen categories are drift-like (5%); type errors mean a broken
    producer (1%)."""

    max_share: dict[QualityCheck, Share] = Field(
        default_factory=lambda: {
            "missing": 0.1,
            "out_of_range": 0.05,
            "unseen_category": 0.05,
            "type_error": 0.01,
        }
    )
    for_: Duration = Field("15m", alias="for")


class TrafficAlert(_Strict):
    """No prediction consumed for a model that has a counter (so it had traffic since the
    detectors started) for `for`, on top of the 5m rate window."""

    for_: Duration = Field("15m", alias="for")


class CollectorAlerts(_Strict):
    """`job`: the scrape job of the collector sidecars (the Helm chart's PodMonitor).
    Any drop is data loss, so the threshold is 'more than zero, for 5m'. The spool
    growing for 15m means Kafka has been unreachable or too slow for that long."""

    job: str = "driftwarden-collector"
    dropped_for: Duration = "5m"
    spool_range: Duration = "10m"
    spool_for: Duration = "15m"
    down_for: Duration = "2m"


class DetectorAlerts(_Strict):
    """Consumer lag above `lag_min` messages and still growing over `lag_range`: the
    detectors fall behind. `job`: the detectors' scrape job."""

    job: str = "driftwarden-detectors"
    lag_min: int = Field(1000, ge=0)
    lag_range: Duration = "10m"
    lag_for: Duration = "10m"
    down_for: Duration = "2m"


class RetrainAlerts(_Strict):
    """A retraining Job failed (`driftwarden_retrain_jobs_total{outcome="failed"}` grew
    within `range`): the drift that asked for it is still unaddressed. Held for `for` so a
    trigger restart's counter reset cannot flap it."""

    range: Duration = "1h"
    for_: Duration = Field("1m", alias="for")


class CanaryAlerts(_Strict):
    """A canary rollout was rolled back (`driftwarden_rollouts_total{outcome="rolled_back"}`
    grew within `range`): the retrained version was worse than the stable one, or could not
    be judged in time. Held for `for` so a controller restart's counter reset cannot flap it."""

    range: Duration = "1h"
    for_: Duration = Field("1m", alias="for")


class InjectorAlerts(_Strict):
    """The sidecar injector: opted-in pods running without the sidecar for `missing_for`
    (the injector was down when they were admitted: their traffic is not captured), and a
    webhook serving certificate that expires within `cert_min_days`."""

    missing_for: Duration = "10m"
    cert_min_days: float = Field(14, gt=0)
    cert_for: Duration = "10m"


class ModelOverride(_Strict):
    """Per-model settings; anything left out uses the defaults."""

    min_window_rows: int | None = Field(None, ge=1)
    performance: PerformanceThresholds = PerformanceThresholds()


class AlertsConfig(_Strict):
    """Everything the rule generator needs. `min_window_rows`: a window with fewer rows
    never raises a model alert (500 rows keep a KS/chi-square test's false-positive rate and
    a share's noise small; see docs/alerts.md)."""

    runbook_base_url: str = "docs/alerts.md"
    min_window_rows: int = Field(500, ge=1)
    dataset_drift: DriftAlert = DriftAlert()
    feature_drift: FeatureDriftAlert = FeatureDriftAlert()
    sequential_drift: SequentialDriftAlert = SequentialDriftAlert()
    prediction_drift: PredictionDriftAlert = PredictionDriftAlert()
    performance: PerformanceAlert = PerformanceAlert()
    performance_drop: PerformanceDropAlert = PerformanceDropAlert()
    data_quality: DataQualityAlert = DataQualityAlert()
    traffic: TrafficAlert = TrafficAlert()
    collector: CollectorAlerts = CollectorAlerts()
    detectors: DetectorAlerts = DetectorAlerts()
    retrain: RetrainAlerts = RetrainAlerts()
    canary: CanaryAlerts = CanaryAlerts()
    injector: InjectorAlerts = InjectorAlerts()
    models: dict[str, ModelOverride] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _model_names(cls, v: dict[str, ModelOverride]) -> dict[str, ModelOverride]:
        for name in v:
            if not _MODEL.match(name):
                raise ValueError(
                    f"{name!r}: a model name is 1-128 letters, digits, '_', '.', ':' or '-'"
                )
        return v

    def with_for(self, duration: str) -> AlertsConfig:
        """A copy with every alert's `for` (and hold) duration set to `duration`: what the
        integration and end-to-end tests use so that an alert fires within seconds."""
        _duration(duration)
        update: dict[str, BaseModel] = {}
        for name in type(self).model_fields:
            part = getattr(self, name)
            if not isinstance(part, BaseModel):
                continue
            fields = {
                f: duration for f in type(part).model_fields if f == "for_" or f.endswith("_for")
            }
            if fields:
                update[name] = part.model_copy(update=fields)
        return self.model_copy(update=update)


def load_config(path: Path | str | None = None) -> AlertsConfig:
    """Read and validate an alerts config file (default: the one next to this module)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise AlertsConfigError(f"{path}: cannot read ({e.strerror or e})") from e
    except yaml.YAMLError as e:
        raise AlertsConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise AlertsConfigError(f"{path}: expected a mapping at the top level")
    try:
        return AlertsConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise AlertsConfigError(f"{path}: {where}: {err['msg']}") from e
