"""The condition language of Argo Rollouts' ``successCondition`` / ``failureCondition``.

Argo Rollouts evaluates conditions with the expr language over one variable, ``result`` (the
measurement: a number, a list of numbers such as a Prometheus vector, or nil when a provider
returned nothing).  This module is a small parser of its own for the subset those conditions
use — tokens, then an AST by precedence climbing, then evaluation over ``result`` — so that a
manifest's text is never handed to Python's ``eval``.

Grammar (lowest precedence first)::

    expr     := or ( "?" expr ":" expr )?          ternary
    or       := and ( ("||" | "or") and )*
    and      := nil ( ("&&" | "and") nil )*
    nil      := cmp ( "??" cmp )*                   nil-coalescing
    cmp      := sum ( ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") sum )*
    sum      := product ( ("+" | "-") product )*
    product  := power ( ("*" | "/" | "%") power )*
    power    := unary ( ("**" | "^") power )?       right-associative
    unary    := ("!" | "not" | "-" | "+") unary | postfix
    postfix  := atom ( "[" expr "]" | "." NAME | "(" args ")" )*
    atom     := NUMBER | STRING | "true" | "false" | "nil" | NAME | "#" | "(" expr ")"
              | "[" ( expr ( "," expr )* )? "]"

Functions: ``len``, ``isNaN``, ``isInf``, ``isNil``, ``default(value, fallback)`` (the
fallback when the value is nil), ``asInt``, ``asFloat``, ``abs``, ``min``, ``max``, and the
predicates ``all`` / ``any`` / ``none`` / ``one`` (``all(result, # < 1000)``: ``#`` is the
element).  Like expr, comparing a number with nil, indexing past the end of a list or using a
non-boolean with ``&&`` is an error — which Argo Rollouts records as an errored measurement.

Two error types: ``ExpressionSyntaxError`` (the text does not parse: a user mistake, reported
with its column) and ``ExpressionEvaluationError`` (the value does not fit the expression:
an errored measurement).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Condition",
    "Expr",
    "ExpressionEvaluationError",
    "ExpressionSyntaxError",
    "compile_condition",
    "describe",
    "evaluate",
    "holds",
    "parse",
]

#: Longest condition accepted, and deepest nesting: beyond that a text is not a condition.
MAX_LENGTH = 2_000
MAX_DEPTH = 64


class ExpressionSyntaxError(ValueError):
    """The text is not an expression of the supported subset; ``column`` counts from 1."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} at column {column}")
        self.reason = message
        self.column = column


class ExpressionEvaluationError(ValueError):
    """The expression parsed but cannot be evaluated on this value (an errored measurement)."""


