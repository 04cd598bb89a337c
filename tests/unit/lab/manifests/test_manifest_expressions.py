"""The condition evaluator against a table of hand-worked expressions.

Each row was worked out by hand from the expr language's rules as Argo Rollouts documents
them for ``successCondition`` / ``failureCondition`` (analysis.md, "Handling Metric Results":
a NaN measurement fails ``result >= 0.95`` but passes ``isNaN(result) || result >= 0.95``;
an empty Prometheus vector passes ``len(result) == 0 || result[0] >= 0.95`` and fails
``len(result) > 0 && result[0] >= 0.95``; ``default(result, 0) < 0.05`` turns a nil Datadog
result into 0).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.manifests.expressions import (
    ExpressionEvaluationError,
    ExpressionSyntaxError,
    compile_condition,
    describe,
    evaluate,
    holds,
    parse,
)

NAN = math.nan
INF = math.inf

#: (condition, result, expected truth value), each worked by hand.
TRUTH_TABLE: list[tuple[str, Any, bool]] = [
    # Prometheus vectors: index 0 holds the value.
    ("result[0] >= 0.95", [0.97], True),
    ("result[0] >= 0.95", [0.95], True),
    ("result[0] >= 0.95", [0.9499], False),
    ("result[0] <= 0.95", [0.2], True),
    ("result[0] >= 10", [12.0], True),
    ("result[-1] < 1", [5.0, 0.5], True),
    # Scalars (Datadog, New Relic, a Prometheus scalar query).
    ("result > 10", 10.5, True),
    ("result > 10", 10, False),
    ("result == 10", 10.0, True),
    ("result != 10", 9, True),
    # NaN compares false with everything, so the documented three cases hold.
    ("result >= 0.95", NAN, False),
    ("result < 0.95", NAN, False),
    ("isNaN(result) || result >= 0.95", NAN, True),
    ("isNaN(result[0])", [NAN], True),
    # Infinity.
    ("result >= 0.95", INF, True),
    ("isInf(result)", INF, True),
    ("isInf(result)", -INF, True),
    ("isInf(result)", 3.0, False),
    # Empty vectors: len() guards the index, && and || short-circuit.
    ("len(result) == 0 || result[0] >= 0.95", [], True),
    ("len(result) > 0 && result[0] >= 0.95", [], False),
    ("len(result) > 0 && result[0] >= 0.95", [0.99], True),
    # nil (Datadog's empty result) and default() / isNil() / ??.
    ("default(result, 0) < 0.05", None, True),
    ("default(result, 0) < 0.05", 0.07, False),
    ("isNil(result)", None, True),
    ("isNil(result)", 0.0, False),
    ("(result ?? 1) > 0.5", None, True),
    # Precedence: && binds tighter than ||; comparison tighter than &&; * tighter than +.
    ("true || false && false", 0, True),
    ("(true || false) && false", 0, False),
    ("result[0] + result[1] * 2 == 7", [1, 3], True),
    ("(result[0] + result[1]) * 2 == 8", [1, 3], True),
    ("2 ** 3 ** 2 == 512", 0, True),
    ("2 ^ 10 == 1024", 0, True),
    ("-result < 0", 3, True),
    ("!(result > 1)", 0.5, True),
    ("not (result > 1)", 0.5, True),
    ("result > 1 and result < 2", 1.5, True),
    ("result < 1 or result > 2", 1.5, False),
    ("7 % 3 == 1", 0, True),
    ("result / 0 > 1e300", 1.0, True),
    ("isNaN(result / 0)", 0.0, True),
    # Ternary, membership, arrays.
    ("result > 1 ? result < 5 : false", 3, True),
    ("result > 1 ? result < 5 : false", 0, False),
    ("result in [1, 2, 3]", 2, True),
    ("result not in [1, 2, 3]", 2, False),
    ("len([1, 2, 3]) == 3", 0, True),
    # Conversions and other functions.
    ("asInt(result) == 3", 3.9, True),
    ("asFloat(result) > 0.5", "0.75", True),
    ("asInt(result) == 12", "12", True),
    ("abs(result) < 0.1", -0.05, True),
    ("max(result[0], result[1]) == 4", [4, 2], True),
    ("min(result[0], result[1]) == 2", [4, 2], True),
    # Predicates over every element (range queries).
    ("all(result, # < 1000)", [10, 999], True),
    ("all(result, # < 1000)", [10, 1000], False),
    ("all(result, # < 1000)", [], True),
    ("any(result, # > 5)", [1, 6], True),
    ("none(result, # > 5)", [1, 2], True),
    ("one(result, # > 5)", [6, 7], False),
    # Maps (structured results) and strings.
    ("result.score >= 90", {"score": 93}, True),
    ('result["score"] < 75', {"score": 80}, False),
    ("result == 'true'", "true", True),
    ('result == "ok"', "no", False),
    ("'a' + 'b' == 'ab'", 0, True),
    ("len(result) == 3", "abc", True),
    # Numbers in every written form.
    ("result == .5", 0.5, True),
    ("result == 5.", 5, True),
    ("result < 1e-3", 0.0005, True),
    ("result == 2E2", 200, True),
    # Equality between different types is false, not an error.
    ("result == nil", None, True),
    ("result == 'x'", 1, False),
    ("result != nil", 1, True),
]


@pytest.mark.parametrize(("text", "result", "expected"), TRUTH_TABLE)
def test_truth_table(text: str, result: Any, expected: bool) -> None:
    assert holds(text, result) is expected


#: Conditions that parse but cannot be evaluated on this value: an errored measurement.
EVALUATION_ERRORS: list[tuple[str, Any, str]] = [
    ("result[0] >= 0.95", [], "index out of range: 0 (length 0)"),
    ("result[2] > 1", [1.0], "index out of range: 2 (length 1)"),
    ("result < 0.05", None, "invalid operation < (mismatched types nil and number)"),
    ("result >= 0.95", [0.97], "invalid operation >= (mismatched types array and number)"),
    ("result[0] > 1", None, "cannot index nil"),
    ("isNaN(result)", [1.0], "isNaN() needs a number, got array"),
    ("len(result) > 0", 3.0, "len() needs an array, a string or a map, got number"),
    ("result && true", 1.0, "&& needs true or false, got number"),
    ("result + 1", 1.0, "expected true or false, got number"),
    ("result.score > 1", 5.0, "number has no field 'score'"),
    ("asInt(result) > 1", "x1", "asInt() cannot read 'x1'"),
    ("all(result, # > 1)", 3, "all() needs an array, got number"),
    ("result['a'] > 1", [1], "index must be an integer, got string"),
    ("result % 2 == 0", 3.5, "% needs integers"),
    ("result % 0 == 0", 3, "integer divide by zero"),
]


@pytest.mark.parametrize(("text", "result", "message"), EVALUATION_ERRORS)
def test_evaluation_errors(text: str, result: Any, message: str) -> None:
    condition = compile_condition(text)
    with pytest.raises(ExpressionEvaluationError) as caught:
        condition(result)
    assert str(caught.value) == message


#: Texts that do not parse: the message names what is wrong and the column (from 1).
SYNTAX_ERRORS: list[tuple[str, str]] = [
    ("", "empty condition at column 1"),
    ("result[0] >=", "expected a value, found the end at column 13"),
    ("result[0 >= 1", "expected ']', found the end at column 14"),
    ("(result > 1", "expected ')', found the end at column 12"),
    ("result > 1)", "unexpected ')' at column 11"),
    ("result >== 1", "unexpected character '=' at column 10"),
    ("result @ 1", "unexpected character '@' at column 8"),
    ("results[0] > 1", "unknown name 'results' (conditions read 'result') at column 1"),
    (
        "mean(result) > 1",
        "unknown function 'mean' (known: abs, all, any, asFloat, asInt, default, isInf, "
        "isNaN, isNil, len, max, min, none, one) at column 1",
    ),
    ("len(result, 1) > 1", "len() takes 1 arguments, got 2 at column 1"),
    ("default(result) > 1", "default() takes 2 arguments, got 1 at column 1"),
    ("result > 1 ? true", "expected ':', found the end at column 18"),
    ("result. > 1", "expected a field name after '.' at column 9"),
    ("'unterminated", 'unexpected character "\'" at column 1'),
    ("(" * 100 + "1" + ")" * 100, "nested too deeply at column 65"),
    ("!" * 100 + "true", "nested too deeply at column 65"),
]


@pytest.mark.parametrize(("text", "message"), SYNTAX_ERRORS)
def test_syntax_errors_name_the_column(text: str, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        parse(text)
    assert str(caught.value) == message


def test_overlong_conditions_are_refused() -> None:
    with pytest.raises(ExpressionSyntaxError, match="longer than 2000 characters"):
        parse("result > 1 && " * 200 + "true")


def test_predicate_element_is_scoped() -> None:
    with pytest.raises(ExpressionEvaluationError, match="'#' used outside"):
        evaluate(parse("# > 1"), 3)
    # Nested predicates see their own element.
    assert holds("all(result, any([#], # > 0))", [1, 2]) is True


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "nil"), (NAN, "NaN"), (INF, "+Inf"), (-INF, "-Inf"), ([0.97, 1.0], "[0.97, 1]")],
)
def test_describe_measurements_like_argo(value: Any, text: str) -> None:
    assert describe(value) == text


@settings(deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e6, 1e6))
def test_comparisons_agree_with_python_floats(value: float, bound: float) -> None:
    assert holds(f"result >= {bound!r}", value) is (value >= bound)
    assert holds(f"result[0] < {bound!r}", [value]) is (value < bound)


@settings(deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        tree = parse(text)
    except ExpressionSyntaxError as error:
        assert error.column >= 1
        return
    with contextlib.suppress(ExpressionEvaluationError):
        evaluate(tree, [1.0])
