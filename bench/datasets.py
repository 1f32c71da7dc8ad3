"""Generated data for the drift benchmark: 27 columns, reference and current frames.

20 numerical columns (one with missing values, two integer counts), 5 categorical
columns (one with categories the reference never saw), a prediction and a target.
About a third of the columns drift in the current frame; the rest are undrifted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["make_frames", "make_wide_frames"]

_LEVELS_10 = np.array([f"L{i}" for i in range(10)])
_LEVELS_50 = np.array([f"city_{i:02d}" for i in range(50)])


def _zipf_probs(k: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** s
    return w / w.sum()


def _frame(n: int, rng: np.random.Generator, drifted: bool) -> pd.DataFrame:
    d = 1.0 if drifted else 0.0
    cols: dict[str, np.ndarray] = {}
    # n00-n09: normals; n00, n03, n06 shift by 0.5 sd, n09 widens, the rest stay.
    for i in range(10):
        shift = 0.5 * d if i in (0, 3, 6) else 0.0
        scale = 1.0 + 0.5 * d if i == 9 else 1.0
        cols[f"n{i:02d}_normal"] = rng.normal(10.0 * i + shift, scale, n)
    cols["n10_lognormal"] = rng.lognormal(0.0, 0.75 + 0.25 * d, n)
    cols["n11_uniform"] = rng.uniform(0.0, 1.0, n)
    cols["n12_int_count_lo"] = rng.poisson(1.5, n)
    cols["n13_int_count_hi"] = rng.poisson(50.0 + 5.0 * d, n)
    cols["n14_exponential"] = rng.exponential(2.0, n)
    with_missing = rng.normal(0.0, 1.0, n)
    with_missing[rng.random(n) < 0.1 + 0.1 * d] = np.nan
    cols["n15_with_missing"] = with_missing
    mix = rng.random(n) < 0.5 + 0.2 * d
    cols["n16_bimodal"] = np.where(mix, rng.normal(-2.0, 1.0, n), rng.normal(2.0, 1.0, n))
    cols["n17_student_t"] = rng.standard_t(5, n)
    cols["n18_beta"] = rng.beta(2.0, 5.0, n)
    cols["n19_gamma"] = rng.gamma(2.0 + d, 2.0, n)
    cols["c0_colour"] = rng.choice(np.array(["red", "green", "blue"]), n, p=[0.5, 0.3, 0.2])
    cols["c1_level"] = rng.choice(_LEVELS_10, n, p=_zipf_probs(10, 1.0 + 0.5 * d))
    cols["c2_city"] = rng.choice(_LEVELS_50, n, p=_zipf_probs(50, 1.1))
    cols["c3_flag"] = rng.random(n) < 0.3
    device = rng.choice(np.array(["ios", "android", "web"]), n, p=[0.4, 0.4, 0.2]).astype(object)
    if drifted:
        unseen = rng.random(n) < 0.05
        device[unseen] = rng.choice(np.array(["tv", "watch", "car"]), int(unseen.sum()))
    cols["c4_device"] = device
    logit = 0.8 * (cols["n00_normal"] - 0.0) + 0.5 * (cols["n03_normal"] - 30.0) - 0.5
    prob = 1.0 / (1.0 + np.exp(-logit))
    cols["prediction"] = prob
    cols["target"] = (rng.random(n) < prob).astype(np.int64)
    frame = pd.DataFrame(cols)
    for name in ("c0_colour", "c1_level", "c2_city"):
        frame[name] = frame[name].astype(object)
    return frame


def make_frames(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (reference, current) with `n` rows each; the current frame has drift."""
    rng = np.random.default_rng(seed)
    return _frame(n, rng, drifted=False), _frame(n, rng, drifted=True)


def make_wide_frames(n: int, n_columns: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, current), `n` rows and `n_columns` feature columns each: blocks of the
    25 feature columns above (no prediction or target), every fourth block drifted."""
    rng = np.random.default_rng(seed)
    refs, curs = [], []
    for b in range(-(-n_columns // 25)):
        ref = _frame(n, rng, drifted=False).drop(columns=["prediction", "target"])
        cur = _frame(n, rng, drifted=b % 4 == 0).drop(columns=["prediction", "target"])
        names = [f"b{b:03d}_{c}" for c in ref.columns]
        ref.columns = cur.columns = names
        refs.append(ref)
        curs.append(cur)
    ref, cur = pd.concat(refs, axis=1), pd.concat(curs, axis=1)
    return ref.iloc[:, :n_columns], cur.iloc[:, :n_columns]
