"""A short Markdown summary for a CI job's step summary (``--markdown FILE``).

Per scenario: the verdict, the rollout outcome, a table of expectations (metric, expected,
observed, result) and a link to the HTML report; a scenario that could not run says why.
Text from the scenario is escaped so that it cannot break the table or inject markup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from reports.junit import Suite

__all__ = ["MARKDOWN_MARKER", "markdown_summary"]

#: First line of every summary, so that ``--force`` replaces only the lab's own file.
MARKDOWN_MARKER = "<!-- written by rollout-lab -->"

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def _text(value: object) -> str:
    """One line of Markdown-escaped text (control characters shown as escapes)."""
    raw = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(value)
    )
    return _SPECIAL.sub(r"\\\1", raw)


def _link(path: str) -> str:
    target = path.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{_text(path)}](<{target.replace('<', '%3C').replace('>', '%3E')}>)"


def markdown_summary(suites: Sequence[Suite], *, title: str = "rollout-lab") -> str:
    """The document: a headline count, then one section per scenario."""
    failed = sum(1 for s in suites if not s.error and not all(c["passed"] for c in s.cases))
    invalid = sum(1 for s in suites if s.error)
    passed = len(suites) - failed - invalid
    verdict = "✅ all passed" if failed + invalid == 0 else "❌ not all passed"
    lines = [
        MARKDOWN_MARKER,
        f"## {_text(title)}: {verdict}",
        "",
        f"{passed} passed, {failed} failed, {invalid} could not run "
        f"(of {len(suites)} scenario{'s' if len(suites) != 1 else ''}).",
    ]
    for suite in suites:
        lines += ["", f"### {_text(suite.name)}", ""]
        if suite.error:
            lines.append(f"❌ **could not run**: {_text(suite.error)}")
            continue
        ok = all(c["passed"] for c in suite.cases)
        lines.append(
            f"{'✅ passed' if ok else '❌ failed'} · outcome **{_text(suite.outcome or '-')}**"
            f" · {suite.time_s:.1f} s"
        )
        if suite.cases:
            lines += ["", "| metric | expected | observed | result |", "|---|---|---|---|"]
            for case in suite.cases:
                lines.append(
                    f"| {_text(case['metric'])} | {_text(case['condition'])} | "
                    f"{_text(case['observed'])} | {'pass' if case['passed'] else '**FAIL**'} |"
                )
        if suite.report:
            lines += ["", f"Report: {_link(suite.report)}"]
    return "\n".join(lines) + "\n"
