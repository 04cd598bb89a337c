"""Building blocks of validated settings: strict frozen tables and ranged values.

Every settings table of a scenario is a ``Table`` (unknown keys forbidden, frozen, strict
types); numbers carry their allowed range, durations are parsed from ``"10m"`` into float
seconds.  A cross-field mistake raises ``Inconsistent`` with its own path, which the scenario
loader turns into one line naming the file and the dotted path.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from sim.durations import parse_duration

__all__ = [
    "Duration",
    "Fraction",
    "Inconsistent",
    "NonNegInt",
    "Percent",
    "PosInt",
    "PositiveDuration",
    "PositiveMs",
    "Table",
    "ranged",
]


def ranged(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> AfterValidator:
    left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
    if math.isinf(hi):
        text = f"must be {'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"must be in {left}{lo:g}, {hi:g}{right}"

    def check(value: float) -> float:
        below = value <= lo if lo_open else value < lo
        above = value >= hi if hi_open else value > hi
        if below or above or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(
                text
                if not isinstance(value, float) or math.isnan(value) or not math.isinf(value)
                else f"{text} and finite"
            )
        return value

    return AfterValidator(check)


# What a scenario file may hold for a duration (the JSON Schema of ``rollout-lab schema``):
# seconds, or a text like "90s", "10m", "1h30m".
_DURATION_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$"},
        ],
        "description": "seconds, or a duration such as '250ms', '90s', '10m', '2h', '1h30m'",
    }
)
Duration = Annotated[float, BeforeValidator(parse_duration), _DURATION_SCHEMA]
PositiveDuration = Annotated[
    float, BeforeValidator(parse_duration), ranged(0, math.inf, lo_open=True), _DURATION_SCHEMA
]
Percent = Annotated[float, ranged(0, 100)]
Fraction = Annotated[float, ranged(0, 1)]
PositiveMs = Annotated[float, ranged(0, math.inf, lo_open=True)]


PosInt = Annotated[int, ranged(1, math.inf)]
NonNegInt = Annotated[int, ranged(0, math.inf)]


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class Inconsistent(ValueError):
    """Raised inside validators for a cross-field error, with its own path."""

    def __init__(self, loc: tuple[str | int, ...], expectation: str, value: object) -> None:
        super().__init__(expectation)
        self.loc = loc
        self.expectation = expectation
        self.value = value
