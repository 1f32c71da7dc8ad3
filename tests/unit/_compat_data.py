"""Generated data sets for the Evidently compatibility suite (shared by its tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["mixed_frames"]


def _frame(n: int, rng: np.random.Generator, drift: float, side: str) -> pd.DataFrame:
    cur = side == "current"
    d = drift if cur else 0.0
    f_nan = rng.normal(d, 1.0, n)
    f_nan[rng.random(n) < 0.1] = np.nan
    f_nan[rng.random(n) < 0.02] = np.inf
    f_nan[rng.random(n) < 0.02] = -np.inf
    levels = np.array(["a", "b", "c", "d", "e", "f"])
    p = np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    if cur:
        p = (1 - d / 4) * p + (d / 4) * np.full(6, 1 / 6)
    s_unseen = rng.choice(np.array(["x", "y", "z"]), n).astype(object)
    if cur:
        s_unseen[rng.random(n) < 0.03] = "new_1"
        s_unseen[rng.random(n) < 0.01] = "new_2"
    s_nan = rng.choice(np.array(["p", "q", "r", "s"]), n).astype(object)
    s_nan[rng.random(n) < 0.05] = None
    s_nan[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "f_norm": rng.normal(d, 1.0, n),
            "f_nan_inf": f_nan,
            "f_const": np.full(n, 3.25),
            "f_const_moves": np.full(n, 1.0 + d),
            "f_few": rng.choice(
                np.array([0.5, 1.5, 2.5]), n, p=[0.5, 0.3, 0.2] if not cur else [0.4, 0.35, 0.25]
            ),
            "f_two": rng.choice(
                np.array([-1.0, 1.0]), n, p=[0.7, 0.3] if not cur else [0.65, 0.35]
            ),
            "f_skew": rng.lognormal(0.2 * d, 1.0, n),
            "i_lo": rng.poisson(1.5 + 0.2 * d, n),
            "i_hi": rng.integers(0, 40 + int(5 * d), n),
            "i_binary": (rng.random(n) < 0.4 + 0.05 * d).astype(np.int64),
            "s_cat": rng.choice(levels, n, p=p).astype(object),
            "s_unseen": s_unseen,
            "s_two": rng.choice(np.array(["yes", "no"]), n, p=[0.6, 0.4]).astype(object),
            "s_nan": s_nan,
            "b_flag": rng.random(n) < 0.3 + 0.05 * d,
            "c_dtype": pd.Categorical(rng.choice(np.array(["lo", "mid", "hi"]), n)),
        }
    )


def mixed_frames(
    n_ref: int, n_cur: int, seed: int, drift: float = 0.3
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, current) covering every column type and cleaning path Evidently has."""
    rng = np.random.default_rng(seed)
    return _frame(n_ref, rng, drift, "reference"), _frame(n_cur, rng, drift, "current")
