"""The demo's pure parts: its synthetic traffic drifts where it says, and the view renders."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from driftwarden.demo.data import (
    NO_DRIFT,
    Drift,
    reference_frame,
    sample_rows,
    score,
    spec_document,
)
from driftwarden.demo.view import Snapshot, render
from driftwarden.spec import parse_spec


def test_drift_moves_at_least_half_of_the_features() -> None:
    rng = np.random.default_rng(0)
    ref = sample_rows(rng, 20_000, NO_DRIFT)
    cur = sample_rows(rng, 20_000, Drift())
    moved = [
        name
        for name in ref
        if (
            abs(np.mean(cur[name]) - np.mean(ref[name])) > 0.2 * np.std(ref[name])
            if ref[name].dtype.kind == "f"
            else max(
                abs(np.mean(cur[name] == v) - np.mean(ref[name] == v)) for v in np.unique(ref[name])
            )
            > 0.1
        )
    ]
    assert len(moved) / len(ref) > 0.5, moved


def test_reference_and_spec_agree() -> None:
    frame = reference_frame(n=500)
    spec = parse_spec(spec_document("ref.parquet", 500))
    assert set(spec.feature_names) | {"prediction", "target"} == set(frame.columns)
    assert frame["prediction"].between(0, 1).all()
    assert score([frame.iloc[0].to_dict()])[0] == frame["prediction"].iloc[0]


def test_view_renders_a_snapshot() -> None:
    snap = Snapshot(
        elapsed_s=42,
        drifting=True,
        request_rate=99.5,
        drift_share=0.71,
        dataset_drift=True,
        features={"age": ("wasserstein", 0.93, True), "channel": ("jensenshannon", 0.02, False)},
        alert_state="firing",
        alert_delivered=True,
    )
    console = Console(record=True, width=120)
    console.print(render(snap))
    text = console.export_text()
    assert "DRIFTING" in text and "71% DETECTED" in text and "firing" in text
    assert "age" in text and "0.9300" in text and "DRIFT" in text
