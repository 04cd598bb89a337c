"""Expectations (the scenario's ``[expect]`` block), k6-style, checked against the summary.

    "versions.candidate.latency_ms.p99" = "< 120"
    outcome = "rolled_back"
    "rollout.time_to_rollback_s" = "<= 600"

A key is a dotted path into ``summary.json``; a value is a condition (``<``, ``<=``, ``>``,
``>=``, ``==``, ``!=`` followed by a number or a word) or a plain value meaning equality.
A path that does not exist in the summary is a scenario error (exit 2), never a pass.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from replay.errors import UserInputError, shown

__all__ = ["Expectation", "check_expectations", "parse_expectation"]

_CONDITION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class Expectation:
    metric: str
    op: str
    target: float | str | bool
    #: the condition as the scenario wrote it (``"== 0"``, not ``"== 0.0"``)
    written: str = ""

    @property
    def condition(self) -> str:
        return self.written or f"{self.op} {self.target}"


#: Text that starts like a condition but with an operator that does not exist ("=< 5").
_OPERATOR_LIKE = re.compile(r"^\s*[<>=!~]")


def _as_written(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_expectation(metric: str, value: object, *, source: str) -> Expectation:
    """One ``[expect]`` entry; an unknown operator or a non-number after ``<`` is refused."""
    if isinstance(value, bool):
        return Expectation(metric, "==", value, f"== {_as_written(value)}")
    if isinstance(value, int | float):
        return Expectation(metric, "==", float(value), f"== {_as_written(value)}")
    text = str(value)
    match = _CONDITION.match(text)
    if match is None:
        if _OPERATOR_LIKE.match(text):
            raise UserInputError(
                f"{source}: expect.{metric} must start with one of < <= > >= == != or be a plain "
                f"value, got {shown(text)}"
            )
        return Expectation(metric, "==", text, f"== {text.strip()}")
    op, raw = match.groups()
    try:
        target: float | str = float(raw)
    except ValueError:
        if op not in ("==", "!="):
            raise UserInputError(
                f"{source}: expect.{metric} must compare with a number after {op!r}, got "
                f"{shown(text)}"
            ) from None
        target = raw.strip("\"'")
    return Expectation(metric, op, target, f"{op} {raw}")


def _lookup(summary: dict[str, Any], path: str, *, source: str) -> Any:
    node: Any = summary
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
            walked.append(part)
            continue
        where = ".".join(walked) or "the summary"
        known = ", ".join(sorted(node)) if isinstance(node, dict) else "no keys"
        raise UserInputError(
            f"{source}: expect.{path} names no metric: {part!r} is not in {where} (known: {known})"
        )
    return node


def _holds(observed: Any, op: str, target: float | str | bool) -> bool:
    if isinstance(target, float):
        if observed is None or isinstance(observed, bool) or not isinstance(observed, int | float):
            return op == "!="
        value = float(observed)
        if math.isnan(value):
            return False
        return {
            "<": value < target,
            "<=": value <= target,
            ">": value > target,
            ">=": value >= target,
            "==": value == target,
            "!=": value != target,
        }[op]
    equal = observed == target or str(observed) == str(target)
    return equal if op == "==" else not equal


def check_expectations(
    summary: dict[str, Any], expect: dict[str, Any], *, source: str
) -> dict[str, Any]:
    """Verdict block: every expectation with its observed value, and ``passed`` overall."""
    results = []
    for metric, value in expect.items():
        exp = parse_expectation(metric, value, source=source)
        observed = _lookup(summary, metric, source=source)
        if isinstance(observed, dict | list):
            raise UserInputError(
                f"{source}: expect.{metric} names a group, not a metric (pick one of its keys)"
            )
        results.append(
            {
                "metric": metric,
                "condition": exp.condition,
                "observed": observed,
                "passed": _holds(observed, exp.op, exp.target),
            }
        )
    return {"passed": all(r["passed"] for r in results), "expectations": results}
