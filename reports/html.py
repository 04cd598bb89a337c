"""The HTML report: one self-contained static file, readable without JavaScript.

Figures are inline PNG data URIs; nothing is fetched from the network.  Every string that
comes from the user (scenario name, description, version names, settings) is escaped.
The report embeds aggregates, never raw per-request data, so it stays small at any scale.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from reports import figures
from reports.summary import timeline

__all__ = ["render_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.5rem;margin:.4rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #d5dae1;padding-bottom:.2rem}
.banner{padding:14px 18px;border-radius:8px;color:#fff;font-size:1.1rem;margin:12px 0}
.pass{background:#2a8a4a}.fail{background:#b83227}.neutral{background:#4a5a6e}
table{border-collapse:collapse;background:#fff;font-size:.9rem;margin:.3rem 0}
th,td{border:1px solid #d5dae1;padding:4px 8px;text-align:right}th{background:#eef1f5}
td.l,th.l{text-align:left}
img{max-width:100%;background:#fff;border:1px solid #d5dae1;border-radius:4px;margin:4px 0}
pre{background:#fff;border:1px solid #d5dae1;padding:8px;overflow:auto;font-size:.8rem}
.muted{color:#5b6878}.grid{display:grid;grid-template-columns:1fr;gap:8px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return _e(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _bucket_seconds(duration_s: float) -> float:
    """About 60 points across the run, on a round number of seconds."""
    for step in (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if duration_s / step <= 80:
            return float(step)
    return duration_s / 60.0


def _banner(summary: dict[str, Any], verdict: dict[str, Any] | None) -> str:
    outcome = summary["outcome"]
    if verdict is not None and verdict.get("expectations"):
        ok = verdict["passed"]
        failed = [e for e in verdict["expectations"] if not e["passed"]]
        text = "All expectations pass" if ok else f"{len(failed)} expectation(s) fail"
        css = "pass" if ok else "fail"
        return f'<div class="banner {css}">{_e(text)} — rollout outcome: <b>{_e(outcome)}</b></div>'
    css = {"promoted": "pass", "rolled_back": "fail"}.get(outcome, "neutral")
    return f'<div class="banner {css}">Rollout outcome: <b>{_e(outcome)}</b> (no expectations set)</div>'


def _versions_table(summary: dict[str, Any]) -> str:
    rows = []
    for name, v in summary["versions"].items():
        lat = v["latency_ms"]
        ci = v["ctr_ci95"]
        rows.append(
            "<tr>"
            f'<td class="l">{_e(name)}</td><td class="l">{_e(v["role"])}</td>'
            f"<td>{v['requests']:,}</td><td>{_fmt(lat['p50'])}</td><td>{_fmt(lat['p95'])}</td>"
            f"<td>{_fmt(lat['p99'])}</td><td>{_pct(v['slo_under_budget'])}</td>"
            f"<td>{_pct(v['cache_hit_rate'])}</td><td>{_pct(v['timeout_rate'])}</td>"
            f"<td>{_pct(v['ctr'])} [{_pct(ci[0])}, {_pct(ci[1])}]</td>"
            f"<td>{_pct(v['abandon_rate'])}</td></tr>"
        )
    head = (
        '<tr><th class="l">version</th><th class="l">role</th><th>requests</th><th>p50 ms</th>'
        "<th>p95 ms</th><th>p99 ms</th><th>under budget</th><th>cache hit</th><th>timeouts</th>"
        "<th>CTR [95% CI]</th><th>abandoned</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _decisions_table(decisions: Sequence[dict[str, Any]]) -> str:
    if not decisions:
        return '<p class="muted">No decisions were taken.</p>'
    rows = "".join(
        f"<tr><td>{d['t_s'] / 60:.1f}</td><td>{d['step']}</td><td class=\"l\">{_e(d['action'])}</td>"
        f"<td>{d['weight']:g}%</td><td class=\"l\">{_e(d['reason'])}</td></tr>"
        for d in decisions
    )
    head = '<tr><th>t (min)</th><th>step</th><th class="l">action</th><th>weight</th><th class="l">reason</th></tr>'
    return f"<table>{head}{rows}</table>"


def _expectations_table(verdict: dict[str, Any] | None) -> str:
    if verdict is None or not verdict.get("expectations"):
        return '<p class="muted">The scenario sets no expectations.</p>'
    rows = "".join(
        f"<tr><td class=\"l\">{'pass' if e['passed'] else '<b>FAIL</b>'}</td>"
        f"<td class=\"l\">{_e(e['metric'])}</td><td class=\"l\">{_e(e['condition'])}</td>"
        f"<td class=\"l\">{_e(e['observed'])}</td></tr>"
        for e in verdict["expectations"]
    )
    head = '<tr><th class="l">result</th><th class="l">metric</th><th class="l">expected</th><th class="l">observed</th></tr>'
    return f"<table>{head}{rows}</table>"


def render_report(
    summary: dict[str, Any], frame: pl.DataFrame, verdict: dict[str, Any] | None = None
) -> str:
    """The whole report as one HTML string."""
    scenario = summary["scenario"]
    settings = scenario["settings"]
    names = list(summary["versions"])
    tl = timeline(frame, _bucket_seconds(settings["traffic"]["duration"]))
    budget = settings["serving"]["budget_ms"]
    req = summary["requests"]
    rollout = summary["rollout"]
    cache = summary["cache"]
    imgs = [
        figures.share_figure(tl, names, summary["decisions"]),
        figures.latency_figure(tl, names, budget),
        figures.cache_figure(tl, names, cache.get("flush_times_s", [])),
        figures.ctr_figure(summary["versions"]),
    ]
    alts = [
        "Traffic share by version over simulated time",
        "Latency percentiles by version against the budget",
        "Cache hit rate by version over simulated time",
        "CTR by version with 95% confidence intervals",
    ]
    figure_html = "".join(f'<img src="{src}" alt="{_e(alt)}">' for src, alt in zip(imgs, alts, strict=True))
    timing = summary["timing"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rollout-lab report: {_e(scenario["name"])}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>{_e(scenario["name"])}</h1>
<p class="muted">{_e(scenario["description"])}</p>
{_banner(summary, verdict)}
<p>Seed {_e(scenario["seed"])} · policy <b>{_e(rollout["policy"])}</b> ·
{req["arrivals"]:,} requests ({req["served"]:,} served, {req["fallback"]:,} fallback, {req["dropped"]:,} dropped,
{req["shadow"]:,} shadow copies) over {settings["traffic"]["duration"] / 60:.0f} simulated minutes ·
max candidate weight {rollout["max_candidate_weight"]:g}% ·
time to rollback {_fmt(rollout["time_to_rollback_s"])} s</p>
<h2>Expectations</h2>
{_expectations_table(verdict)}
<h2>Versions</h2>
{_versions_table(summary)}
<p class="muted">Latency in ms, exact order statistics over every request of the version;
CTR = clicked lists / lists shown, attributed to the assigned version; budget {budget:g} ms.</p>
<h2>Figures</h2>
<div class="grid">{figure_html}</div>
<h2>Decision trace</h2>
{_decisions_table(summary["decisions"])}
<h2>Cache</h2>
<p>{_e(settings["cache"]["invalidation"])} · hit rate {_pct(cache.get("hit_rate"))} ·
hits {cache.get("hits", 0):,} · misses {cache.get("misses", 0):,} · expired {cache.get("expired", 0):,} ·
stale serves {cache.get("stale_serves", 0):,} · evictions {cache.get("evictions", 0):,} ·
flushes {cache.get("flushes", 0):,}</p>
<h2>Resolved scenario</h2>
<pre>{_e(json.dumps(settings, indent=2))}</pre>
<p class="muted">Simulation {timing["simulate_s"]} s wall for {req["arrivals"]:,} requests
({timing["requests_per_wall_s"]} requests per wall second); preparation {timing["prepare_s"]} s.</p>
</main></body></html>
"""
