"""Redaction of configured features before an event leaves the process.

Three modes: `drop` removes the feature, `null` keeps the name with a null value (so a
missing-share check still sees the column), `hash` replaces the value with a salted
64-bit hash (`h:` + 16 hex digits), so categorical drift of the column can still be
measured without the raw value ever reaching Kafka or the spool.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b
from typing import Any, Final, Literal

import msgspec

RedactionMode = Literal["drop", "null", "hash"]
REDACTION_MODES: Final = ("drop", "null", "hash")

_encode = msgspec.json.encode


class Redactor:
    __slots__ = ("_key", "mode", "names")

    def __init__(
        self, names: Iterable[str] = (), mode: RedactionMode = "drop", salt: str = ""
    ) -> None:
        if mode not in REDACTION_MODES:
            raise ValueError(
                f"unknown redaction mode {mode!r} (one of {', '.join(REDACTION_MODES)})"
            )
        self.names = frozenset(names)
        self.mode = mode
        self._key = salt.encode()[:64]

    def __bool__(self) -> bool:
        return bool(self.names)

    def hash_value(self, value: Any) -> str:
        h = blake2b(_encode(value), digest_size=8, key=self._key)
        return "h:" + h.hexdigest()

    def apply(self, features: dict[str, Any]) -> dict[str, Any]:
        """The features with redacted names removed/nulled/hashed (a new dict if any)."""
        names = self.names
        if not names or names.isdisjoint(features):
            return features
        if self.mode == "drop":
            return {k: v for k, v in features.items() if k not in names}
        if self.mode == "null":
            return {k: (None if k in names else v) for k, v in features.items()}
        return {
            k: (self.hash_value(v) if k in names and v is not None else v)
            for k, v in features.items()
        }

    def __repr__(self) -> str:
        return f"Redactor(names={sorted(self.names)}, mode={self.mode!r})"
