"""The export's batch label join equals the detectors' streaming join (`LabelJoin` plus the
TTL check of the detectors service) on any interleaving of predictions and labels: late
labels, missing labels, labels before their prediction, repeated ids, repeated labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.service.labels import LabelJoin
from retrain_trigger.dataset_join import join_labels, normalise_column

TTL = 100.0

_event = st.tuples(
    st.sampled_from(["p", "l"]),
    st.sampled_from(["a", "b", "c", "d", "e"]),  # few ids: duplicates and repeats are common
    st.floats(0, 400, allow_nan=False),  # event time
    st.integers(0, 50),  # arrival (record timestamp, ms): ties are common too
)


def frames(events: list[tuple[str, str, float, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    preds = [(i, ts, arr) for kind, i, ts, arr in events if kind == "p"]
    labs = [(i, ts, arr) for kind, i, ts, arr in events if kind == "l"]
    p = pd.DataFrame(preds, columns=["id", "ts", "arrival_ms"]).astype({"id": object})
    p["prow"] = np.arange(len(p))
    lab = pd.DataFrame(labs, columns=["id", "ts", "arrival_ms"]).astype({"id": object})
    lab["label"] = np.arange(len(lab))  # the label value names the label row
    return p, lab


def streaming(p: pd.DataFrame, lab: pd.DataFrame) -> tuple[set[tuple[int, int]], dict[str, int]]:
    """Feed the detectors' own LabelJoin in arrival order (predictions first on a tie)."""
    order = sorted(
        [(int(r.arrival_ms), 0, k) for k, r in enumerate(p.itertuples())]
        + [(int(r.arrival_ms), 1, k) for k, r in enumerate(lab.itertuples())]
    )
    join = LabelJoin(TTL, max_pending=10_000)
    pairs: set[tuple[int, int]] = set()
    expired = 0
    one = np.zeros(1)
    for _, kind, k in order:
        if kind == 0:
            join.add(
                [p.id[k]],
                one.astype(np.int32),
                np.array([float(k)]),
                one.astype(np.int32),
                np.array([p.ts[k]]),
            )
            continue
        found = join.join([lab.id[k]])
        if found.found[0]:
            if lab.ts[k] - float(found.ts[0]) > TTL:  # detectors/service/state.py's TTL check
                expired += 1
            else:
                pairs.add((int(found.score[0]), k))
    counts = join.counts.as_dict()
    return pairs, {
        "joined": counts["joined"] - expired,
        "expired": expired,
        "unmatched": counts["unmatched"],
        "duplicates": counts["duplicate"],
    }


@given(st.lists(_event, max_size=40))
@settings(max_examples=300, deadline=None)
def test_batch_join_equals_the_streaming_join(events: list[tuple[str, str, float, int]]) -> None:
    p, lab = frames(events)
    out, stats = join_labels(p, lab, TTL)
    pairs, counts = streaming(p, lab)
    assert set(zip(out["prow"].tolist(), out["label"].tolist(), strict=True)) == pairs
    assert stats.joined == counts["joined"] == len(out)
    assert stats.expired == counts["expired"]
    assert stats.unmatched == counts["unmatched"]
    assert stats.duplicates == counts["duplicates"]


def test_rules_on_a_small_story() -> None:
    events = [
        ("l", "early", 1.0, 0),  # label before its prediction: unmatched
        ("p", "early", 0.0, 1),
        ("p", "a", 10.0, 2),
        ("l", "a", 20.0, 3),  # joins a
        ("l", "a", 21.0, 4),  # second label for a: unmatched (first label wins)
        ("p", "late", 10.0, 5),
        ("l", "late", 10.0 + TTL + 1, 6),  # after the TTL: expired
        ("p", "dup", 30.0, 7),
        ("p", "dup", 31.0, 8),  # replaces the first while it waits
        ("l", "dup", 40.0, 9),  # joins the second
        ("p", "never", 50.0, 10),  # no label at all
    ]
    p, lab = frames(events)
    out, stats = join_labels(p, lab, TTL)
    assert out["id"].tolist() == ["a", "dup"]
    assert out["ts"].tolist() == [10.0, 31.0] and out["label_ts"].tolist() == [20.0, 40.0]
    assert "arrival_ms" not in out.columns
    assert stats.as_dict() == {
        "predictions": 6,
        "labels": 5,
        "joined": 2,
        "expired": 1,
        "unmatched": 2,
        "duplicates": 1,
        "unlabelled": 3,
    }
    kept, _ = join_labels(p, lab, TTL, keep_unlabelled=True)
    assert kept["id"].tolist() == ["early", "a", "late", "dup", "never"]
    assert [v is None for v in kept["label"].tolist()] == [True, False, True, False, True]


def test_ttl_must_be_positive() -> None:
    p, lab = frames([])
    with pytest.raises(ValueError, match="ttl_s"):
        join_labels(p, lab, 0)


def test_normalise_column_types() -> None:
    num = normalise_column(pd.Series([1, 2.5, None, "x", True], dtype=object), "numerical")
    assert num.dtype == np.float64 and num.isna().tolist() == [False, False, True, True, True]
    cat = normalise_column(pd.Series(["DE", 3, 3.0, None, True], dtype=object), "categorical")
    assert cat.tolist()[:3] == ["DE", "3", "3"] and cat.tolist()[4] == "True"
    assert normalise_column(pd.Series([1, 2.5, None], dtype=object)).dtype == np.float64
    assert str(normalise_column(pd.Series([True, False], dtype=object)).dtype) == "boolean"
    mixed = normalise_column(pd.Series(["a", 1, [1, 2]], dtype=object))
    assert mixed.tolist() == ["a", "1", "[1, 2]"]
    lists = normalise_column(pd.Series([[0.1, 0.9], None, [0.5, 0.5]], dtype=object))
    assert lists.tolist()[0] == [0.1, 0.9]
