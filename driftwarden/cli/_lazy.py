"""Command groups imported when they run, not when the CLI starts.

`lazy_command(name, "module:attr", help)` registers a typer app or a command function by
path. `driftwarden --help` lists it with `help` (a placeholder command, nothing imported);
`driftwarden NAME ...` imports the module and runs the real command.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

__all__ = ["LazyGroup", "lazy_command"]

#: name -> ("module:attr", short help), in registration order.
_REGISTRY: dict[str, tuple[str, str]] = {}


def lazy_command(name: str, target: str, help: str) -> None:
    """Register `target` ("module:attr": a `typer.Typer` or a command function) as `name`."""
    _REGISTRY[name] = (target, help)


class _Placeholder(TyperCommand):
    """Stands in for a lazy command in help listings."""


def _load(name: str, target: str) -> Any:
    """The click command typer would have built had `target` been registered eagerly."""
    module, _, attr = target.partition(":")
    obj: Any = getattr(importlib.import_module(module), attr)
    holder = typer.Typer(add_completion=False)
    holder.callback()(_nothing)  # a group, even with one command
    if isinstance(obj, typer.Typer):
        holder.add_typer(obj, name=name)
    else:
        holder.command(name)(obj)
    group = typer.main.get_command(holder)
    return group.commands[name]  # type: ignore[attr-defined]


def _nothing() -> None:
    """Placeholder callback of the holder group."""


class LazyGroup(TyperGroup):
    """The root group: eager commands as usual, lazy ones loaded on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        eager = super().list_commands(ctx)
        return [*[n for n in _REGISTRY if n not in eager], *eager]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _REGISTRY:
            command = _Placeholder(cmd_name, help=_REGISTRY[cmd_name][1])
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, _Placeholder) and name is not None:
            command = _load(name, _REGISTRY[name][0])
            self.add_command(command, name)
        return name, command, rest
