"""Paths a scenario names (``traffic.log.path``, ``traffic.log.genres``): ``${VAR}`` and
``${VAR:-default}`` from the environment, relative to the scenario file when not found from
the current folder.  Light on imports: ``validate`` resolves them without building anything.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from replay.errors import UserInputError

__all__ = ["expand_path", "resolve_input_path"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_path(text: str, *, source: str, field: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` from the environment; a missing variable is an error."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None:
            if default is not None:
                return default
            raise UserInputError(
                f"{source}: {field} uses ${{{name}}}, which is not set "
                f"(export {name}=... or pass --log PATH)"
            )
        return value

    return _VAR.sub(one, text)


def resolve_input_path(text: str, *, source: str, field: str, base_dir: Path | None) -> str:
    """The file a scenario's path setting names (variables expanded)."""
    path = expand_path(text, source=source, field=field)
    # A relative path in a scenario file is relative to that file, like an include.
    if base_dir is not None and not Path(path).is_absolute() and not os.path.lexists(path):
        path = str(base_dir / path)
    return path
