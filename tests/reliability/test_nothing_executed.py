"""Nothing a user hands the lab is ever executed, unpickled or injected into a page.

* No code in ``replay/``, ``sim/``, ``lab/``, ``reports/`` or ``rollout_lab/`` calls
  ``eval`` / ``exec``, touches ``pickle`` (or its cousins ``marshal``, ``shelve``, ``dill``,
  ``cloudpickle``, ``read_pickle``), passes ``allow_pickle=True`` or calls ``yaml.load``.
  The search reads the code's tokens, so a comment or docstring that says "no pickle" is
  fine.  ``ALLOWED`` would list a legitimate use (file and line text); there is none.
* Every ``np.load`` passes ``allow_pickle=False`` explicitly.
* Names, descriptions and version names full of HTML and script come out escaped in
  report.html.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path

from reliability_support import ROOT, Outcome

PACKAGES = ("replay", "sim", "lab", "reports", "rollout_lab")
CALLS = {"eval", "exec"}
NAMES = {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "read_pickle"}
#: (file relative to the root, the offending line stripped): legitimate uses. Empty.
ALLOWED: set[tuple[str, str]] = set()


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _findings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, what) for every forbidden use in the code tokens of ``path``."""
    text = path.read_text(encoding="utf-8")
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(text).readline)
        if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.STRING)
    ]
    for i, tok in enumerate(tokens):
        before = tokens[i - 1].string if i else ""
        after = tokens[i + 1].string if i + 1 < len(tokens) else ""
        if tok.type != tokenize.NAME:
            continue
        if tok.string in CALLS and after == "(" and before != ".":
            yield tok.start[0], f"{tok.string}("
        if tok.string in NAMES:
            yield tok.start[0], tok.string
        if tok.string == "allow_pickle" and after == "=":
            value = tokens[i + 2].string if i + 2 < len(tokens) else ""
            if value != "False":
                yield tok.start[0], f"allow_pickle={value}"
        if (
            tok.string == "yaml"
            and after == "."
            and tokens[i + 2].string in ("load", "unsafe_load")
        ):
            yield tok.start[0], "yaml.load("


def test_no_code_evaluates_or_unpickles_anything() -> None:
    found = []
    for path in _sources():
        lines = path.read_text(encoding="utf-8").splitlines()
        relative = str(path.relative_to(ROOT))
        for line, what in _findings(path):
            if (relative, lines[line - 1].strip()) not in ALLOWED:
                found.append(f"{relative}:{line}: {what}: {lines[line - 1].strip()}")
    assert found == []


def test_the_search_sees_through_comments_but_not_code(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""No pickle here, and never eval(text)."""\n'
        "# pickle.loads(x) would be wrong\n"
        "frame.eval(x)\n"
        "import pickle\n"
        "value = eval(text)\n"
        "np.load(f, allow_pickle=True)\n"
        "yaml.load(stream)\n",
        encoding="utf-8",
    )
    assert [what for _, what in _findings(sample)] == [
        "pickle",
        "eval(",
        "allow_pickle=True",
        "yaml.load(",
    ]


def _np_loads(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "load"
                and isinstance(func.value, ast.Name)
                and func.value.id in ("np", "numpy")
            ):
                yield node


def test_every_np_load_refuses_pickles() -> None:
    calls = 0
    bad = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for call in _np_loads(ast.parse(text)):
            calls += 1
            flags = [k for k in call.keywords if k.arg == "allow_pickle"]
            if not (
                flags and isinstance(flags[0].value, ast.Constant) and flags[0].value.value is False
            ):
                bad.append(f"{path.relative_to(ROOT)}:{call.lineno}")
        assert not re.search(r"from numpy import [^\n]*\bload\b", text), path
    assert calls >= 1, "no np.load found: the search is looking in the wrong place"
    assert bad == []


HOSTILE = """\
name = "<script>alert('name')</script>"
description = "\\"><img src=x onerror=alert('description')> & </textarea><svg onload=alert(1)>"
seed = 3

[traffic]
duration = "20m"
users = 2000
items = 300
arrivals = { kind = "poisson", rate_per_s = 10 }

[models."<b onmouseover=alert('base')>base</b>"]

[models."cand</title><script>alert('cand')</script>$x^$"]
parent = "<b onmouseover=alert('base')>base</b>"

[rollout]
baseline = "<b onmouseover=alert('base')>base</b>"
candidate = "cand</title><script>alert('cand')</script>$x^$"
weight = 20
analysis = { interval = "5m" }
guardrails = [{ metric = "latency_ms.p99", max = 150 }]

[[faults]]
kind = "latency_spike"
version = "cand</title><script>alert('cand')</script>$x^$"
at = "5m"
length = "5m"

[expect]
"outcome" = "!= <script>alert('expect')</script>"
"""


def test_html_in_names_is_escaped_in_the_report(
    tmp_path: Path, cli: Callable[..., Outcome]
) -> None:
    scenario = tmp_path / "hostile.toml"
    scenario.write_text(HOSTILE, encoding="utf-8")
    out = tmp_path / "run"
    result = cli("run", str(scenario), "--out", str(out), "--quiet")
    assert result.code == 0, result.err
    page = (out / "report.html").read_text(encoding="utf-8")
    lowered = page.lower()
    assert "<script" not in lowered
    assert "<svg onload" not in lowered and "<img src=x" not in lowered
    assert "<textarea" not in lowered
    assert not re.search(r"<[^>]*\son\w+\s*=", page), "an event handler attribute got through"
    assert "javascript:" not in lowered
    for escaped in (
        "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(&#x27;description&#x27;)&gt;",
        "&lt;b onmouseover=alert(&#x27;base&#x27;)&gt;base&lt;/b&gt;",
        "cand&lt;/title&gt;&lt;script&gt;alert(&#x27;cand&#x27;)&lt;/script&gt;",
        "&lt;script&gt;alert(&#x27;expect&#x27;)&lt;/script&gt;",
    ):
        assert escaped in page, escaped
    # One page title; the figures' SVG <title> tooltips each close (nothing broke out of one).
    head, _, body = page.partition("</head>")
    assert head.count("<title>") == 1 and head.count("</title>") == 1
    assert body.count("<title>") == body.count("</title>")
