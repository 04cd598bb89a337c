"""Durations as the manifests write them, into float seconds.

Argo Rollouts' metric ``interval`` / ``initialDelay`` and Flagger's ``interval`` are Go
durations (``time.ParseDuration``): a sequence of decimal numbers with units ``ns``, ``us``
(``µs``), ``ms``, ``s``, ``m``, ``h`` — ``1m30s``, ``500ms``; no days.  Argo Rollouts' pause
``duration`` is a whole number of seconds or a number with ``s``, ``m`` or ``h``.  A unit
outside those is a mistake the manifest's own controller would refuse, so it is one here.
"""

from __future__ import annotations

import re

from lab.manifests.yaml_source import Node

__all__ = ["go_duration", "pause_duration"]

GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
PAUSE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([^\d.]*)")


def _parse(text: str, units: dict[str, float]) -> float | str:
    """Seconds, or the reason the text is not a duration."""
    rest = text.strip()
    if rest in ("0", "+0", "-0"):
        return 0.0
    if not rest or rest.startswith("-"):
        return "a positive duration"
    rest = rest.lstrip("+")
    seconds, pos = 0.0, 0
    while pos < len(rest):
        match = _PART.match(rest, pos)
        if match is None:
            return "numbers with units"
        number, unit = match.groups()
        if unit not in units:
            known = ", ".join(u for u in units if u not in ("µs", "μs"))
            if not unit:
                return f"a unit after {number} ({known})"
            return f"known units ({known}), not {unit!r}"
        seconds += float(number) * units[unit]
        pos = match.end()
    return seconds


def go_duration(node: Node) -> float:
    """A Go duration (``"1m30s"``) in seconds; one-line error naming the field otherwise."""
    if isinstance(node.value, bool) or not isinstance(node.value, str | int):
        raise node.error(f"must be a duration like 30s, 5m or 1h, got {node.value!r}")
    parsed = _parse(str(node.value), GO_UNITS)
    if isinstance(parsed, str):
        raise node.error(f"must be a duration like 30s, 5m or 1h with {parsed}, got {node.value!r}")
    return parsed


def pause_duration(node: Node) -> float:
    """A pause ``duration``: whole seconds (``10``), or ``10s`` / ``10m`` / ``10h``."""
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise node.error(f"must be a duration >= 0, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise node.error(f"must be a duration like 30s, 10m or 1h, got {value!r}")
    text = value.strip()
    if text.isdigit():
        return float(text)
    parsed = _parse(text, PAUSE_UNITS)
    if isinstance(parsed, str):
        raise node.error(f"must be a duration like 30s, 10m or 1h with {parsed}, got {value!r}")
    return parsed
