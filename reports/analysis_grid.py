"""The analysis grid: every analysis × every check it ran, as Kayenta and Argo Rollouts show
an analysis run.

One row per analysis (numbered like the decision trace, with its time, release and result),
one column per check: the sample-ratio-mismatch test, each guardrail, and the CTR gate.  Each
cell says pass, fail or inconclusive (colour and word) and the number the check saw; a
check that did not run in an analysis (no SRM test while the weight moved, no gate on
mirrored traffic) is an empty cell.  Static HTML, no script.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reports import figures
from reports.page import table as html_table
from sim import wording

__all__ = ["Check", "analysis_grid", "checks_of"]

#: Rows shown before the grid is cut (the decision trace lists them all).
MAX_ROWS = 120


@dataclass(frozen=True, slots=True)
class Check:
    """One column: ``key`` in the analyses' numbers, its heading, and how to judge it."""

    key: str
    heading: str
    kind: str  # "srm", "guardrail" or "gate"
    digits: int = 4


def checks_of(summary: dict[str, Any]) -> list[Check]:
    """The checks the scenario's analyses run, in the order they run."""
    rollout = summary["scenario"]["settings"]["rollout"]
    checks = [Check("srm.p_value", "sample ratio (SRM p)", "srm", 2)]
    seen: set[str] = set()
    for guard in rollout.get("guardrails") or []:
        metric = guard["metric"]
        if metric in seen:
            continue
        seen.add(metric)
        checks.append(Check(f"guardrail.{metric}", _guard_heading(guard), "guardrail"))
    if rollout.get("gate"):
        checks.append(Check("gate.p_value", "CTR gate (mSPRT p; difference)", "gate"))
    return checks


def _guard_heading(guard: dict[str, Any]) -> str:
    bounds = []
    for key, text in (("max", "≤ {:g}"), ("min", "≥ {:g}")):
        if guard.get(key) is not None:
            bounds.append(text.format(guard[key]))
    for key, text in (
        ("max_relative_to_baseline", "≤ baseline {:+.0%}"),
        ("min_relative_to_baseline", "≥ baseline {:+.0%}"),
    ):
        if guard.get(key) is not None:
            bounds.append(text.format(guard[key]))
    return f"{guard['metric']} ({', '.join(bounds)})" if bounds else str(guard["metric"])


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}g}"


def _cell(check: Check, numbers: dict[str, Any], srm_alpha: float, alpha: float) -> str:
    """``<td>`` content for one check of one analysis: '' when the check did not run."""
    if check.key not in numbers and f"{check.key}.breach" not in numbers:
        return ""
    value = numbers.get(check.key)
    if check.kind == "srm":
        state = "fail" if value is not None and value < srm_alpha else "pass"
        shown = wording.p_value_text(value)
    elif check.kind == "guardrail":
        state = "fail" if numbers.get(f"{check.key}.breach") else "pass"
        shown = _number(value, check.digits)
    else:
        difference = numbers.get("gate.difference")
        decided = value is not None and value <= alpha
        state = ("pass" if (difference or 0) > 0 else "fail") if decided else "inconclusive"
        shown = f"p {wording.p_value_text(value)}" + (
            "" if difference is None else f"; {100 * difference:+.2f} pp"
        )
    return f'<span class="g g-{state}">{state}</span> {shown}'


def analysis_grid(summary: dict[str, Any], numbered: Sequence[tuple[int, dict[str, Any]]]) -> str:
    """The grid of the run's analyses (``numbered``: ``(number, decision)`` pairs)."""
    analyses = [(n, d) for n, d in numbered if d["action"] == "analysis"]
    if not analyses:
        return '<p class="muted">No analyses ran (the scenario sets no analysis).</p>'
    rollout = summary["scenario"]["settings"]["rollout"]
    alpha = (rollout.get("gate") or {}).get("alpha", 0.05)
    srm_alpha = rollout.get("srm_alpha", 0.001)
    checks = checks_of(summary)
    used = [c for c in checks if any(_cell(c, d["numbers"], srm_alpha, alpha) for _, d in analyses)]
    releases = {d.get("release", 1) for _, d in analyses}
    versions = {
        r["release"]: name for name, r in ((summary["rollout"].get("releases")) or {}).items()
    }
    rows = []
    for n, d in analyses[:MAX_ROWS]:
        result = figures.analysis_result(d)
        row = [str(n), f"{d['t_s'] / 60:.1f}"]
        if len(releases) > 1:
            row.append(_release_label(d.get("release", 1), versions))
        row.append(f'<span class="g g-{result}">{result}</span>')
        row += [_cell(c, d["numbers"], srm_alpha, alpha) for c in used]
        rows.append(row)
    head = ["#", "t (min)", *(["release"] if len(releases) > 1 else []), "result"]
    head += [html.escape(c.heading) for c in used]
    text_columns = set(range(len(head)))
    cut = (
        f'<p class="muted">The first {MAX_ROWS} of {len(analyses)} analyses; the decision '
        "trace lists every one.</p>"
        if len(analyses) > MAX_ROWS
        else ""
    )
    return (
        html_table(head, rows, left=text_columns)
        + cut
        + '<p class="muted">One row per analysis, numbered as in the decision trace; each cell '
        "is what one check concluded and the number it saw. SRM: chi-square p-value of units "
        f"per arm against the weight (fails below {srm_alpha:g}; only while the weight held "
        "still); guardrails: the candidate's value in the window (relative bounds on rates "
        f"are one-sided tests at alpha {alpha:g}); gate: always-valid p-value of the CTR "
        "mSPRT since first exposure and the CTR difference, pass when it finds the candidate "
        "better, fail when worse, inconclusive otherwise. An empty cell: the check did not "
        "run in that analysis.</p>"
    )


def _release_label(release: int, versions: dict[int, str]) -> str:
    name = versions.get(release)
    return f"{release}" if name is None else f"{release} ({html.escape(name, quote=True)})"
