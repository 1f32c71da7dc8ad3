"""The collector's own errors.

`CollectorError` is a user-facing problem (bad flag, bad config file, unusable spool
directory): the CLI prints it as one line. `CaptureError` is not an error of the
collector at all: it says why one captured request/response pair produced no event,
and its `reason` is a low-cardinality label of `driftwarden_collector_events_dropped_total`.
"""

from __future__ import annotations

from typing import Final

from driftwarden.errors import DriftwardenError


class CollectorError(DriftwardenError):
    """A collector setting, config file or spool directory cannot be used."""


class SpoolError(CollectorError):
    """The on-disk spool cannot be opened (locked by another process, unwritable)."""


#: Why a captured pair produced no event. Each is a value of the `reason` label.
CAPTURE_REASONS: Final = (
    "malformed_json",  # a body is not JSON
    "unsupported_encoding",  # a Content-Encoding the collector cannot undo
    "oversize",  # a body over capture.max_body_bytes, or an event over message.max.bytes
    "missing_field",  # instances/predictions/inputs/outputs or a configured path is absent
    "wrong_type",  # a field has the wrong JSON type (object where a list is expected, ...)
    "row_count_mismatch",  # predictions and rows differ in number
    "row_length_mismatch",  # a positional row has a different length than the spec's features
    "positional_without_spec",  # positional rows, but no spec gives the feature names
    "unsupported_value",  # a feature or prediction value is a nested object/list
    "non_finite",  # NaN or infinity
    "bad_tensor",  # an open-inference tensor whose shape and data disagree
    "prediction_shape",  # a multi-output prediction that the spec's reduction cannot apply to
    "upstream_status",  # the model answered with a non-2xx status (not dead-lettered)
    "incomplete",  # the exchange ended before a complete response (connection lost)
    "too_deep",  # a body nested deeper than capture.max_json_depth
    "kafka_rejected",  # the broker refused the event for good (not its size)
)


class CaptureError(ValueError):
    """A request/response pair that yields no event; `reason` is one of `CAPTURE_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
