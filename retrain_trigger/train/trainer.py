"""One training run, from a data frame to a gated model: split, encode, fit, evaluate, gate.

No disk or network I/O here (the entry point `retrain_trigger.train.__main__` reads the
files and writes the artifact); the only heavy dependency is torch, for `fit`.

Rows are split once, with the seed: `holdout_fraction` of them form the holdout on which
the new model, the current model and the constant baseline are all measured (the gate's
evidence), `valid_fraction` of the rest drive early stopping, the remainder trains.
Encoders are fitted on the training rows only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from driftwarden.errors import DriftwardenError
from driftwarden.spec import ModelSpec
from retrain_trigger.train.encoding import FeatureEncoder, LabelEncoder
from retrain_trigger.train.fit import EpochReport, FitResult, FitSettings, fit
from retrain_trigger.train.gate import (
    GATE_METRICS,
    GateResult,
    baseline_classification,
    baseline_regression,
    classification_metrics,
    default_gate_metric,
    evaluate_gate,
    regression_metrics,
)
from retrain_trigger.train.model import Architecture, Predictor

__all__ = ["TrainOutcome", "TrainSettings", "resolve_label_column", "split_indices", "train"]


@dataclass(frozen=True, slots=True)
class TrainSettings:
    fit: FitSettings = field(default_factory=FitSettings)
    holdout_fraction: float = 0.2  # share of labelled rows kept for the gate's comparison
    valid_fraction: float = 0.1  # share of the remaining rows used for early stopping
    hidden: tuple[int, ...] = (128, 64)  # widths of the MLP's hidden layers
    dropout: float = 0.1
    gate_metric: str | None = None  # None: log_loss (classes) / rmse (regression)
    gate_tolerance: float = 0.01  # new may be at most this fraction worse than current


@dataclass(frozen=True)
class TrainOutcome:
    fit: FitResult
    arch: Architecture
    features: FeatureEncoder
    labels: LabelEncoder
    gate: GateResult
    rows: dict[str, int]
    holdout: dict[str, dict[str, float] | None]  # new, current, baseline


def resolve_label_column(frame: pd.DataFrame, spec: ModelSpec, choice: str | None) -> str:
    """`--label-column`, else the spec's target column when the data has it, else `label`."""
    if choice:
        if choice not in frame.columns:
            raise DriftwardenError(f"--label-column: the data has no column {choice!r}")
        return choice
    candidates = [spec.target.column] if spec.target is not None else []
    candidates.append("label")
    for c in candidates:
        if c in frame.columns:
            return c
    raise DriftwardenError(
        f"the data has no label column (looked for {' or '.join(map(repr, candidates))}); "
        "pass --label-column"
    )


