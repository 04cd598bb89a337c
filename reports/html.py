"""The HTML report: one self-contained static file, readable without JavaScript.

Layout, top to bottom: the verdict banner (expectations and rollout outcome), a few
sentences "at a glance", a table of contents, then the sections of
:data:`reports.sections.SECTIONS`.  Figures are inline PNG data URIs; the page has no
script and fetches nothing from the network.  Every string that comes from the user
(scenario name, description, version names, decision reasons, settings) is escaped.  The
report embeds aggregates, never raw per-request data, so its size does not grow with the
number of requests.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from reports.quality_sections import ADDITIONS, glance_items
from reports.sections import Section, esc, glance, render_sections
from reports.summary import timeline

__all__ = ["render_report"]

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;
background:#f3f5f8;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.6rem;margin:.5rem 0 .1rem}
h2{font-size:1.15rem;margin:0 0 .6rem}
h3{font-size:1rem;margin:.9rem 0 .3rem}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:14px 18px;
margin:14px 0}
.banner{padding:14px 18px;border-radius:8px;color:#fff;font-size:1.15rem;margin:12px 0}
.pass{background:#23804a}.fail{background:#b83227}.neutral{background:#4a5a6e}
.facts{margin:.2rem 0 .4rem;color:#3b4756}
ul.glance{background:#fff;border:1px solid #dde2e8;border-left:4px solid #1f5fa8;
border-radius:8px;margin:10px 0;padding:10px 18px 10px 34px}
ul.glance li{margin:.2rem 0}
nav{font-size:.85rem;margin:8px 0}
nav a{display:inline-block;margin:2px 4px 2px 0;padding:2px 8px;border:1px solid #cfd6de;
border-radius:12px;color:#1f5fa8;text-decoration:none;background:#fff}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0}
th,td{border:1px solid #dde2e8;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.l,th.l{text-align:left}
.ci{color:#5b6878;font-size:.8rem;white-space:nowrap}
.nums{color:#5b6878;font-size:.75rem;margin-top:2px}
.ok{color:#23804a;font-weight:600}.bad{color:#b83227;font-weight:700}
.tag{color:#fff;border-radius:4px;padding:0 6px;font-size:.8rem}
figure{margin:4px 0 8px}
figcaption{color:#5b6878;font-size:.8rem;max-width:900px}
img{max-width:100%;height:auto;border:1px solid #e3e7ec;border-radius:4px;background:#fff}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.grow{flex:1 1 360px;min-width:0}
pre{background:#f7f8fa;border:1px solid #dde2e8;padding:8px;overflow:auto;font-size:.8rem}
details summary{cursor:pointer;color:#1f5fa8}
.muted{color:#5b6878;font-size:.85rem;margin:.3rem 0}
footer{color:#5b6878;font-size:.8rem;margin-top:18px}
"""


def _bucket_seconds(duration_s: float) -> float:
    """About 60 points across the run, on a round number of seconds."""
    for step in (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if duration_s / step <= 80:
            return float(step)
    return duration_s / 60.0


def _banner(summary: dict[str, Any], verdict: dict[str, Any] | None) -> str:
    outcome = summary["outcome"]
    if verdict is not None and verdict.get("expectations"):
        cases = verdict["expectations"]
        failed = [e for e in cases if not e["passed"]]
        if verdict["passed"]:
            css = "pass"
            text = (
                "The expectation passes"
                if len(cases) == 1
                else f"All {len(cases)} expectations pass"
            )
        else:
            css = "fail"
            noun = "expectation fails" if len(failed) == 1 else "expectations fail"
            text = f"{len(failed)} of {len(cases)} {noun}"
        return (
            f'<div class="banner {css}">{esc(text)} — rollout outcome: <b>{esc(outcome)}</b></div>'
        )
    css = {"promoted": "pass", "rolled_back": "fail"}.get(outcome, "neutral")
    return (
        f'<div class="banner {css}">Rollout outcome: <b>{esc(outcome)}</b> '
        "(no expectations set)</div>"
    )


def _facts(summary: dict[str, Any]) -> str:
    scenario = summary["scenario"]
    settings = scenario["settings"]
    req = summary["requests"]
    rollout = summary["rollout"]
    duration_min = settings["traffic"]["duration"] / 60
    return (
        f'<p class="facts">Seed {esc(scenario["seed"])} · policy <b>{esc(rollout["policy"])}</b> · '
        f"{req['arrivals']:,} requests ({req['served']:,} served, {req['fallback']:,} fallback, "
        f"{req['dropped']:,} dropped, {req['shadow']:,} shadow copies) over "
        f"{duration_min:,.0f} simulated minutes · max candidate weight "
        f"{rollout['max_candidate_weight']:g}%</p>"
    )


def _with_additions(section: Section, summary: dict[str, Any]) -> Section:
    """The section with the finer quality numbers that belong to it appended."""
    extra = "".join(render(summary) for render in ADDITIONS.get(section.anchor, ()))
    return Section(section.anchor, section.title, section.body + extra) if extra else section


def _glance(summary: dict[str, Any]) -> str:
    items = "".join(f"<li>{item}</li>" for item in glance_items(summary))
    page = glance(summary)
    return page.replace("</ul>", items + "</ul>", 1) if items else page


def render_report(
    summary: dict[str, Any], frame: pl.DataFrame, verdict: dict[str, Any] | None = None
) -> str:
    """The whole report as one HTML string.

    ``summary`` is :func:`reports.summary.build_summary`'s output; ``frame`` the request
    frame, used only for time-bucketed aggregates (traffic share, latency, cache figures).
    """
    scenario = summary["scenario"]
    duration_s = float(scenario["settings"]["traffic"]["duration"])
    tl = timeline(frame, _bucket_seconds(duration_s))
    sections = [
        _with_additions(s, summary) for s in render_sections(summary, verdict, tl, duration_s)
    ]
    nav = "".join(f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.anchor}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections
    )
    timing = summary["timing"]
    req = summary["requests"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rollout-lab report: {esc(scenario["name"])}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>{esc(scenario["name"])}</h1>
<p class="muted">{esc(scenario["description"])}</p>
{_facts(summary)}
{_banner(summary, verdict)}
{_glance(summary)}
<nav>{nav}</nav>
{body}
<footer>rollout-lab · simulation {timing["simulate_s"]:.2f} s wall for {req["arrivals"]:,} requests
({timing["requests_per_wall_s"]:,.0f} requests per wall second); preparation
{timing["prepare_s"]:.2f} s. Every number above except wall-clock timings (these and the
training seconds) is a pure function of the scenario and its seed.</footer>
</main></body></html>
"""
