"""The Kafka security flags (`--kafka-security-protocol`, `--kafka-ca-file`, ...), added to
every command that talks to Kafka by one decorator.

The flags, their DRIFTWARDEN_KAFKA_* variables, defaults and help lines are stated once, on
`driftwarden.kafka.KafkaSecurity` and `KAFKA_SECURITY_FLAGS`; the decorated command gets the
built group as its `kafka_security` argument (already checked: unreadable files are one line).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import typer

from driftwarden.flags import flag_default, flag_types
from driftwarden.kafka import KAFKA_SECURITY_FLAGS, KafkaSecurity

__all__ = ["with_kafka_security"]

_PREFIX = "kafka_security__"


def with_kafka_security(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn(..., kafka_security: KafkaSecurity)` as a typer command with the --kafka-* flags."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a signature built at run time (settings_command) has no annotations
        hints = {}
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in sig.parameters.values()
        if p.name != "kafka_security"
    ]
    positional = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    security_hints = flag_types(KafkaSecurity)
    extra = [
        inspect.Parameter(
            _PREFIX + flag.field,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                flag_default(KafkaSecurity, flag.field),
                flag.option,
                envvar=flag.envvar,
                help=flag.help,
                rich_help_panel="Kafka security",
            ),
            annotation=security_hints[flag.field],
        )
        for flag in KAFKA_SECURITY_FLAGS
    ]

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        values = {f.field: kwargs.pop(_PREFIX + f.field) for f in KAFKA_SECURITY_FLAGS}
        security = KafkaSecurity(**values).check()
        return fn(*args, kafka_security=security, **kwargs)

    command.__signature__ = sig.replace(parameters=positional + extra)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in positional + extra}
    del command.__wrapped__  # typer must read the signature above, not fn's
    return command