def split_indices(
    n: int, holdout_fraction: float, valid_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (train, valid, holdout) row positions; each split gets at least one row."""
    if n < 3:
        raise DriftwardenError(f"only {n} labelled row(s); the trainer needs at least 3")
    perm = np.random.default_rng(seed).permutation(n)
    n_hold = min(max(1, round(n * holdout_fraction)), n - 2)
    n_valid = min(max(1, round((n - n_hold) * valid_fraction)), n - n_hold - 1)
    return perm[n_hold + n_valid :], perm[n_hold : n_hold + n_valid], perm[:n_hold]


def _task(spec: ModelSpec) -> str:
    return spec.target.type if spec.target is not None else "class"


def holdout_metrics(
    predictor: Predictor, frame: pd.DataFrame, labels: pd.Series
) -> dict[str, float]:
    """Metrics of any predictor (the new or the current model) on the same holdout rows."""
    out = predictor.predict(frame)
    enc = predictor.labels
    if enc.task == "class":
        return classification_metrics(out, enc.transform(labels), enc.positive_index)
    actual = LabelEncoder("regression").transform(labels).astype(np.float64)
    return regression_metrics(out, actual)


def train(
    frame: pd.DataFrame,
    spec: ModelSpec,
    label_column: str,
    settings: TrainSettings,
    device: torch.device,
    current: Predictor | None = None,
    on_epoch: Callable[[EpochReport], None] = lambda _: None,
) -> TrainOutcome:
    task = _task(spec)
    metric = settings.gate_metric or default_gate_metric(task)
    if metric not in GATE_METRICS[task]:
        raise DriftwardenError(
            f"--gate-metric: {metric!r} does not apply to a {task} target "
            f"(one of {', '.join(GATE_METRICS[task])})"
        )
    missing = [f for f in spec.feature_names if f not in frame.columns]
    if missing:
        raise DriftwardenError(f"the data has no column(s) {', '.join(map(repr, missing))}")
    labelled = frame[frame[label_column].notna()].reset_index(drop=True)
    tr, va, ho = split_indices(
        len(labelled), settings.holdout_fraction, settings.valid_fraction, settings.fit.seed
    )
    train_rows, valid_rows, hold_rows = labelled.iloc[tr], labelled.iloc[va], labelled.iloc[ho]
    features = FeatureEncoder.fit(train_rows, spec)
    labels = LabelEncoder.fit(labelled[label_column], spec)
    y_train = labels.transform(train_rows[label_column])
    y_valid = labels.transform(valid_rows[label_column])
    arch = Architecture.for_data(features, labels, settings.hidden, settings.dropout)
    result = fit(
        arch,
        task,
        (features.transform(train_rows), y_train),
        (features.transform(valid_rows), y_valid),
        settings.fit,
        device,
        on_epoch,
    )
    new_predictor = Predictor(result.module, features, labels, device)
    y_hold = hold_rows[label_column]
    new = holdout_metrics(new_predictor, hold_rows, y_hold)
    if task == "class":
        baseline = baseline_classification(
            y_train, labels.transform(y_hold), labels.n_outputs, labels.positive_index
        )
    else:
        baseline = baseline_regression(
            y_train.astype(np.float64) * labels.std + labels.mean,
            LabelEncoder("regression").transform(y_hold).astype(np.float64),
        )
    current_metrics = None
    if current is not None:
        if current.labels.task != task:
            raise DriftwardenError(
                f"--current-artifact: the current model is a {current.labels.task} model, "
                f"the spec's target is {task}"
            )
        try:
            current_metrics = holdout_metrics(current, hold_rows, y_hold)
        except DriftwardenError as e:
            raise DriftwardenError(f"--current-artifact: {e}") from e
    gate = evaluate_gate(metric, new, baseline, current_metrics, settings.gate_tolerance)
    if not math.isfinite(result.best_valid_loss):
        gate = GateResult(
            False,
            metric,
            gate.new,
            gate.current,
            gate.baseline,
            gate.tolerance,
            "training diverged (non-finite validation loss)",
        )
    return TrainOutcome(
        fit=result,
        arch=arch,
        features=features,
        labels=labels,
        gate=gate,
        rows={
            "labelled": len(labelled),
            "unlabelled": len(frame) - len(labelled),
            "train": len(tr),
            "valid": len(va),
            "holdout": len(ho),
        },
        holdout={"new": new, "current": current_metrics, "baseline": baseline},
    )


def outcome_metrics(outcome: TrainOutcome) -> dict[str, Any]:
    """The training and evaluation part of metrics.json."""
    f = outcome.fit
    return {
        "rows": outcome.rows,
        "training": {
            "epochs_run": f.epochs_run,
            "best_epoch": f.best_epoch,
            "best_valid_loss": f.best_valid_loss,
            "device": f.device,
            "mixed_precision": f.mixed_precision,
            "duration_s": round(f.duration_s, 3),
            "rows_per_s": round(f.rows_per_s, 1),
        },
        "holdout": outcome.holdout,
        "gate": outcome.gate.as_dict(),
    }
