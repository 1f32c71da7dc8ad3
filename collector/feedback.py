"""The ground-truth (feedback) endpoint's body format. Pure.

`POST /v1/feedback` takes one object or a list of objects:

    {"id": "req-42", "label": 1}
    [{"id": "req-42", "label": 1}, {"id": "req-43-0", "label": "fraud", "ts": 1718000000.5}]

`id` is the prediction id the label belongs to (the request's `X-Request-ID`, with
`-<row>` for a row of a batch), `label` a number, string or bool; `ts` (unix seconds) and
`model` are optional (default: now, and the collector's model). Anything else is a
`FeedbackError` with an HTTP status (400 for a body that is not JSON, 413 for one too
large, 422 for one that does not match) and a reason.
"""

from __future__ import annotations

import time
from typing import Final

import msgspec

from driftwarden.schema import FeedbackEvent, Id, Label, Name, NonNegative

MAX_FEEDBACK_BYTES: Final = 4 * 1024 * 1024
MAX_FEEDBACK_ITEMS: Final = 10_000


class FeedbackItem(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: Id
    label: Label
    ts: NonNegative | None = None
    model: Name | None = None


_DECODER = msgspec.json.Decoder(FeedbackItem | list[FeedbackItem])


class FeedbackError(ValueError):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail

    def body(self) -> dict[str, str]:
        return {"error": self.reason, "detail": self.detail}


def _reason(text: str) -> str:
    if text.startswith("Object missing required field"):
        return "missing_field"
    if text.startswith("Object contains unknown field"):
        return "unknown_field"
    if text.startswith("Number out of range"):
        return "non_finite"
    if text.startswith("Expected"):
        return "wrong_type" if " of length " not in text else "invalid_value"
    return "invalid_value"


def parse_feedback(body: bytes, *, model: str, now: float | None = None) -> list[FeedbackEvent]:
    """Feedback events of a request body, or a `FeedbackError`."""
    if len(body) > MAX_FEEDBACK_BYTES:
        raise FeedbackError(
            413, "oversize", f"body is {len(body)} bytes, limit {MAX_FEEDBACK_BYTES}"
        )
    if not body.strip():
        raise FeedbackError(400, "malformed_json", "empty body")
    try:
        parsed = _DECODER.decode(body)
    except msgspec.ValidationError as e:
        raise FeedbackError(422, _reason(str(e)), str(e)) from e
    except msgspec.DecodeError as e:
        raise FeedbackError(400, "malformed_json", str(e)) from e
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        raise FeedbackError(422, "invalid_value", "empty list")
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise FeedbackError(413, "oversize", f"{len(items)} items, limit {MAX_FEEDBACK_ITEMS}")
    ts = time.time() if now is None else now
    return [
        FeedbackEvent(
            id=item.id,
            model=item.model or model,
            ts=item.ts if item.ts is not None else ts,
            label=item.label,
        )
        for item in items
    ]
