"""What a closed window produced: the record written to the results topic, kept in the
in-process history and read by the Prometheus collector.

`WindowResult` is one evaluated window of one (model, version): `kind` "drift" for a
window of predictions (feature, dataset and prediction drift, data quality, multivariate
drift) and "performance" for a window of labelled predictions. `(model, version, kind,
seq)` identifies a window; the restart and scale-out tests assert that every identity
appears exactly once with the same content as in an uninterrupted run.

With the spec's `drift.sequential.enabled`, a drift window also carries the sequential
(CUSUM) detector's view after that window (`detectors.sequential`): `sequential_score` is
the CUSUM statistic in units of its alarm limit (the detector alarms at 1 or more) and
`sequential_drift` its verdict, per feature and for the dataset. The window test's own
verdict (`drift_detected`, `dataset_drift`) is unchanged, so it still equals
`driftwarden drift` on the same rows.
"""

from __future__ import annotations

import msgspec

__all__ = ["RESULT_SCHEMA", "FeatureResult", "WindowResult", "decode_result", "encode_result"]

RESULT_SCHEMA = "driftwarden.window/v1"


class FeatureResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """One drift test on one column (a feature, or the prediction)."""

    name: str
    type: str  # numerical | categorical
    test: str  # Evidently registry name: wasserstein, jensenshannon, ks, ...
    score: float | None  # p-value or distance (see `test`); None when not computable
    threshold: float
    drift_detected: bool
    skipped: str | None = None  # why the column was not tested (empty window side, ...)
    effect_size: float | None = None  # KS D / Cramér's V when the spec's drift.effect_size is on
    sequential_score: float | None = None  # CUSUM statistic / its limit (sequential mode)
    sequential_drift: bool | None = None  # sequential_score >= 1


class WindowResult(
    msgspec.Struct, frozen=True, omit_defaults=True, tag_field="schema", tag=RESULT_SCHEMA
):
    model: str
    version: str
    kind: str  # "drift" | "performance"
    seq: int  # 1-based window number of (model, version, kind)
    rows: int
    partition: int
    first_offset: int = -1  # partition offsets of the window's first and last prediction
    last_offset: int = -1
    start_ts: float = 0.0  # event time of the first and last row
    end_ts: float = 0.0
    features: list[FeatureResult] = []
    drift_share: float | None = None
    dataset_drift: bool | None = None
    prediction: FeatureResult | None = None
    prediction_spread: float | None = None  # detectors.spread: 0 when one constant was predicted
    # feature -> check -> share of rows (missing, out_of_range, unseen_category, type_error)
    quality: dict[str, dict[str, float | None]] = {}
    multivariate_pvalue: float | None = None
    performance: dict[str, float | None] = {}
    # the dataset CUSUM (over the share of unusual features), when sequential mode is on
    sequential_score: float | None = None
    sequential_drift: bool | None = None

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.model, self.version, self.kind, self.seq)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WindowResult)


def encode_result(result: WindowResult) -> bytes:
    return _encoder.encode(result)


def decode_result(data: bytes | str) -> WindowResult:
    return _decoder.decode(data)
