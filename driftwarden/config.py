"""One way to read a YAML file into a validated pydantic model.

Every settings file of the stack (model spec, collector config, alert thresholds, retrain
policy, ...) goes through `load_yaml_model`. A rejection is one line that names the file,
the field and the problem, e.g.

    specs/churn.yaml: features[2] (country).type: Input should be 'numerical' or 'categorical'

and is raised as a `ConfigError` (or the caller's own `DriftwardenError` subclass, passed as
`error=`), chained to the YAML or pydantic error. Nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from driftwarden.errors import ConfigError, DriftwardenError

__all__ = [
    "ConfigError",
    "field_location",
    "load_yaml_model",
    "parse_model",
    "parse_yaml_model",
    "read_yaml",
]

M = TypeVar("M", bound=BaseModel)


def field_location(loc: tuple[int | str, ...], data: object = None) -> str:
    """A pydantic error location as a user writes it: `features[2] (country).type`.

    A list item that is a mapping with a `name` gets that name in brackets, so the user finds
    the entry without counting. An empty location is `(top level)`.
    """
    out: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label += f" ({node['name']})"
            else:
                node = None
            out.append(label)
        else:
            out.append(("." if out else "") + str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(out) or "(top level)"


def describe_validation_error(e: ValidationError, data: object = None) -> str:
    """`field: problem (and N more problem(s))` for the most useful of pydantic's errors.

    An unknown key is most often a typo of the missing one, so it is reported first.
    """
    errors = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
    first = errors[0]
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
    return f"{field_location(first['loc'], data)}: {msg}{more}"


def parse_model(
    data: object,
    model_cls: type[M],
    *,
    source: str = "config",
    error: type[DriftwardenError] = ConfigError,
    allow_empty: bool = False,
    context: Mapping[str, Any] | None = None,
) -> M:
    """Validate an already-parsed document (`source` prefixes every message).

    `allow_empty`: an empty document (YAML `None`) means "all defaults" instead of an error.
    `context` is passed to pydantic's validators (`info.context`), e.g. the file's folder.
    """
    if data is None and allow_empty:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model_cls.model_validate(data, context=dict(context) if context else None)
    except ValidationError as e:
        raise error(f"{source}: {describe_validation_error(e, data)}") from e


def parse_yaml_model(
    text: str,
    model_cls: type[M],
    *,
    source: str = "config",
    error: type[DriftwardenError] = ConfigError,
    allow_empty: bool = False,
    context: Mapping[str, Any] | None = None,
) -> M:
    """Parse YAML text and validate it (for text that does not come from a file)."""
    data = _parse_yaml(text, source=source, error=error)
    return parse_model(
        data, model_cls, source=source, error=error, allow_empty=allow_empty, context=context
    )


def read_yaml(
    path: str | Path,
    *,
    what: str = "config",
    source: str | None = None,
    error: type[DriftwardenError] = ConfigError,
) -> object:
    """The parsed YAML document in a file; a missing/unreadable file or bad YAML is one line."""
    p = Path(path)
    label = source or str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise error(f"{label}: no such {what} file") from e
    except IsADirectoryError as e:
        raise error(f"{label}: is a directory, not a {what} file") from e
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or e
        raise error(f"{label}: cannot read {what} file ({reason})") from e
    return _parse_yaml(text, source=label, error=error)


def load_yaml_model(
    path: str | Path,
    model_cls: type[M],
    what: str = "config",
    *,
    source: str | None = None,
    error: type[DriftwardenError] = ConfigError,
    allow_empty: bool = False,
    context: Mapping[str, Any] | None = None,
) -> M:
    """Read a YAML file and validate it as `model_cls`.

    `what` names the kind of file in messages ("no such policy file"); `source` replaces the
    path as the message prefix (e.g. `--config x.yaml`); `error` is the `DriftwardenError`
    subclass raised (default `ConfigError`); `allow_empty` accepts an empty file as all
    defaults; `context` goes to pydantic validators.
    """
    label = source or str(Path(path))
    data = read_yaml(path, what=what, source=label, error=error)
    return parse_model(
        data, model_cls, source=label, error=error, allow_empty=allow_empty, context=context
    )


def _parse_yaml(text: str, *, source: str, error: type[DriftwardenError]) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{source}: invalid YAML{where}: {problem}") from e
