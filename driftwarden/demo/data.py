"""The demo's synthetic credit data: features, the ground truth, drifted traffic. Pure.

Two things move when drift starts, as they do in production:
- the inputs (covariate drift): older, richer customers with shorter tenure, more from NL and
  on the app — what the detectors see without any label;
- the relationship between inputs and outcome (concept drift): in the drifted world a high
  credit-line utilisation *lowers* the default risk instead of raising it, so the model
  trained on the reference world gets worse, and only a model retrained on drifted traffic
  gets its accuracy back. Labels are drawn from this ground truth, never from the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODEL = "credit"
VERSION = "v1"
NUMERICAL = ("age", "income", "tenure_months", "utilisation", "n_accounts")
CATEGORICAL = ("country", "channel")
FEATURES = NUMERICAL + CATEGORICAL
COUNTRIES = ("DE", "FR", "ES", "IT", "NL")
CHANNELS = ("web", "app", "branch")


@dataclass(frozen=True, slots=True)
class Drift:
    """How far the live traffic moves away from the reference once drift starts."""

    age_shift_sd: float = 1.0
    income_scale: float = 1.6
    tenure_scale: float = 0.5
    country_probs: tuple[float, ...] = (0.1, 0.1, 0.1, 0.1, 0.6)
    channel_probs: tuple[float, ...] = (0.2, 0.7, 0.1)
    utilisation_effect: float = -2.5  # the ground truth's utilisation coefficient (concept)


NO_DRIFT = Drift(
    age_shift_sd=0.0,
    income_scale=1.0,
    tenure_scale=1.0,
    country_probs=(0.35, 0.25, 0.2, 0.12, 0.08),
    channel_probs=(0.5, 0.35, 0.15),
    utilisation_effect=2.5,
)


def sample_rows(rng: np.random.Generator, n: int, drift: Drift = NO_DRIFT) -> dict[str, np.ndarray]:
    """n rows of the demo's features, as columns."""
    age = rng.normal(42 + 12 * drift.age_shift_sd, 12, n).clip(18, 95)
    return {
        "age": np.round(age, 1),
        "income": np.round(rng.lognormal(10.5, 0.5, n) * drift.income_scale, 2),
        "tenure_months": (rng.gamma(2.0, 18.0, n) * drift.tenure_scale).round(1),
        "utilisation": rng.beta(2, 5, n).round(4),
        "n_accounts": rng.poisson(3.0, n).astype(float) + rng.random(n).round(2),
        "country": rng.choice(COUNTRIES, n, p=drift.country_probs),
        "channel": rng.choice(CHANNELS, n, p=drift.channel_probs),
    }


def true_probability(columns: dict[str, np.ndarray], drift: Drift = NO_DRIFT) -> np.ndarray:
    """P(default) under the ground truth of the reference world (NO_DRIFT) or a drifted one."""
    u = (np.asarray(columns["utilisation"], dtype=float) - 2 / 7) / 0.16
    a = (np.asarray(columns["age"], dtype=float) - 42) / 12
    inc = np.log(np.maximum(np.asarray(columns["income"], dtype=float), 1.0) / 36_315) / 0.5
    ten = (np.asarray(columns["tenure_months"], dtype=float) - 36) / 25
    web = np.asarray(columns["channel"]) == "web"
    z = drift.utilisation_effect * u + 0.8 * a - 1.0 * inc - 0.5 * ten + 0.6 * web - 0.3
    return 1.0 / (1.0 + np.exp(-z))


def labels_for(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Outcomes drawn from the ground truth's probabilities."""
    return (rng.random(len(probabilities)) < probabilities).astype(np.int64)


def training_frame(n: int = 20_000, seed: int = 7):  # -> pandas.DataFrame
    """Reference-world rows with their true outcome (`target`): what v1 is trained on and
    what the detectors compare live traffic with."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = sample_rows(rng, n)
    frame = pd.DataFrame(columns)
    frame["target"] = labels_for(true_probability(columns), rng)
    return frame


def spec_document(
    reference_path: str, window_rows: int, window_seconds: float | None = None
) -> dict[str, object]:
    window: dict[str, object] = {"rows": window_rows}
    if window_seconds is not None:
        window["duration_s"] = window_seconds
    return {
        "model": MODEL,
        "features": [{"name": f, "type": "numerical"} for f in NUMERICAL]
        + [{"name": f, "type": "categorical"} for f in CATEGORICAL],
        # A bounded distance for the canary's prediction check (see the demo's policy).
        "prediction": {"column": "prediction", "type": "probability", "test": "hellinger"},
        "target": {"column": "target", "type": "class"},
        "reference": {"path": reference_path},
        "window": window,
        # Per-feature thresholds calibrated on the reference for this window size, so that
        # reference-like windows show no drifted feature (Evidently's fixed ones flag some).
        "drift": {"thresholds": "calibrated"},
        "performance": {"metrics": ["accuracy", "roc_auc", "log_loss"]},
        "labels": {"join_ttl_s": 600},
    }
