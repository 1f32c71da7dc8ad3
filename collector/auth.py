"""Who may post labels to `/v1/feedback` (labels drive performance metrics, retraining and
canary verdicts, so a stranger on the pod network must not be able to write them).

Three policies, chosen once from the settings (docs/security.md):

- `token`: a bearer token from a file (a mounted Secret) is required from every caller.
  The file may hold several tokens, one per line: any of them is accepted, so a token
  rotates without a restart (add the new one, move the callers, remove the old one). The
  file is re-read when its modification time or size changes (checked at most once per
  `check_interval_s`); tokens are compared in constant time.
- `loopback` (the default, no token file): only callers inside the pod (127.0.0.0/8, ::1)
  may post; anyone else gets 403.
- `open`: anyone who reaches the admin port may post (explicit `--feedback-open`).

`/metrics`, `/healthz` and `/readyz` are never behind this.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from collector.errors import CollectorError

_log = logging.getLogger("collector.auth")

FeedbackPolicy = Literal["token", "loopback", "open"]

__all__ = ["Decision", "FeedbackAuth", "TokenFile", "is_loopback"]


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class TokenFile:
    """The accepted bearer tokens, read from `path` and re-read when it changes."""

    def __init__(
        self,
        path: Path,
        *,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.check_interval_s = check_interval_s
        self._clock = clock
        self._next_check = 0.0
        self._stamp: tuple[int, int, int] | None = None
        self._tokens: tuple[bytes, ...] = ()
        self._load(initial=True)

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self, *, initial: bool = False) -> None:
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else "unreadable"
            if initial:
                raise CollectorError(f"--feedback-token-file {self.path}: {why.lower()}") from None
            _log.warning("feedback token file %s: %s; keeping the previous tokens", self.path, why)
            return
        tokens = tuple(t.strip().encode() for t in text.splitlines() if t.strip())
        if not tokens:
            if initial:
                raise CollectorError(f"--feedback-token-file {self.path}: holds no token")
            _log.warning("feedback token file %s is empty; keeping the previous tokens", self.path)
            return
        if not initial:
            _log.info(
                "feedback token file %s changed: %d token(s) accepted", self.path, len(tokens)
            )
        self._stamp = stamp
        self._tokens = tokens

    def tokens(self) -> tuple[bytes, ...]:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self.check_interval_s
            self._load()
        return self._tokens

    def accepts(self, presented: bytes) -> bool:
        """Constant-time comparison against every accepted token (no early exit)."""
        ok = False
        for token in self.tokens():
            ok |= hmac.compare_digest(presented, token)
        return ok

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request: allowed, or the HTTP status and reason to answer."""

    allowed: bool
    status: int = 200
    reason: str = ""
    detail: str = ""


_ALLOWED = Decision(True)


class FeedbackAuth:
    """Decides whether a request may post feedback (pure apart from the token file)."""

    def __init__(self, policy: FeedbackPolicy, token_file: TokenFile | None = None) -> None:
        if policy == "token" and token_file is None:
            raise ValueError("the token policy needs a token file")
        self.policy = policy
        self.token_file = token_file

    @classmethod
    def from_settings(cls, token_file: Path | None, open_: bool) -> FeedbackAuth:
        if token_file is not None and open_:
            raise CollectorError("--feedback-token-file and --feedback-open exclude each other")
        if token_file is not None:
            return cls("token", TokenFile(token_file))
        return cls("open" if open_ else "loopback")

    def check(self, authorization: str | None, client_host: str | None) -> Decision:
        if self.policy == "open":
            return _ALLOWED
        if self.policy == "loopback":
            if is_loopback(client_host):
                return _ALLOWED
            return Decision(
                False,
                403,
                "forbidden",
                "feedback is accepted from inside the pod (127.0.0.1) only; "
                "set --feedback-token-file to accept authenticated callers",
            )
        assert self.token_file is not None
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return Decision(False, 401, "unauthorized", "a bearer token is required")
        if not self.token_file.accepts(presented.strip().encode()):
            return Decision(False, 401, "unauthorized", "the bearer token is not valid")
        return _ALLOWED
