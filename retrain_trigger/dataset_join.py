"""Predictions joined to their labels by id, with the detectors' semantics, in batch. Pure.

The streaming detectors (`detectors/service/labels.py`, `LabelJoin`, and the TTL check in
`detectors/service/state.py`) decide label joins like this, which `join_labels` reproduces
for a whole export at once (vectorised: one sort and one `merge_asof`):

1. A prediction waits for its label from the moment it arrives.
2. A second prediction with the same id replaces the first if that one is still waiting
   (the later one wins); a prediction already labelled is not affected.
3. A label joins the prediction with its id that is waiting when the label arrives; the
   prediction stops waiting. A label with no waiting prediction (never seen, not yet
   arrived, already labelled) is unmatched: the first label of a prediction wins.
4. The join holds only if `label.ts - prediction.ts <= ttl_s` (event times); a later label
   still consumes the prediction but counts as expired, and the row stays unlabelled.

"Arrives" is the order in which records reach Kafka: the record timestamp (`arrival_ms`),
predictions before labels on a tie, then topic order. That is the order the detectors see
when they read both topics at the same pace. Two things the streaming join does that an
offline export has no reason to: evicting the oldest waiting predictions beyond
`labels.max_pending` (a memory bound) and reclaiming memory by watermark. The equivalence
is checked by a property test against `LabelJoin` itself (tests/unit/test_dataset_join.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EXPORT_COLUMNS", "JoinStats", "join_labels", "normalise_column"]

#: Columns every export has besides one column per feature.
EXPORT_COLUMNS = ("id", "ts", "version", "prediction", "label", "label_ts")


@dataclass(frozen=True, slots=True)
class JoinStats:
    predictions: int  # prediction events in the export window
    labels: int  # label events read
    joined: int  # predictions with a label (rows with a label in the export)
    expired: int  # labels that came more than ttl_s after their prediction
    unmatched: int  # labels with no waiting prediction
    duplicates: int  # predictions replaced by a later one with the same id while waiting
    unlabelled: int  # latest predictions of their id without a (timely) label

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _ordered(predictions: pd.DataFrame, labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Global arrival sequence numbers of every prediction and every label."""
    arrival = np.concatenate(
        [predictions["arrival_ms"].to_numpy(np.int64), labels["arrival_ms"].to_numpy(np.int64)]
    )
    kind = np.concatenate([np.zeros(len(predictions), np.int8), np.ones(len(labels), np.int8)])
    pos = np.concatenate([np.arange(len(predictions)), np.arange(len(labels))])
    order = np.lexsort((pos, kind, arrival))
    seq = np.empty(order.shape[0], dtype=np.int64)
    seq[order] = np.arange(order.shape[0])
    return seq[: len(predictions)], seq[len(predictions) :]


def join_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    ttl_s: float,
    *,
    keep_unlabelled: bool = False,
) -> tuple[pd.DataFrame, JoinStats]:
    """Join `labels` (id, ts, label, arrival_ms) to `predictions` (id, ts, arrival_ms, and
    any other columns, kept) in topic order; see the module docstring for the rules.

    Returns one row per prediction that got a label (with `label` and `label_ts`), plus,
    with `keep_unlabelled`, the latest prediction of every id without a label in time
    (label null), in arrival order.
    """
    if ttl_s <= 0:
        raise ValueError("ttl_s must be > 0")
    preds = predictions.reset_index(drop=True)
    labs = labels.reset_index(drop=True)
    p_seq, l_seq = _ordered(preds, labs)
    left = pd.DataFrame(
        {"id": labs["id"].to_numpy(object), "seq": l_seq, "lrow": np.arange(len(labs))}
    )
    right = pd.DataFrame(
        {"id": preds["id"].to_numpy(object), "seq": p_seq, "prow": np.arange(len(preds))}
    )
    matched = pd.merge_asof(
        left.sort_values("seq"),
        right.sort_values("seq"),
        on="seq",
        by="id",
        direction="backward",
        allow_exact_matches=False,  # sequence numbers are unique; a label never is a prediction
    )
    matched = matched[matched["prow"].notna()]
    prow_all = matched["prow"].to_numpy(np.int64)
    # the first label (in arrival order) of each prediction decides; later ones are unmatched
    first = ~pd.Series(prow_all).duplicated(keep="first").to_numpy()
    prow = prow_all[first]
    lrow = matched["lrow"].to_numpy(np.int64)[first]
    gap = labs["ts"].to_numpy(np.float64)[lrow] - preds["ts"].to_numpy(np.float64)[prow]
    in_time = gap <= ttl_s
    consumed = np.zeros(len(preds), dtype=bool)
    consumed[prow] = True
    # a prediction is replaced (a duplicate) when its id comes again before any label took it
    by_arrival = np.argsort(p_seq)
    superseded = np.zeros(len(preds), dtype=bool)
    superseded[by_arrival] = preds["id"].iloc[by_arrival].duplicated(keep="last").to_numpy()
    duplicates = int((superseded & ~consumed).sum())
    label_of = np.full(len(preds), -1, dtype=np.int64)
    label_of[prow[in_time]] = lrow[in_time]
    joined_rows = np.flatnonzero(label_of >= 0)
    keep = label_of >= 0
    # the latest prediction of an id that has no label: none came, or it came too late
    unlabelled = ~keep & ~superseded
    if keep_unlabelled:
        keep |= unlabelled
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(p_seq[rows], kind="stable")]
    out = preds.iloc[rows].drop(columns=["arrival_ms"]).reset_index(drop=True)
    has = label_of[rows] >= 0
    label_values = labs["label"].to_numpy(object)
    label_col = np.full(rows.shape[0], None, dtype=object)
    label_col[has] = label_values[label_of[rows][has]]
    label_ts = np.full(rows.shape[0], np.nan)
    label_ts[has] = labs["ts"].to_numpy(np.float64)[label_of[rows][has]]
    out["label"] = label_col
    out["label_ts"] = label_ts
    stats = JoinStats(
        predictions=len(preds),
        labels=len(labs),
        joined=int(joined_rows.shape[0]),
        expired=int((~in_time).sum()),
        unmatched=len(labs) - int(prow.shape[0]),
        duplicates=duplicates,
        unlabelled=int(unlabelled.sum()),
    )
    return out, stats


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def normalise_column(values: pd.Series, kind: str | None = None) -> pd.Series:
    """One column of JSON values as a type parquet can hold: `numerical` -> float64
    (non-numbers -> NaN), `categorical` -> strings, None -> inferred from the values
    (all numbers: float64; all booleans: bool; lists of numbers: lists; else strings)."""
    s = values.astype(object)
    present = s[s.notna()]
    if kind is None:
        types = set(map(type, present.tolist()))
        if not types or all(_is_number_type(t) for t in types):
            kind = "numerical"
        elif types <= {bool, np.bool_}:
            return s.astype("boolean")
        elif list in types:
            if types == {list} and all(all(map(_is_number, v)) for v in present):
                return s  # lists of scores (a kept multi-output prediction)
            kind = "categorical"  # mixed lists and scalars: strings, lists as JSON
        else:
            kind = "categorical"
    if kind == "numerical":
        return pd.to_numeric(
            s.where(~s.map(type).isin([bool, list, dict])), errors="coerce"
        ).astype(np.float64)
    return s.map(_key, na_action="ignore").astype("string")


def _is_number_type(t: type) -> bool:
    return issubclass(t, int | float | np.integer | np.floating) and not issubclass(t, bool)


def _key(v: Any) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float) and v.is_integer() and math.isfinite(v):
        return str(int(v))
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)