# --- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "number", "string", "name", "op", "end"
    text: str
    value: Any
    column: int


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|\?\?|&&|\|\||==|!=|<=|>=|[-+*/%^<>!?:.,()\[\]\#])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionSyntaxError(f"unexpected character {text[pos]!r}", pos + 1)
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "number":
            value: Any = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("number", raw, value, pos + 1))
        elif kind == "string":
            tokens.append(Token("string", raw, _unescape(raw[1:-1]), pos + 1))
        elif kind in ("name", "op"):
            tokens.append(Token(kind, raw, raw, pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", None, len(text) + 1))
    return tokens


# --- the syntax tree --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Element:
    """``#``: the element a predicate (``all``, ``any``...) is applied to."""


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Ternary:
    test: Expr
    then: Expr
    otherwise: Expr


@dataclass(frozen=True, slots=True)
class Index:
    target: Expr
    index: Expr


@dataclass(frozen=True, slots=True)
class Member:
    target: Expr
    name: str


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    column: int


Expr = Literal | Name | Element | ListOf | Unary | Binary | Ternary | Index | Member | Call

_KEYWORDS = {"true": True, "false": False, "nil": None}
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    @property
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek
        return token.kind in ("op", "name") and token.text in texts

    def expect(self, text: str) -> Token:
        token = self.peek
        if token.kind in ("op", "name") and token.text == text:
            return self.next()
        found = "the end" if token.kind == "end" else repr(token.text)
        raise ExpressionSyntaxError(f"expected {text!r}, found {found}", token.column)

    def parse(self) -> Expr:
        tree = self.expression()
        token = self.peek
        if token.kind != "end":
            raise ExpressionSyntaxError(f"unexpected {token.text!r}", token.column)
        return tree

    def expression(self) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionSyntaxError("nested too deeply", self.peek.column)
        test = self.logical_or()
        if self.at("?"):
            self.next()
            then = self.expression()
            self.expect(":")
            otherwise = self.expression()
            test = Ternary(test, then, otherwise)
        self.depth -= 1
        return test

    def logical_or(self) -> Expr:
        left = self.logical_and()
        while self.at("||", "or"):
            self.next()
            left = Binary("||", left, self.logical_and())
        return left

    def logical_and(self) -> Expr:
        left = self.coalesce()
        while self.at("&&", "and"):
            self.next()
            left = Binary("&&", left, self.coalesce())
        return left

    def coalesce(self) -> Expr:
        left = self.comparison()
        while self.at("??"):
            self.next()
            left = Binary("??", left, self.comparison())
        return left

    def comparison(self) -> Expr:
        left = self.sum()
        while True:
            if self.at(*_COMPARISONS, "in"):
                op = self.next().text
            elif self.at("not") and self.tokens[self.pos + 1].text == "in":
                self.pos += 2
                op = "not in"
            else:
                return left
            left = Binary(op, left, self.sum())

    def sum(self) -> Expr:
        left = self.product()
        while self.at("+", "-"):
            op = self.next().text
            left = Binary(op, left, self.product())
        return left

    def product(self) -> Expr:
        left = self.power()
        while self.at("*", "/", "%"):
            op = self.next().text
            left = Binary(op, left, self.power())
        return left

    def power(self) -> Expr:
        base = self.unary()
        if self.at("**", "^"):
            self.next()
            return Binary("**", base, self.power())
        return base

    def unary(self) -> Expr:
        if self.at("!", "not", "-", "+"):
            op = self.next().text
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionSyntaxError("nested too deeply", self.peek.column)
            operand = self.unary()
            self.depth -= 1
            return Unary("!" if op == "not" else op, operand)
        return self.postfix()

    def postfix(self) -> Expr:
        node = self.atom()
        while True:
            if self.at("["):
                self.next()
                index = self.expression()
                self.expect("]")
                node = Index(node, index)
            elif self.at("."):
                self.next()
                token = self.next()
                if token.kind != "name":
                    raise ExpressionSyntaxError("expected a field name after '.'", token.column)
                node = Member(node, token.text)
            elif self.at("(") and isinstance(node, Name):
                self.next()
                args: list[Expr] = []
                if not self.at(")"):
                    args.append(self.expression())
                    while self.at(","):
                        self.next()
                        args.append(self.expression())
                self.expect(")")
                node = _call(node, tuple(args))
            else:
                return node

    def atom(self) -> Expr:
        token = self.next()
        if token.kind in ("number", "string"):
            return Literal(token.value)
        if token.kind == "name":
            if token.text in _KEYWORDS:
                return Literal(_KEYWORDS[token.text])
            return Name(token.text, token.column)
        if token.text == "#":
            return Element()
        if token.text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if token.text == "[":
            items: list[Expr] = []
            if not self.at("]"):
                items.append(self.expression())
                while self.at(","):
                    self.next()
                    items.append(self.expression())
            self.expect("]")
            return ListOf(tuple(items))
        found = "the end" if token.kind == "end" else repr(token.text)
        raise ExpressionSyntaxError(f"expected a value, found {found}", token.column)


def _call(name: Name, args: tuple[Expr, ...]) -> Call:
    arity = _ARITY.get(name.name)
    if arity is None:
        known = ", ".join(sorted(_ARITY))
        raise ExpressionSyntaxError(f"unknown function {name.name!r} (known: {known})", name.column)
    if len(args) not in arity:
        expected = " or ".join(str(n) for n in sorted(arity))
        raise ExpressionSyntaxError(
            f"{name.name}() takes {expected} arguments, got {len(args)}", name.column
        )
    return Call(name.name, args, name.column)


def parse(text: str) -> Expr:
    """The syntax tree of ``text``; ``ExpressionSyntaxError`` when it does not parse."""
    if not text.strip():
        raise ExpressionSyntaxError("empty condition", 1)
    if len(text) > MAX_LENGTH:
        raise ExpressionSyntaxError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH)
    tree = _Parser(text).parse()
    _check_names(tree)
    return tree


def _check_names(node: Expr) -> None:
    """Only ``result`` is a variable: any other bare name is a mistake caught at load time."""
    if isinstance(node, Name) and node.name != "result":
        raise ExpressionSyntaxError(
            f"unknown name {node.name!r} (conditions read 'result')", node.column
        )
    for child in _children(node):
        _check_names(child)


def _children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, ListOf):
        return node.items
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Ternary):
        return (node.test, node.then, node.otherwise)
    if isinstance(node, Index):
        return (node.target, node.index)
    if isinstance(node, Member):
        return (node.target,)
    if isinstance(node, Call):
        return node.args
    return ()


