"""Deterministic sampling by request id.

A request is kept when a 64-bit hash of its id falls below `rate * 2**64`, so the same
id (a replayed or retried request) is always sampled the same way, by every replica.
"""

from __future__ import annotations

from hashlib import blake2b


class Sampler:
    __slots__ = ("_threshold", "rate")

    def __init__(self, rate: float = 1.0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample rate must be between 0 and 1, got {rate}")
        self.rate = rate
        self._threshold = int(rate * 2**64)

    @property
    def keeps_all(self) -> bool:
        return self.rate >= 1.0

    def keep(self, request_id: str) -> bool:
        """True when the request with this id is captured."""
        if self.rate >= 1.0:
            return True
        if self.rate <= 0.0:
            return False
        digest = blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") < self._threshold

    def __repr__(self) -> str:
        return f"Sampler(rate={self.rate})"
