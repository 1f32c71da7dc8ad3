"""Who may post `/v1/feedback` (collector.auth): the token file (several tokens, re-read when
it changes, constant-time comparison), the loopback-only default and the explicit open
policy, decided on the pure `FeedbackAuth.check` (issue 15, docs/security.md)."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any

import pytest

import collector.auth as auth_module
from collector.auth import FeedbackAuth, TokenFile, is_loopback
from collector.errors import CollectorError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _tokens(path: Path, *tokens: str) -> Path:
    path.write_text("".join(f"{t}\n" for t in tokens))
    return path


def test_several_tokens_are_each_accepted_and_others_refused(tmp_path: Path) -> None:
    tf = TokenFile(_tokens(tmp_path / "t", "alpha-token", "  beta-token  ", "", "gamma"))
    assert tf.tokens() == (b"alpha-token", b"beta-token", b"gamma")
    assert tf.accepts(b"alpha-token") and tf.accepts(b"beta-token") and tf.accepts(b"gamma")
    for wrong in (b"alpha", b"alpha-token2", b"", b"ALPHA-TOKEN", b"beta-token "):
        assert not tf.accepts(wrong), wrong
    assert "alpha" not in repr(tf)


def test_rotation_without_restart_follows_the_file_at_the_check_interval(
    tmp_path: Path, caplog: Any
) -> None:
    clock = FakeClock()
    path = _tokens(tmp_path / "t", "old-token")
    tf = TokenFile(path, check_interval_s=1.0, clock=clock)
    assert tf.accepts(b"old-token")
    _tokens(path, "old-token", "new-token-1")  # step 1: add the new token
    clock.now += 0.5
    assert not tf.accepts(b"new-token-1"), "re-read at most once per interval"
    clock.now += 0.6
    caplog.set_level(logging.INFO, "collector.auth")
    assert tf.accepts(b"new-token-1") and tf.accepts(b"old-token")
    _tokens(path, "new-token-1")  # step 3: remove the old one
    clock.now += 1.1
    assert tf.accepts(b"new-token-1") and not tf.accepts(b"old-token")
    changes = [r.getMessage() for r in caplog.records if "changed" in r.getMessage()]
    assert len(changes) == 2 and all("token" in c and "new-token" not in c for c in changes)


def test_an_emptied_or_removed_file_keeps_the_previous_tokens(tmp_path: Path, caplog: Any) -> None:
    clock = FakeClock()
    path = _tokens(tmp_path / "t", "keep-me")
    tf = TokenFile(path, clock=clock)
    path.write_text("\n")  # mid-rotation
    clock.now += 2
    caplog.set_level(logging.WARNING, "collector.auth")
    assert tf.accepts(b"keep-me")
    path.unlink()
    clock.now += 2
    assert tf.accepts(b"keep-me")
    warnings = [r.getMessage() for r in caplog.records]
    assert any("empty" in w for w in warnings) and any("previous tokens" in w for w in warnings)
    assert all("keep-me" not in w for w in warnings)


def test_a_missing_or_empty_token_file_at_start_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match=r"^--feedback-token-file .*nope: no such file"):
        TokenFile(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.write_text(" \n\n")
    with pytest.raises(CollectorError, match=r"--feedback-token-file .*holds no token"):
        TokenFile(empty)


def test_every_token_is_compared_in_constant_time_with_no_early_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    tf = TokenFile(_tokens(tmp_path / "t", "first", "second", "third"))
    assert tf.accepts(b"first")
    assert [b for _, b in calls] == [b"first", b"second", b"third"], "no early exit on a match"
    calls.clear()
    assert not tf.accepts(b"nothing")
    assert len(calls) == 3


# --- the decision ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.8.7", "::1", "::1%lo"])
def test_the_default_admits_callers_inside_the_pod(host: str) -> None:
    assert is_loopback(host)
    assert FeedbackAuth.from_settings(None, False).check(None, host).allowed


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.2", "fd00::1", "0.0.0.0", "", None, "x"])
def test_the_default_refuses_other_peers_with_403(host: str | None) -> None:
    d = FeedbackAuth.from_settings(None, False).check("Bearer anything", host)
    assert (d.allowed, d.status, d.reason) == (False, 403, "forbidden")
    assert "--feedback-token-file" in d.detail


def test_open_is_explicit_and_admits_anyone() -> None:
    auth = FeedbackAuth.from_settings(None, True)
    assert auth.policy == "open"
    assert auth.check(None, "10.1.2.3").allowed


def test_the_token_policy_needs_a_valid_bearer_token_from_every_peer(tmp_path: Path) -> None:
    auth = FeedbackAuth.from_settings(_tokens(tmp_path / "t", "tok-A"), False)
    assert auth.policy == "token"
    for header in (None, "", "Bearer", "Bearer   ", "Basic dG9rLUE=", "tok-A"):
        d = auth.check(header, "127.0.0.1")  # loopback is no exemption once a token is set
        assert (d.allowed, d.status, d.detail) == (False, 401, "a bearer token is required")
    d = auth.check("Bearer tok-B", "10.0.0.1")
    assert (d.allowed, d.status, d.detail) == (False, 401, "the bearer token is not valid")
    assert auth.check("Bearer tok-A", "10.0.0.1").allowed
    assert auth.check("bearer  tok-A ", "10.0.0.1").allowed


def test_a_token_file_and_open_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="exclude each other"):
        FeedbackAuth.from_settings(_tokens(tmp_path / "t", "x"), True)