# --- evaluation ---------------------------------------------------------------------------------


def _type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionEvaluationError(f"{what} needs a number, got {_type(value)}")
    return value


def _truth(value: Any, op: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionEvaluationError(f"{op} needs true or false, got {_type(value)}")
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("==", "!="):
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
        same = left == right if numbers or _type(left) == _type(right) else False
        return same if op == "==" else not same
    if _type(left) != _type(right) or _type(left) not in ("number", "string"):
        raise ExpressionEvaluationError(
            f"invalid operation {op} (mismatched types {_type(left)} and {_type(right)})"
        )
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    a, b = _number(left, op), _number(right, op)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        # Go's float division: x / 0 is ±Inf (or NaN for 0 / 0), not an error.
        if b == 0:
            return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
        return a / b
    if op == "%":
        if isinstance(a, float) or isinstance(b, float):
            raise ExpressionEvaluationError("% needs integers")
        if b == 0:
            raise ExpressionEvaluationError("integer divide by zero")
        return int(math.fmod(a, b))
    try:
        return float(a) ** float(b)
    except (OverflowError, ZeroDivisionError):
        return math.inf


def _index(target: Any, index: Any) -> Any:
    if isinstance(target, dict):
        if not isinstance(index, str):
            raise ExpressionEvaluationError(f"map key must be a string, got {_type(index)}")
        return target.get(index)
    if isinstance(target, list | tuple | str):
        if isinstance(index, bool) or not isinstance(index, int):
            raise ExpressionEvaluationError(f"index must be an integer, got {_type(index)}")
        position = index + len(target) if index < 0 else index
        if not 0 <= position < len(target):
            raise ExpressionEvaluationError(f"index out of range: {index} (length {len(target)})")
        return target[position]
    raise ExpressionEvaluationError(f"cannot index {_type(target)}")


def _len(value: Any) -> int:
    if isinstance(value, list | tuple | str | dict):
        return len(value)
    raise ExpressionEvaluationError(f"len() needs an array, a string or a map, got {_type(value)}")


def _as_int(value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ExpressionEvaluationError(f"asInt() cannot read {value!r}") from None
    number = _number(value, "asInt()")
    if not math.isfinite(number):
        raise ExpressionEvaluationError(f"asInt() cannot convert {number}")
    return int(number)


def _as_float(value: Any) -> float:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ExpressionEvaluationError(f"asFloat() cannot read {value!r}") from None
    return float(_number(value, "asFloat()"))


_SIMPLE: dict[str, Callable[..., Any]] = {
    "len": _len,
    "isNaN": lambda v: math.isnan(_number(v, "isNaN()")),
    "isInf": lambda v: math.isinf(_number(v, "isInf()")),
    "isNil": lambda v: v is None,
    "default": lambda v, fallback: fallback if v is None else v,
    "asInt": _as_int,
    "asFloat": _as_float,
    "abs": lambda v: abs(_number(v, "abs()")),
    "min": lambda *vs: min(_number(v, "min()") for v in vs),
    "max": lambda *vs: max(_number(v, "max()") for v in vs),
}
_PREDICATES = ("all", "any", "none", "one")
_ARITY: dict[str, set[int]] = {
    "len": {1},
    "isNaN": {1},
    "isInf": {1},
    "isNil": {1},
    "default": {2},
    "asInt": {1},
    "asFloat": {1},
    "abs": {1},
    "min": {1, 2, 3, 4},
    "max": {1, 2, 3, 4},
    **{name: {2} for name in _PREDICATES},
}


class _Evaluator:
    def __init__(self, result: Any) -> None:
        self.result = result
        self.elements: list[Any] = []

    def run(self, node: Expr) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Name):
            return self.result
        if isinstance(node, Element):
            if not self.elements:
                raise ExpressionEvaluationError("'#' used outside all(), any(), none(), one()")
            return self.elements[-1]
        if isinstance(node, ListOf):
            return [self.run(item) for item in node.items]
        if isinstance(node, Unary):
            value = self.run(node.operand)
            if node.op == "!":
                return not _truth(value, "!")
            number = _number(value, f"unary {node.op}")
            return -number if node.op == "-" else number
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Ternary):
            return self.run(node.then if _truth(self.run(node.test), "?:") else node.otherwise)
        if isinstance(node, Index):
            return _index(self.run(node.target), self.run(node.index))
        if isinstance(node, Member):
            target = self.run(node.target)
            if not isinstance(target, dict):
                raise ExpressionEvaluationError(f"{_type(target)} has no field {node.name!r}")
            return target.get(node.name)
        return self.call(node)

    def binary(self, node: Binary) -> Any:
        op = node.op
        if op == "&&":
            return _truth(self.run(node.left), "&&") and _truth(self.run(node.right), "&&")
        if op == "||":
            return _truth(self.run(node.left), "||") or _truth(self.run(node.right), "||")
        if op == "??":
            left = self.run(node.left)
            return self.run(node.right) if left is None else left
        left, right = self.run(node.left), self.run(node.right)
        if op in _COMPARISONS:
            return _compare(op, left, right)
        if op in ("in", "not in"):
            if isinstance(right, dict):
                found = left in right
            elif isinstance(right, list | tuple):
                found = any(_compare("==", left, item) for item in right)
            else:
                raise ExpressionEvaluationError(f"'in' needs an array or a map, got {_type(right)}")
            return found if op == "in" else not found
        return _arithmetic(op, left, right)

    def call(self, node: Call) -> Any:
        if node.function in _PREDICATES:
            items = self.run(node.args[0])
            if not isinstance(items, list | tuple):
                raise ExpressionEvaluationError(
                    f"{node.function}() needs an array, got {_type(items)}"
                )
            hits = 0
            for item in items:
                self.elements.append(item)
                try:
                    hits += _truth(self.run(node.args[1]), f"{node.function}()")
                finally:
                    self.elements.pop()
            return {
                "all": hits == len(items),
                "any": hits > 0,
                "none": hits == 0,
                "one": hits == 1,
            }[node.function]
        args = [self.run(arg) for arg in node.args]
        return _SIMPLE[node.function](*args)


def evaluate(tree: Expr, result: Any) -> Any:
    """The value of ``tree`` with ``result`` bound; ``ExpressionEvaluationError`` if it fails."""
    try:
        return _Evaluator(result).run(tree)
    except RecursionError:
        raise ExpressionEvaluationError("value nested too deeply") from None


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition; calling it with a measurement gives true or false."""

    text: str
    tree: Expr

    def __call__(self, result: Any) -> bool:
        value = evaluate(self.tree, result)
        if not isinstance(value, bool):
            raise ExpressionEvaluationError(f"expected true or false, got {_type(value)}")
        return value


def compile_condition(text: str) -> Condition:
    """Parse ``text`` once; the returned ``Condition`` evaluates it on each measurement."""
    return Condition(text, parse(text))


def holds(text: str, result: Any) -> bool:
    """Evaluate the condition ``text`` on ``result`` (parsing it each time: for tests)."""
    return compile_condition(text)(result)


def describe(value: Any) -> str:
    """A measurement as Argo Rollouts would show it: ``[0.97]``, ``NaN``, ``nil``."""
    if value is None:
        return "nil"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return f"{value:.6g}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    return str(value)
