"""Human durations: ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"250ms"``, ``"1h30m"`` or a bare
number of seconds.  Durations are float seconds everywhere inside the lab.
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"10m"``, ``"1h30m"``.

    Raises ``ValueError`` (turned into a one-line scenario error by the loader).
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration like '90s', '10m' or '2h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "").replace("_", "")
        if _DURATION.match(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError("must be a duration like '90s', '10m' or '2h'") from None
    else:
        raise ValueError("must be a duration like '90s', '10m' or '2h'")
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError("must be a finite duration >= 0")
    return seconds


def format_duration(seconds: float) -> str:
    """The inverse of ``parse_duration`` for messages: 1209600 -> ``"14d"``, 90 -> ``"90s"``."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"
