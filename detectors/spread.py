"""How spread out a window's predictions are. Pure.

A model that answers one constant has spread 0 whatever the constant is; a retrained model
whose predictions moved (after a concept drift, say) keeps a spread of the same order as
the version it replaces. The canary's `prediction_spread` check compares the two versions'
spreads on the same traffic (docs/canary.md).

- probability and regression predictions: the standard deviation (missing values ignored);
- class predictions: 1 − the share of the most frequent predicted class.
"""

from __future__ import annotations

import numpy as np

__all__ = ["class_spread", "numeric_spread"]


def numeric_spread(values: np.ndarray) -> float | None:
    """Population standard deviation of the finite values (exactly 0 when they are all equal,
    where the mean's rounding would leave ~1e-16); None when there are none."""
    finite = values[np.isfinite(values)]
    if not finite.shape[0]:
        return None
    return 0.0 if finite.min() == finite.max() else float(finite.std())


def class_spread(codes: np.ndarray) -> float | None:
    """1 − the most frequent class's share among the present codes (codes < 0 are missing);
    None when no row has a class."""
    present = codes[codes >= 0]
    if not present.shape[0]:
        return None
    return 1.0 - float(np.bincount(present).max()) / present.shape[0]
