"""The demo's synthetic credit model: features, the model itself, and drifted traffic. Pure."""

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


NO_DRIFT = Drift(
    age_shift_sd=0.0,
    income_scale=1.0,
    tenure_scale=1.0,
    country_probs=(0.35, 0.25, 0.2, 0.12, 0.08),
    channel_probs=(0.5, 0.35, 0.15),
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


def score(rows: list[dict[str, object]]) -> list[float]:
    """The 'model': a fixed logistic score of default risk."""
    out = []
    for r in rows:
        z = (
            -2.0
            + 0.03 * (float(r["age"]) - 42)  # type: ignore[arg-type]
            - 0.4 * np.log(max(float(r["income"]), 1.0) / 36_000)  # type: ignore[arg-type]
            + 2.5 * float(r["utilisation"])  # type: ignore[arg-type]
            - 0.01 * float(r["tenure_months"])  # type: ignore[arg-type]
            + (0.3 if r["channel"] == "web" else 0.0)
        )
        out.append(round(float(1.0 / (1.0 + np.exp(-z))), 6))
    return out


def labels_for(probabilities: list[float], rng: np.random.Generator) -> list[int]:
    """Ground truth drawn from the model's own probabilities (a well-calibrated model)."""
    return [int(rng.random() < p) for p in probabilities]


def reference_frame(n: int = 20_000, seed: int = 7):  # -> pandas.DataFrame
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = sample_rows(rng, n)
    frame = pd.DataFrame(columns)
    probs = score(frame.to_dict("records"))
    frame["prediction"] = probs
    frame["target"] = labels_for(probs, rng)
    return frame


def spec_document(reference_path: str, window_rows: int) -> dict[str, object]:
    return {
        "model": MODEL,
        "features": [{"name": f, "type": "numerical"} for f in NUMERICAL]
        + [{"name": f, "type": "categorical"} for f in CATEGORICAL],
        "prediction": {"column": "prediction", "type": "probability"},
        "target": {"column": "target", "type": "class"},
        "reference": {"path": reference_path},
        "window": {"rows": window_rows},
        "performance": {"metrics": ["accuracy", "roc_auc", "log_loss"]},
        "labels": {"join_ttl_s": 600},
    }
