"""The pure parts of delivery and capture: the direct/spool/replay state machine, the size
rule, the mapping of librdkafka errors to RetryLater/GiveUp, the JSON depth bound, NaN and
Infinity, integer features, and sampling with an injected random generator."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.capture import Capturer
from collector.delivery_policy import DeliveryPolicy, record_fits
from collector.errors import CaptureError
from collector.events import EventBuilder, Record, deadletter_for
from collector.kafka_producer import classify
from collector.metrics import CollectorStats
from collector.payloads import decode_body, make_parser, too_deep
from collector.sampling import Sampler
from driftwarden.errors import GiveUp, RetryLater


def policy(**kw: object) -> DeliveryPolicy:
    args: dict[str, object] = {
        "slow_after_s": 2.0,
        "replay_batch": 100,
        "retry_backoff_s": 0.2,
        "retry_backoff_max_s": 1.0,
    }
    args.update(kw)
    return DeliveryPolicy(**args)  # type: ignore[arg-type]


def test_start_replays_first_when_the_spool_holds_anything() -> None:
    p = policy()
    assert p.start(0.0, spool_empty=False) and p.mode == "spooling"
    assert not p.start(0.0, spool_empty=True) and p.mode == "direct"


def test_no_acknowledgement_for_slow_after_s_spools_and_stalls_once() -> None:
    p = policy()
    p.start(0.0, spool_empty=True)
    assert p.check(1.0, in_flight=5) is None
    verdict = p.check(2.5, in_flight=5)
    assert verdict is not None and verdict.stall and "2s" in verdict.why
    assert p.enter_spooling(2.5) and p.mode == "spooling" and p.replay_size == 1
    again = p.check(3.0, in_flight=5)
    assert again is not None and not again.stall  # one purge per stall
    assert p.check(3.0, in_flight=0) is None and not p.stalled


def test_brokers_down_spools_and_without_a_spool_nothing_is_purged() -> None:
    p = policy(has_spool=False)
    p.start(0.0, spool_empty=True)
    p.all_brokers_down()
    verdict = p.check(0.1, in_flight=1)
    assert verdict is not None and verdict.why == "all brokers are down" and not verdict.stall
    p.enter_spooling(0.1)
    assert p.next_replay(0.2, in_flight=1, spool_empty=True) is None
    p.acknowledged(0.3)
    assert p.next_replay(0.4, in_flight=0, spool_empty=True) == "direct"


def test_replay_waits_for_back_off_and_in_flight_records_then_grows() -> None:
    p = policy()
    p.start(0.0, spool_empty=False)
    p.replay_not_before = 1.0
    assert p.next_replay(0.5, in_flight=0, spool_empty=False) is None
    assert p.next_replay(1.5, in_flight=3, spool_empty=False) is None
    p.replay_size = 5
    assert p.next_replay(1.5, in_flight=0, spool_empty=False) == 5
    outcome = p.replay_resolved(1.6, [True] * 5)
    assert outcome.complete and outcome.commit == 5 and p.replay_size == 20
    # an empty spool goes direct only after Kafka acknowledged something
    assert p.next_replay(2.0, in_flight=0, spool_empty=True) is None
    p.acknowledged(2.1)
    assert p.next_replay(2.2, in_flight=0, spool_empty=True) == "direct"


def test_a_partly_failed_replay_commits_up_to_the_failure_and_backs_off() -> None:
    p = policy()
    p.start(0.0, spool_empty=False)
    outcome = p.replay_resolved(1.0, [True, True, False, True, None, True])
    assert outcome.commit == 2 and outcome.acked_after == frozenset({3, 5})
    assert not outcome.complete and p.replay_size == 1
    assert p.replay_not_before == pytest.approx(1.2) and p.backoff == pytest.approx(0.4)
    for _ in range(5):
        p.replay_resolved(2.0, [False])
    assert p.backoff == 1.0  # capped


def test_the_size_rule_counts_key_and_value() -> None:
    assert record_fits(b"k", b"x" * 99, 100)
    assert not record_fits(b"kk", b"x" * 99, 100)


class _Err:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("MSG_SIZE_TOO_LARGE", GiveUp),
        ("_INVALID_ARG", GiveUp),
        # a missing ACL is fixed by an operator: the events wait in the spool meanwhile
        ("TOPIC_AUTHORIZATION_FAILED", RetryLater),
        ("_AUTHENTICATION", RetryLater),
        ("_MSG_TIMED_OUT", RetryLater),
        ("_TRANSPORT", RetryLater),
        ("_PURGE_QUEUE", RetryLater),
        ("NOT_LEADER_FOR_PARTITION", RetryLater),
    ],
)
def test_librdkafka_errors_map_to_retry_later_or_give_up(name: str, kind: type) -> None:
    assert classify(_Err(name)) is kind


def test_an_oversize_dead_letter_is_small_and_names_the_event() -> None:
    value = b'{"schema":"driftwarden.prediction/v1","id":"r-7","model":"m","features":{"a":"'
    record = Record("p.x.predictions", b"m", value + b"x" * 2_000_000 + b'"}}')
    letter = deadletter_for(record, "oversize", "too big", ts=5.0)
    doc = json.loads(letter.value)
    assert letter.topic == "p.x.deadletter" and len(letter.value) < 1024
    assert (doc["reason"], doc["request_id"], doc["model"]) == ("oversize", "r-7", "m")


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (b"[" * 64 + b"]" * 64, False),
        (b"[" * 65 + b"]" * 65, True),
        (b'{"a": ["[[[[[[[[[[", {"b": [1, "\\"[[["]}]}', False),
        (json.dumps({"instances": [[1.5, 2, "x"]] * 5000}).encode(), False),
        (b'{"a": ' * 70 + b"1" + b"}" * 70, True),
    ],
)
def test_depth_is_bounded_and_strings_do_not_count(body: bytes, deep: bool) -> None:
    assert too_deep(body, 64) is deep


@given(st.recursive(st.integers() | st.text(max_size=5), lambda c: st.lists(c, max_size=3)))
def test_depth_agrees_with_the_structure(value: object) -> None:
    def depth(v: object) -> int:
        return 1 + max((depth(x) for x in v), default=0) if isinstance(v, list) else 0

    body = json.dumps(value).encode()
    d = depth(value)
    assert too_deep(body, d) is False
    if d > 0:
        assert too_deep(body, d - 1) is True


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "too_deep"),
        (b"[" * 10_000, "too_deep"),
        (b'{"a": NaN}', "non_finite"),
        (b"[1, -Infinity]", "non_finite"),
        (b"[Infinity]", "non_finite"),
        (b"[1e999]", "non_finite"),
        (b'["NaN" x]', "malformed_json"),
        (b"[nope]", "malformed_json"),
    ],
)
def test_body_rejections_have_their_documented_reason(body: bytes, reason: str) -> None:
    with pytest.raises(CaptureError) as e:
        decode_body(body)
    assert e.value.reason == reason


def test_integer_features_become_floats_and_bools_stay() -> None:
    parser = make_parser("kserve-v1")
    ((features, _),) = parser.rows(
        {"instances": [{"a": 41, "b": True, "c": "x"}]}, {"predictions": [1]}
    )
    assert features == {"a": 41.0, "b": True, "c": "x"}
    assert type(features["a"]) is float and type(features["b"]) is bool


def test_sampling_without_an_id_follows_the_injected_generator() -> None:
    def decisions(seed: int) -> list[bool]:
        capturer = Capturer(
            parser=make_parser("kserve-v1"),
            builder=EventBuilder(model="m"),
            delivery=None,  # type: ignore[arg-type]
            stats=CollectorStats(),
            sampler=Sampler(0.5),
            rng=random.Random(seed),
        )
        return [capturer.keep(None) for _ in range(200)]

    assert decisions(7) == decisions(7)
    assert decisions(7) != decisions(8)
    assert 60 < sum(decisions(7)) < 140
