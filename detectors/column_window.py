"""Mergeable window state for one column.

A window is fed in batches (`update`) and two windows of the same column merge exactly
(``a += b``): numeric columns keep their finite values (the rank and distance tests need
every value, so the state is the values themselves, not a sketch), label columns keep a
count per value. Missing and infinite values are counted. `profile` summarises the window
the same way the reference was summarised, sorting the window's values once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from detectors.profile import (
    NUMERIC_FAMILIES,
    ColumnProfile,
    DtypeFamily,
    ProfileError,
    dtype_family,
    finite_values,
    label_counts,
    label_profile,
    numeric_profile,
)

__all__ = ["ColumnWindow"]


def _combine(name: str, a: DtypeFamily | None, b: DtypeFamily) -> DtypeFamily:
    if a is None or a == b:
        return b
    if {a, b} <= NUMERIC_FAMILIES:
        return "float"  # ints and floats together: what pandas.concat gives
    if a in NUMERIC_FAMILIES or b in NUMERIC_FAMILIES:
        raise ProfileError(
            f"column {name!r}: numbers in one batch, {b if a in NUMERIC_FAMILIES else a} values in another"
        )
    return "str" if "str" in (a, b) else "object"


class ColumnWindow:
    """Rows of one column seen since the last `_reset`; `update` and ``+=`` return self."""

    def __init__(self, name: str):
        self.name = name
        self._reset()

    def _reset(self) -> None:
        self._family: DtypeFamily | None = None
        self._chunks: list[np.ndarray] = []  # finite numeric values, row order
        self._label_parts: list[pd.Series] = []  # value counts per batch
        self._n_rows = 0
        self._n_missing = 0
        self._n_nonfinite = 0
        self._profile: ColumnProfile | None = None

    def update(self, values: Any) -> ColumnWindow:
        """Add one batch of values (Series, array or sequence)."""
        family = dtype_family(values)
        if family == "datetime":
            raise ProfileError(f"column {self.name!r}: datetime columns are not drift-tested")
        self._family = _combine(self.name, self._family, family)
        if family in NUMERIC_FAMILIES:
            clean, n_rows, n_missing, n_inf = finite_values(values)
            self._chunks.append(clean)
            self._n_missing += n_missing
            self._n_nonfinite += n_inf
        else:
            counts, n_rows = label_counts(values)
            self._label_parts.append(counts)
            self._n_missing += n_rows - int(counts.sum())
        self._n_rows += n_rows
        self._profile = None
        return self

    def __iadd__(self, other: ColumnWindow) -> ColumnWindow:
        """Merge another window of the same column into this one."""
        if other._family is None:
            return self
        self._family = _combine(self.name, self._family, other._family)
        self._chunks.extend(other._chunks)
        self._label_parts.extend(other._label_parts)
        self._n_rows += other._n_rows
        self._n_missing += other._n_missing
        self._n_nonfinite += other._n_nonfinite
        self._profile = None
        return self

    @property
    def n_rows(self) -> int:
        return self._n_rows

    @property
    def profile(self) -> ColumnProfile:
        """The window summarised like a reference column (computed once per change)."""
        if self._profile is None:
            self._profile = self._summarise()
            # The summary is a valid state for later updates and merges (order does not
            # matter to any test), so the window keeps it instead of a second copy.
            sample = self._profile.sample
            if self._profile.kind == "numeric":
                self._chunks = [sample.values]
            elif len(self._label_parts) > 1:
                self._label_parts = [pd.Series(sample.counts, index=sample.index)]
        return self._profile

    def _summarise(self) -> ColumnProfile:
        family = self._family or "float"
        if family in NUMERIC_FAMILIES:
            if len(self._chunks) == 1:
                clean = self._chunks[0]
            elif self._chunks:
                clean = np.concatenate(self._chunks)
            else:
                clean = np.zeros(0)
            return numeric_profile(
                self.name,
                family,
                clean,
                self._n_rows,
                self._n_missing,
                self._n_nonfinite,
                with_std=False,
            )
        if len(self._label_parts) == 1:
            counts = self._label_parts[0]
        else:
            counts = pd.concat(self._label_parts).groupby(level=0, sort=False).sum()
        return label_profile(self.name, family, counts, self._n_rows)
