"""JSON-safe numbers for ``summary.json``: rounded so output is stable, NaN/inf as null."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["num", "num_list", "pair"]


def num(value: float | int | np.number | None, digits: int = 6) -> float | int | None:
    """Integers stay integers; floats are rounded to ``digits``; NaN, inf and None give None."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        return None
    return round(number, digits)


def num_list(
    values: Iterable[float | int | np.number | None], digits: int = 6
) -> list[float | int | None]:
    """:func:`num` of every element."""
    return [num(v, digits) for v in values]


def pair(low: float | None, high: float | None, digits: int = 6) -> list[float | int | None]:
    """An interval ``[low, high]`` as a JSON list."""
    return [num(low, digits), num(high, digits)]
