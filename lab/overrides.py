"""``--set dotted.path=value`` overrides of a raw scenario table, and dotted paths for messages."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from replay.errors import UserInputError, shown

__all__ = ["apply_override", "dotted", "parse_override"]

_PATH_TOKEN = re.compile(r'([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|"([^"]+)"')


def dotted(loc: tuple[int | str, ...]) -> str:
    """``("rollout", "steps", 2, "set_weight")`` -> ``"rollout.steps[2].set_weight"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _split_path(path: str) -> list[str | int]:
    tokens: list[str | int] = []
    pos = 0
    for match in _PATH_TOKEN.finditer(path):
        gap = path[pos : match.start()]
        if gap not in ("", "."):
            raise ValueError
        name, index, quoted = match.groups()
        tokens.append(int(index) if index is not None else (quoted if quoted is not None else name))
        pos = match.end()
    if pos != len(path) or not tokens or isinstance(tokens[0], int):
        raise ValueError
    return tokens


def _check_keys(path: list[str | int], key: str) -> None:
    """No setting name, and no summary path an expectation names, holds '=' or a control
    character: a quoted key with one is a mistyped ``--set`` (two '=' in one option)."""
    for part in path:
        if isinstance(part, str) and ("=" in part or not part.isprintable()):
            raise UserInputError(
                f"--set path {shown(key)} has a key holding '=' or a control character: write one "
                "--set PATH=VALUE per setting, with the '=' outside quotes"
            )


def _split_assignment(text: str) -> tuple[str, str, str]:
    in_quotes = False
    for pos, char in enumerate(text):
        if char == '"':
            in_quotes = not in_quotes
        elif char == "=" and not in_quotes:
            return text[:pos], "=", text[pos + 1 :]
    return text, "", ""


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """Split ``"rollout.steps[0].set_weight=5"`` into a path and a TOML-typed value.

    The value is read as a TOML value (numbers, booleans, strings in quotes, arrays, inline
    tables); anything that is not valid TOML is taken as a plain string, so
    ``--set rollout.policy=staged`` works without quotes.
    """
    # A quoted key segment may hold dots (expect."versions.candidate.latency_ms.p99"=...).
    key, sep, raw = _split_assignment(text)
    key = key.strip()
    if not sep or not key:
        raise UserInputError(f"--set expects dotted.path=value, got {shown(text)}")
    try:
        path = _split_path(key)
    except ValueError:
        raise UserInputError(
            f"--set path must look like section.key or list[0].key, got {shown(key)}"
        ) from None
    _check_keys(path, key)
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except (RecursionError, ValueError) as exc:
        if not isinstance(exc, tomllib.TOMLDecodeError):
            raise UserInputError(
                f"--set {shown(key)}: value is nested too deep or holds a number too long, got "
                f"{shown(raw)}"
            ) from None
        value = raw
    return path, value


def apply_override(data: dict[str, Any], path: list[str | int], value: Any, *, source: str) -> None:
    """Set ``value`` at ``path`` inside the raw scenario table, creating tables as needed."""
    node: Any = data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        where = dotted(tuple(path[: i + 1]))
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise UserInputError(
                    f"{source}: --set {where} names item {part} of a list of {size}"
                )
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise UserInputError(
                    f"{source}: --set {where} is inside a value that is not a table"
                )
            if part not in node:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            size = len(node) if isinstance(node, list) else 0
            raise UserInputError(
                f"{source}: --set {dotted(tuple(path))} names item {last} of a list of {size}"
            )
        node[last] = value
    else:
        if not isinstance(node, dict):
            raise UserInputError(
                f"{source}: --set {dotted(tuple(path))} is inside a value that is not a table"
            )
        node[last] = value
