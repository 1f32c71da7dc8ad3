"""Typer options built from a settings dataclass and its `Flag`s (driftwarden.flags).

The settings class states each field's type and default once; `settings_command` turns the
flags into a typer command whose options carry those defaults, `--help` lines and
DRIFTWARDEN_<FLAG> variables, and calls `run(settings)` with the built settings.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer

from driftwarden.flags import Flag, flag_default, flag_types, has_default_factory

S = TypeVar("S")


def settings_command(
    settings_cls: type[S],
    flags: Sequence[Flag],
    run: Callable[[S], None],
    *,
    doc: str,
    name: str = "run",
) -> Callable[..., None]:
    """A function typer can register: one keyword parameter per flag."""
    hints = flag_types(settings_cls)
    params: list[inspect.Parameter] = []
    factories: set[str] = set()
    for flag in flags:
        default = flag_default(settings_cls, flag.field)
        hint = hints[flag.field]
        if default is dataclasses.MISSING:
            if has_default_factory(settings_cls, flag.field):  # computed when not given
                factories.add(flag.field)
                default, hint = None, hint | None
            else:
                default = ...
        option = typer.Option(default, envvar=flag.envvar, help=flag.help)
        params.append(
            inspect.Parameter(
                flag.name.replace("-", "_"),
                inspect.Parameter.KEYWORD_ONLY,
                default=option,
                annotation=hint,
            )
        )
    by_param = {flag.name.replace("-", "_"): flag.field for flag in flags}

    def command(**kwargs: Any) -> None:
        values = {
            by_param[p]: v
            for p, v in kwargs.items()
            if not (v is None and by_param[p] in factories)
        }
        run(settings_cls(**values))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = name
    command.__doc__ = doc
    return command
