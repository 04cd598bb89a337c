"""Fuzzing the scenario loader and the ``--set`` parser (Hypothesis).

Inputs: the shipped scenarios with random edits to their tables (values of every TOML type,
wrong types, deleted and invented keys), random TOML-ish text and random bytes written to
files, and random ``--set`` overrides (well-formed paths with random values, and noise).
Property: ``parse_scenario`` / ``load_scenario`` return a ``Scenario`` or raise one-line
``UserInputError`` naming the file (or ``--set``); for an accepted scenario the resource
estimate is finite or infinite but never fails, and the guard refuses only with a one-line
error.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import tempfile
import tomllib
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fuzzing import FAST, LONG, attempt, describe
from hypothesis import given, note, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from reliability_support import ROOT

from lab.footprint import MemoryLimit, check_memory, estimate_run
from lab.scenario import Scenario, load_scenario, parse_scenario
from replay.errors import UserInputError

SOURCE = "fuzz.toml"
NAMES = (f"{SOURCE}: ", "--set ")
BASES = {
    path.name: tomllib.loads(path.read_text(encoding="utf-8"))
    for path in sorted((ROOT / "scenarios").glob("*.toml"))
}
TEXTS = [path.read_text(encoding="utf-8") for path in sorted((ROOT / "scenarios").glob("*.toml"))]


def _field_names(model: Any, seen: set[Any] | None = None) -> set[str]:
    """Every setting name in the scenario schema (for keys that look real)."""
    seen = set() if seen is None else seen
    names: set[str] = set()
    if model in seen:
        return names
    seen.add(model)
    for name, field in getattr(model, "model_fields", {}).items():
        names.add(name)
        stack = [field.annotation]
        while stack:
            node = stack.pop()
            if isinstance(node, type) and issubclass(node, BaseModel):
                names |= _field_names(node, seen)
            stack.extend(typing.get_args(node))
    return names


VOCABULARY = sorted(_field_names(Scenario) | {"baseline", "candidate", "kind", "x"})
WORDS = [
    "10m",
    "1h30m",
    "0s",
    "-5s",
    "250ms",
    "1e9h",
    "99999999999d",
    "nan",
    "inf",
    "poisson",
    "diurnal",
    "lognormal",
    "exponential",
    "empirical",
    "baseline",
    "candidate",
    "canary",
    "staged",
    "bandit",
    "als",
    "bpr",
    "warm_start",
    "< 120",
    "!= rolled_back",
    "latency_ms.p99",
    "replica_crash",
    "error_burst",
    "synthetic",
    "log",
    "${HOME}",
    "${UNSET_VARIABLE_FOR_FUZZ}/x.csv",
    "80%",
    "-7d",
    "",
    " ",
    "<script>alert(1)</script>",
    "\x1b[31m",
]

keys = st.sampled_from(VOCABULARY) | st.text(max_size=10)
scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=200_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(WORDS),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=10,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out += _paths(child, (*prefix, i))
    return out


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def edited_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped scenario with 1-4 random edits: set, delete, add a key, change the type."""
    data = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["set", "delete", "add", "wrap"]))
        if not path:
            data[draw(keys)] = draw(values)
            continue
        parent, last = _at(data, path[:-1]), path[-1]
        if action == "set":
            parent[last] = draw(values)
        elif action == "delete":
            del parent[last]
        elif action == "add":
            target = parent[last]
            if isinstance(target, dict):
                target[draw(keys)] = draw(values)
            elif isinstance(target, list):
                target.append(draw(values))
            else:
                parent[last] = [target, draw(values)]
        else:
            parent[last] = {draw(keys): parent[last]}
    return data


def _guard(scenario: Scenario) -> None:
    """The resource guard must handle every scenario the loader accepts."""
    estimate = estimate_run(scenario, source=SOURCE)
    assert estimate.total_bytes >= 0 or math.isnan(estimate.total_bytes)
    try:
        check_memory(estimate, MemoryLimit(8 * 10**9, "test"), source=SOURCE)
    except UserInputError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{SOURCE}: the run needs")


def check_tables(data: dict[str, Any]) -> None:
    note(describe(data))
    scenario = attempt(lambda: parse_scenario(data, source=SOURCE), names=NAMES)
    if scenario is not None:
        _guard(scenario)


# --- text files ---------------------------------------------------------------------------

HOSTILE = [
    "[" * 3000 + "]" * 3000,
    "9" * 5000,
    "{ a = " * 50 + "1" + " }" * 50,
    '"""',
    "'''",
    "\\u0000",
    "\x00",
    "\ufeff",
    "\r\n",
    "= =",
    "[[faults]]",
    "[models.x.y.z]",
    "1979-05-27T07:32:00Z",
    "inf",
    "nan",
    "0x_1",
    "1__2",
]


@st.composite
def toml_texts(draw: st.DrawFn) -> str:
    """A shipped scenario's text with random cuts, insertions and hostile fragments."""
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["cut", "insert", "hostile", "line"]))
        if kind == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif kind == "insert":
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
        elif kind == "hostile":
            text = text[:at] + draw(st.sampled_from(HOSTILE)) + text[at:]
        else:
            line = f"\n{draw(keys)} = {draw(st.sampled_from(HOSTILE + WORDS))}\n"
            text = text[:at] + line + text[at:]
    return text


