"""Settings dataclasses from command-line flags and DRIFTWARDEN_* variables.

A settings class (a dataclass) states each field's type, default and meaning once; a tuple
of `Flag`s names the fields a user may set from the command line. Two entry points read the
same tuple: the typer CLI (`driftwarden.cli._options.settings_command`) and a component's
own `python -m` entry point (`settings_from_args`). Standard library only, so the CLI's
`--help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from driftwarden.errors import ConfigError, DriftwardenError

__all__ = ["Flag", "flag_default", "flag_types", "has_default_factory", "settings_from_args"]

S = TypeVar("S")


@dataclass(frozen=True)
class Flag:
    """One command-line flag that sets one field of a settings dataclass.

    The field's type, default and meaning live on the settings class; the flag adds its name
    (`--<name>`, also `DRIFTWARDEN_<NAME>` in the environment) and its help line. The CLI
    (typer) and a component's own `python -m` entry point both build their options from the
    same tuple of flags, so a default is written once.
    """

    field: str
    name: str
    help: str

    @property
    def option(self) -> str:
        return f"--{self.name}"

    @property
    def envvar(self) -> str:
        return "DRIFTWARDEN_" + self.name.upper().replace("-", "_")


def flag_types(settings_cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint of a settings dataclass."""
    return typing.get_type_hints(settings_cls)


def flag_default(settings_cls: type, field_name: str) -> Any:
    """The field's default; `dataclasses.MISSING` for a required field or a default factory."""
    f = {f.name: f for f in dataclasses.fields(settings_cls)}[field_name]
    return f.default


def _converter(hint: Any) -> Callable[[str], Any]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
    if base is bool:
        return _parse_bool
    if typing.get_origin(base) is typing.Literal:
        return str
    return base if base in (int, float, str, Path) else str


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def settings_from_args(
    settings_cls: type[S],
    flags: Sequence[Flag],
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    prog: str,
    error: type[DriftwardenError] = ConfigError,
) -> S:
    """Build a settings dataclass from `argv` and `DRIFTWARDEN_*` variables (flags win).

    A bad value or an unknown flag is one `error` line naming the flag.
    """
    hints = flag_types(settings_cls)
    parser = argparse.ArgumentParser(prog=prog, add_help=True, exit_on_error=False)
    for flag in flags:
        if hints[flag.field] is bool:
            parser.add_argument(
                flag.option, dest=flag.field, action=argparse.BooleanOptionalAction, help=flag.help
            )
        else:
            parser.add_argument(flag.option, dest=flag.field, help=flag.help)
    try:
        ns, unknown = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as e:
        raise error(str(e)) from e
    if unknown:
        raise error(f"unknown option(s): {' '.join(unknown)}")
    values: dict[str, Any] = {}
    for flag in flags:
        raw = getattr(ns, flag.field)
        if raw is None:
            raw = environ.get(flag.envvar)
            if raw is None:
                continue
        if isinstance(raw, bool):
            values[flag.field] = raw
            continue
        try:
            values[flag.field] = _converter(hints[flag.field])(raw)
        except ValueError as e:
            raise error(f"{flag.option} (or {flag.envvar}): {e}") from e
    missing = [
        f.option
        for f in flags
        if f.field not in values
        and flag_default(settings_cls, f.field) is dataclasses.MISSING
        and not has_default_factory(settings_cls, f.field)
    ]
    if missing:
        raise error(f"{', '.join(missing)} is required")
    return settings_cls(**values)


def has_default_factory(settings_cls: type, field_name: str) -> bool:
    f = {f.name: f for f in dataclasses.fields(settings_cls)}[field_name]
    return f.default_factory is not dataclasses.MISSING