def check_file(content: str | bytes) -> None:
    note(describe(content))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / SOURCE
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        else:
            path.write_bytes(content)
        names = (*NAMES, f"{path}: ")
        scenario = attempt(lambda: load_scenario(path), names=names)
    if scenario is not None:
        _guard(scenario)


# --- --set overrides ---------------------------------------------------------------------


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value).replace("inf", "inf").replace("nan", "nan")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_literal(v)}' for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


path_token = st.one_of(
    st.sampled_from(VOCABULARY),
    st.integers(0, 5).map(lambda i: f"[{i}]"),
    st.text(min_size=1, max_size=6).map(lambda t: '"' + t.replace('"', "") + '"'),
    st.text(max_size=4),
)


def _dotted(path: tuple[Any, ...]) -> str:
    """A path as ``--set`` writes it: names, ``[i]`` and quoted keys holding dots."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", part) else f'"{part}"'
            out += ("." if out else "") + name
    return out


@st.composite
def overrides(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(base scenario, overrides): half on the base's real paths, half on made-up ones."""
    base = draw(st.sampled_from(sorted(BASES)))
    real = [p for p in _paths(BASES[base]) if p]
    out = []
    for _ in range(draw(st.integers(1, 3))):
        choices = [
            values.map(_toml_literal),
            st.text(max_size=10),
            st.sampled_from(HOSTILE + WORDS),
        ]
        if draw(st.booleans()):
            where = draw(st.sampled_from(real))
            path = _dotted(where)
            # The value already there, written back as TOML: overrides that must be accepted.
            choices.append(st.just(_toml_literal(_at(BASES[base], where))))
        else:
            tokens = draw(st.lists(path_token, min_size=1, max_size=4))
            path = ".".join(tokens).replace(".[", "[")
        value = draw(st.one_of(choices))
        out.append(draw(st.sampled_from([f"{path}={value}", f"{path}={value}", path, value])))
    return base, out


def check_overrides(base: str, texts: list[str]) -> None:
    note(f"{base}: {describe(texts)}")
    data = copy.deepcopy(BASES[base])
    scenario = attempt(lambda: parse_scenario(data, source=SOURCE, overrides=texts), names=NAMES)
    if scenario is not None:
        _guard(scenario)


# --- the tests: a default run and a long one ------------------------------------------------

FUZZERS: dict[str, tuple[st.SearchStrategy[tuple[Any, ...]], Callable[..., None]]] = {
    "tables": (st.tuples(edited_scenarios()), check_tables),
    "random_dicts": (st.tuples(st.dictionaries(keys, values, max_size=6)), check_tables),
    "toml_text": (st.tuples(toml_texts()), check_file),
    "random_text": (st.tuples(st.text(max_size=400)), check_file),
    "random_bytes": (st.tuples(st.binary(max_size=400)), check_file),
    "overrides": (overrides(), check_overrides),
    "override_noise": (
        st.tuples(st.sampled_from(sorted(BASES)), st.lists(st.text(max_size=30), max_size=3)),
        check_overrides,
    ),
}


def _fuzz_test(name: str, profile: settings) -> Callable[[], None]:
    strategy, check = FUZZERS[name]

    @profile
    @given(strategy)
    def fuzz(args: tuple[Any, ...]) -> None:
        check(*args)

    return fuzz


# One module-level test per fuzzer (named test_fuzz_<name> and test_fuzz_<name>_long), so
# that pytest and Hypothesis's statistics report each on its own.
for _name in FUZZERS:
    globals()[f"test_fuzz_{_name}"] = _fuzz_test(_name, FAST)
    globals()[f"test_fuzz_{_name}_long"] = pytest.mark.slow(_fuzz_test(_name, LONG))


# --- regressions: bugs the fuzzers found, fixed ---------------------------------------------

_DEEP = "[" * 50_000 + "]" * 50_000
_HUGE_INT = "9" * 5000


@pytest.mark.parametrize("where", ["file", "--set"])
def test_deeply_nested_toml_is_one_line(where: str, tmp_path: Path) -> None:
    _expect_user_error(where, _DEEP, tmp_path)


@pytest.mark.parametrize("where", ["file", "--set"])
def test_huge_toml_integer_is_one_line(where: str, tmp_path: Path) -> None:
    _expect_user_error(where, _HUGE_INT, tmp_path)


def _expect_user_error(where: str, value: str, tmp_path: Path) -> None:
    try:
        if where == "file":
            path = tmp_path / SOURCE
            path.write_text(f'name = "x"\nseed = {value}\n', encoding="utf-8")
            load_scenario(path)
        else:
            parse_scenario(copy.deepcopy(BASES["quickstart.toml"]), overrides=[f"seed={value}"])
    except UserInputError:
        return
    except (RecursionError, ValueError) as exc:
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}"[:300]) from exc
